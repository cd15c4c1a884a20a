import Foundation
import RampartCore

/// One entry of a write, planned before it reaches the writer thread: an item with its matches'
/// intents, an item refused at parse, or a peer's revocation. `StoreTransaction.apply` carries it out.
public enum Planned: Sendable {
    case accepted(EncodedItem, [PlannedMatch], recordSighting: Bool)
    case refused(position: Int, ValueError, raw: String?)
    /// A peer withdraws an item it sent.
    case revocation(PeerMessage.Revocation, path: [String])
    /// Refusals of a request beyond those listed one by one: how many, by code.
    case refusedBeyond(listed: Int, counts: [String: Int])
    /// A version of a STIX object (at `position` in the request): its items (`accepted` entries),
    /// or its revocation. Whether it replaces what is stored is decided at the write.
    case stixObject(position: Int, STIX.Version, revoked: Bool, items: [Planned])

    /// An accepted item, encoded, matched against the playbooks and planned, off the writer's thread.
    public static func accepted(_ item: Item, _ playbooks: PlaybookSet, _ planning: PlanContext) -> Planned {
        let matched = playbooks.playbooks.isEmpty ? [] : playbooks.matches(for: Subject(item)).map { PlannedMatch($0, item: item, planning) }
        let sighted = item.indicator.map { playbooks.sightingKinds.contains($0.kind) } ?? false
        return .accepted(EncodedItem(item), matched, recordSighting: sighted)
    }
}

/// A playbook that matched an item, with its actions' intents planned and its `playbook.matched`
/// record encoded before the write (it goes into the item's audit entry), and its metrics series.
public struct PlannedMatch: Sendable {
    let playbook: Playbook
    let intents: [Intent]
    let detail: JSONWriter
    let counted: Tally.Key

    public init(_ playbook: Playbook, item: Item, _ planning: PlanContext) {
        self.playbook = playbook
        intents = playbook.plan(item, in: planning).map(\.intent)
        counted = Tally.Key(.playbookMatches, ["playbook": playbook.name])
        var w = JSONWriter(capacity: 64)
        w.beginObject()
        w.field("playbook", playbook.name)
        if playbook.mode == .simulate { w.field("mode", playbook.mode.rawValue) }
        w.endObject()
        detail = w
    }
}

/// What applying a write needs besides its entries: fixed for the request.
public struct EngineContext: Sendable {
    public let via: String
    /// How the request numbers its entries in refusals (`line`, `index`).
    public let positionName: String
    /// What the actions' plans see: this node, its peers and safety policy, the request's time,
    /// the longest block its items may cause (a peer's `accept.max_duration`).
    public let planning: PlanContext
    /// For the rule items that `rule` actions render, which run through the rule playbooks at once.
    public let playbooks: PlaybookSet
    public let ids: IDGenerator

    public init(via: String, positionName: String, planning: PlanContext, playbooks: PlaybookSet, ids: IDGenerator) {
        self.via = via
        self.positionName = positionName
        self.planning = planning
        self.playbooks = playbooks
        self.ids = ids
    }

    var at: Date { planning.at }
}

/// What a write leaves to do outside the database once it is durable, for the dispatcher to hand
/// out (the firewall's changes go from the store to the enforcer at the commit, before this).
public struct Outcomes: Sendable {
    public var execs: [ExecJob] = []
    /// Rule files to write, and to remove (replaced under another name, or revoked).
    public var rules: [RuleFile] = []
    public var removedRules: [RuleFile] = []
    /// Destinations (peers, notify webhooks) with new entries in their outbox, by storage key.
    public var destinations: Set<String> = []
    public var tally = Tally()
    /// Items stored (duplicates of stored ones are not).
    public var stored = 0
    /// STIX objects: the ids of the items their versions became, those revoked, and those left
    /// alone (an older or the same version, another source's object), with why.
    public var stixItems: [String] = []
    public var stixRevoked: [String] = []
    public var stixSkipped: [(position: Int, reason: String)] = []

    public init() {}
}

/// The engine: planned entries and their intents, carried out inside one transaction.
extension StoreTransaction {
    /// Stores each accepted item with everything its matches' intents cause (in the item's audit
    /// entry), audits each refusal, and applies each revocation. `mode: simulate` is decided here,
    /// in one place.
    public mutating func apply(_ entries: [Planned], in context: EngineContext) throws -> Outcomes {
        var outcomes = Outcomes()
        let at = context.at
        for entry in entries {
            switch entry {
            case .accepted(let encoded, let matched, let recordSighting):
                try accept(encoded, matched, recordSighting: recordSighting, context: context, outcomes: &outcomes)
            case .refused(let position, let error, let raw):
                try refuse(via: context.via, position: context.positionName, index: position, error: error, raw: raw, at: at)
            case .revocation(let revocation, let path):
                try apply(revocation, path: path, context: context, outcomes: &outcomes)
            case .stixObject(let position, let version, let revoked, let items):
                try apply(version, at: position, revoked: revoked, items: items, context: context, outcomes: &outcomes)
            case .refusedBeyond(let listed, let counts):
                try audit(.itemsRefused, subject: context.via, at: at) { w in
                    w.field("listed", listed)
                    w.field("more", counts.values.reduce(0, +))
                    w.key("codes")
                    w.beginObject()
                    for (code, count) in counts.sorted(by: { $0.key < $1.key }) { w.field(code, count) }
                    w.endObject()
                }
            }
        }
        return outcomes
    }

    /// Stores an accepted item with what its matches cause; false when it was stored before.
    @discardableResult
    mutating func accept(
        _ encoded: EncodedItem, _ matched: [PlannedMatch], recordSighting: Bool, context: EngineContext, outcomes: inout Outcomes
    ) throws -> Bool {
        let at = context.at
        var rendered: [Rendered] = []
        let stored = try ingest(encoded) { tx in
            if recordSighting { try tx.recordSighting(encoded.item) }
            var known: ActiveDecisions?
            for match in matched {
                if let sightings = match.playbook.sightings, let value = encoded.item.indicator?.value {
                    let since = at.addingTimeInterval(-Double(sightings.within.milliseconds) / 1000)
                    guard try tx.countSightings(of: value, distinct: sightings.distinct, since: since) >= sightings.min else { continue }
                }
                try tx.apply(match, to: encoded, context: context, outcomes: &outcomes, known: &known, rendered: &rendered)
            }
        }
        guard stored else { return false }
        outcomes.stored += 1
        try store(rendered, context: context, outcomes: &outcomes)
        return true
    }

    /// Records the match and carries out its intents inside the item's ingest (and its audit
    /// entry). `known`: the item's active decisions as its previous match's blocks left them;
    /// `rendered`: rule items its `rule` actions made, to store once the item's entry is written.
    private mutating func apply(
        _ match: PlannedMatch, to encoded: EncodedItem, context: EngineContext, outcomes: inout Outcomes,
        known: inout ActiveDecisions?, rendered: inout [Rendered]
    ) throws {
        let at = context.at
        let item = encoded.item
        let playbook = match.playbook
        try audit(.playbookMatched, subject: item.id, detail: match.detail, at: at)
        outcomes.tally.add(match.counted)
        for intent in match.intents {
            if case .nothing = intent { continue }
            // `mode: simulate`: blocks were planned as simulated decisions (kept apart from
            // enforced ones, never sent to the firewall); anything else is recorded, not done.
            if playbook.mode == .simulate, !intent.isBlock {
                guard let event = AuditEvent.action(intent.kind) else { continue }
                try audit(event, subject: item.id, at: at) { w in
                    w.field("playbook", playbook.name)
                    intent.describe(to: &w)
                    w.field("simulated", true)
                }
                outcomes.tally.action(intent.kind, "simulated")
                continue
            }
            switch intent {
            case .block(let request):
                outcomes.tally.add(try block(request, policy: context.planning.policy, now: at, known: &known))
            case .exec(let argv, let timeout):
                outcomes.execs.append(ExecJob(item: item, input: encoded.json, playbook: playbook.name, argv: argv, timeout: timeout))
            case .renderRule(let rendering):
                if let rule = try render(rendering, context: context, outcomes: &outcomes) { rendered.append(rule) }
            case .installRule:
                try install(item, playbook: playbook.name, at: at, outcomes: &outcomes)
            case .propagate(let propagation):
                for peer in propagation.queued {
                    try enqueue(
                        peer: peer, item: item.id, path: propagation.path, hopsLeft: propagation.hopsLeft, suggest: propagation.suggest, at: at)
                }
                try audit(.actionPropagate, subject: item.id, at: at) { w in
                    w.field("playbook", playbook.name)
                    intent.describe(to: &w)
                }
                outcomes.destinations.formUnion(propagation.queued)
                outcomes.tally.action("propagate", propagation.outcome.rawValue)
            case .notify(let url, let body):
                let destination = Destination.notify(url: url).key
                try enqueue(
                    peer: destination, item: item.id, body: Array(body.utf8), path: [context.planning.nodeID], hopsLeft: 0, suggest: [], at: at)
                outcomes.destinations.insert(destination)
                try audit(.actionNotify, subject: item.id, at: at) { w in
                    w.field("playbook", playbook.name)
                    intent.describe(to: &w)
                }
                outcomes.tally.action("notify", "queued")
            case .nothing:
                continue
            }
        }
    }

    /// A rule item a `rule` action rendered from an indicator, with the playbook that rendered it.
    private struct Rendered {
        let item: Item
        let playbook: String
    }

    /// A `rule` action on an indicator: renders the rule and checks it like any other; unless the
    /// same rule is installed already, returns it as a rule item of its own, which `store` then
    /// stores, installs and runs through the rule playbooks, all in the indicator's transaction.
    private mutating func render(_ rendering: RuleRendering, context: EngineContext, outcomes: inout Outcomes) throws -> Rendered? {
        let at = context.at
        let (item, format, playbook) = (rendering.item, rendering.format, rendering.playbook)
        let content = try renderRule(format: format, playbook: playbook, item: item, render: { sid in rendering.content(sid: sid) }, at: at)
        let indicator = item.indicator
        let rule: Rule
        do {
            rule = try Rule(
                format: format, content: content, name: rendering.name,
                tlp: item.tlp, confidence: indicator?.confidence ?? 50, severity: indicator?.severity, tags: indicator?.tags ?? [], parent: item.id
            )
        } catch {
            try audit(.ruleInvalid, subject: item.id, at: at) { w in
                w.field("playbook", playbook)
                w.field("format", format.rawValue)
                w.field("content", content)
                w.field("error", error.description)
            }
            outcomes.tally.action("rule", "invalid")
            return nil
        }
        if let installed = try installedRule(format: format, ruleID: rule.ruleID), installed.content == rule.content, installed.name == rule.name {
            try audit(.ruleUnchanged, subject: item.id, at: at) { w in
                w.field("playbook", playbook)
                w.field("path", rule.relativePath)
                w.field("rule_item", installed.item)
            }
            outcomes.tally.action("rule", "unchanged")
            return nil
        }
        let ruleItem = Item(id: context.ids.next(), payload: .rule(rule), via: item.via, origin: context.planning.nodeID, receivedAt: at)
        try audit(.ruleRendered, subject: item.id, at: at) { w in
            w.field("playbook", playbook)
            w.field("format", format.rawValue)
            w.field("rule_item", ruleItem.id)
            w.field("path", rule.relativePath)
        }
        return Rendered(item: ruleItem, playbook: playbook)
    }

    /// Stores rendered rule items, each with its own audit entry: installs it, and runs it through
    /// the rule playbooks.
    private mutating func store(_ rendered: [Rendered], context: EngineContext, outcomes: inout Outcomes) throws {
        var queue = rendered
        while !queue.isEmpty {
            let next = queue.removeFirst()
            let encoded = EncodedItem(next.item)
            try ingest(encoded) { tx in
                try tx.install(next.item, playbook: next.playbook, at: context.at, outcomes: &outcomes)
                var known: ActiveDecisions?
                for matched in context.playbooks.matches(for: Subject(next.item)) {
                    try tx.apply(
                        PlannedMatch(matched, item: next.item, context.planning), to: encoded, context: context, outcomes: &outcomes,
                        known: &known, rendered: &queue)
                }
            }
        }
    }

    /// Installs a rule item's rule into the rules directory (once the transaction commits).
    private mutating func install(_ item: Item, playbook: String, at: Date, outcomes: inout Outcomes) throws {
        let outcome: String
        switch try install(item, playbook: playbook, at: at) {
        case .installed(let file, let removed):
            outcomes.rules.append(file)
            if let removed { outcomes.removedRules.append(removed) }
            outcome = "installed"
        case .unchanged:
            try audit(.ruleUnchanged, subject: item.id, at: at) { w in
                w.field("playbook", playbook)
                w.field("path", item.rule?.relativePath ?? "")
            }
            outcome = "unchanged"
        case .refused:
            outcome = "refused"
        }
        outcomes.tally.action("rule", outcome)
    }

    /// A peer withdraws an item it sent: the decisions that item caused are revoked, and the
    /// peers this node passed the item to hear of it. Only the peer an item came from may withdraw it.
    private mutating func apply(_ revocation: PeerMessage.Revocation, path: [String], context: EngineContext, outcomes: inout Outcomes) throws {
        let at = context.at
        let via = try via(ofItem: revocation.item)
        guard via == context.via else {
            try audit(.revocationRefused, subject: revocation.item, at: at) { w in
                w.field("via", context.via)
                w.field("reason", via == nil ? "no such item here" : "the item did not come from this peer")
            }
            outcomes.tally.add(.revocations, ["outcome": "refused"])
            return
        }
        try retract(revocation.item, reason: revocation.reason, path: path, context: context, outcomes: &outcomes)
        outcomes.tally.add(.revocations, ["outcome": "applied"])
    }

    /// Withdraws an item (its source revoked or replaced it): the decisions only it supported are
    /// revoked, its rules uninstalled, and the peers this node passed it to hear of it.
    mutating func retract(
        _ item: String, reason: String, path: [String], context: EngineContext, outcomes: inout Outcomes, exported: Bool = true
    ) throws {
        let at = context.at
        let (_, kept) = try withdraw(item: item, reason: reason, by: context.via, now: at, exported: exported)
        outcomes.removedRules += try uninstallRules(ofItem: item, reason: reason, by: context.via, now: at)
        if !kept.isEmpty {
            try audit(.revocationKept, subject: item, at: at) { w in
                w.field("via", context.via)
                w.field("decisions", kept)
                w.field("reason", "other items or requests support these decisions too")
            }
        }
        try forwardRevocation(
            of: item, reason: reason, path: path + [context.planning.nodeID], peers: context.planning.peers, at: at, outcomes: &outcomes)
    }

    /// Queues a revocation of `item` for every peer it was queued for or sent to, except those in `path`.
    public mutating func forwardRevocation(of item: String, reason: String, path: [String], peers: [Peer], at: Date, outcomes: inout Outcomes) throws
    {
        for name in try recipients(of: item) {
            if let peer = peers.first(where: { $0.name == name }), path.contains(peer.nodeID) { continue }
            let revocation = PeerMessage.Revocation(id: IDGenerator.shared.next(), item: item, reason: reason)
            try enqueue(peer: name, item: item, body: revocation.json, path: path, hopsLeft: 0, suggest: [], at: at)
            outcomes.destinations.insert(name)
        }
    }

    /// What decisions revoked here cause besides their elements leaving the firewall (which the
    /// store hands to the enforcer): the peers that got the items behind them hear of it.
    public mutating func forwardRevocations(of decisions: [Decision], reason: String, nodeID: String, peers: [Peer], at: Date) throws -> Outcomes {
        var outcomes = Outcomes()
        for decision in decisions {
            guard let item = decision.item else { continue }
            try forwardRevocation(of: item, reason: reason, path: [nodeID], peers: peers, at: at, outcomes: &outcomes)
        }
        return outcomes
    }
}
