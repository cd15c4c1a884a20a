import Foundation
import Logging
import NIOCore
import RampartCore
import RampartStore
import Synchronization

/// The ingest path: parse a request body into items, run each through the playbooks, and commit
/// them with what they caused (decisions, audit entries) in chunks that pipeline with parsing:
/// while one chunk commits on the writer thread, the next is parsed and matched on this one.
/// `ingest` returns once every chunk is durable; the firewall hears of new blocks from the store,
/// at each chunk's commit, before its log sync.
public final class Pipeline: Sendable {
    let store: Store
    let enforcer: Enforcer
    let execRunner: ExecRunner
    let ruleDirectory: RuleDirectory
    let delivery: PeerDelivery
    let metrics: RampartMetrics
    let nodeID: String
    let ids: IDGenerator
    let now: @Sendable () -> Date
    let limits: IngestParser.Limits
    private let inForce: Mutex<InForce>
    static let chunkSize = 2048
    static let chunksInFlight = 4

    /// What reloads replace, all at once.
    struct InForce: Sendable {
        var playbooks: PlaybookSet
        var policy: SafetyPolicy
        var peers: [Peer]
    }

    public init(
        store: Store, enforcer: Enforcer, execRunner: ExecRunner, rules: RuleDirectory, delivery: PeerDelivery,
        metrics: RampartMetrics = RampartMetrics(),
        nodeID: String, limits: IngestParser.Limits, policy: SafetyPolicy, playbooks: PlaybookSet, peers: [Peer], ids: IDGenerator = .shared,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.store = store
        self.enforcer = enforcer
        self.execRunner = execRunner
        self.ruleDirectory = rules
        self.delivery = delivery
        self.metrics = metrics
        self.nodeID = nodeID
        self.ids = ids
        self.now = now
        self.limits = limits
        self.inForce = Mutex(InForce(playbooks: playbooks, policy: policy, peers: peers))
    }

    var current: InForce { inForce.withLock { $0 } }

    /// The playbooks in force. A request uses the set that was in force when it started.
    public var playbooks: PlaybookSet { inForce.withLock { $0.playbooks } }

    /// The safety policy in force, for every block whatever its source.
    public var policy: SafetyPolicy { inForce.withLock { $0.policy } }

    /// The peers configured now.
    public var peers: [Peer] { inForce.withLock { $0.peers } }

    /// Puts new playbooks, safety policy and peers in force, at once, for the requests that start after.
    public func replace(playbooks: PlaybookSet, policy: SafetyPolicy, peers: [Peer]) {
        inForce.withLock { $0 = InForce(playbooks: playbooks, policy: policy, peers: peers) }
        delivery.update(peers: peers, notifyURLs: playbooks.notifyURLs)
    }

    public struct Summary: Sendable {
        public var ids: [String] = []
        public var rejected: [Problem.ItemError] = []
    }

    enum Prepared: Sendable {
        case accepted(EncodedItem, [Match], recordSighting: Bool)
        case refused(position: Int, ValueError, raw: String?)
        /// A peer withdraws an item it sent.
        case revocation(PeerMessage.Revocation, path: [String])

        /// An accepted item, encoded, matched against the playbooks and planned off the writer's thread.
        static func accepted(_ item: Item, _ playbooks: PlaybookSet, _ planning: PlanContext) -> Prepared {
            let matched = playbooks.playbooks.isEmpty ? [] : playbooks.matches(for: Subject(item)).map { Match($0, item: item, planning) }
            let sighted = item.indicator.map { playbooks.sightingKinds.contains($0.kind) } ?? false
            return .accepted(EncodedItem(item), matched, recordSighting: sighted)
        }
    }

    /// What a commit needs besides its items: fixed for the request.
    struct Context: Sendable {
        let via: String
        let positionName: String
        /// What the actions' plans see: this node, its peers and safety policy, the request's
        /// time, the longest block its items may cause (a peer's `accept.max_duration`).
        let planning: PlanContext
        /// For the rule items that `rule` actions render, which run through the rule playbooks at once.
        let playbooks: PlaybookSet
        let ids: IDGenerator

        var policy: SafetyPolicy { planning.policy }
        var peers: [Peer] { planning.peers }
        var nodeID: String { planning.nodeID }
        var at: Date { planning.at }
    }

    /// A playbook that matched an item, with its actions' intents planned and its
    /// `playbook.matched` record encoded before the write (it goes into the item's audit entry),
    /// and its metrics series.
    struct Match: Sendable {
        let playbook: Playbook
        let intents: [Intent]
        let detail: JSONWriter
        let counted: Tally.Key

        init(_ playbook: Playbook, item: Item, _ planning: PlanContext) {
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

    /// Parses and commits a body. Throws `IngestParser.BodyError` when the body as a whole is refused
    /// (nothing is then written), or the store's error if a commit fails.
    public func ingest(_ body: ByteBuffer, format: IngestParser.Format, defaults: IndicatorDefaults, via: String) async throws -> Summary {
        let receivedAt = now()
        let positionName = IngestParser.positionName(format)
        var summary = Summary()
        let inForce = current
        let playbooks = inForce.playbooks
        let context = context(via: via, positionName: positionName, inForce: inForce, at: receivedAt)
        var reader = try IngestParser.Reader(Array(body.readableBytesView), format: format, defaults: defaults, now: receivedAt, limits: limits)
        // Chunks committing, oldest first. Each stays referenced until its commit is done, so that
        // it is freed on this thread rather than the writer's; at most `chunksInFlight` wait, so a
        // large body never holds more than a few chunks' items in memory while the writer catches up.
        // Items are counted here (the writer has less time to spare) and reported once committed.
        var inFlight: [(chunk: [Prepared], counted: Tally, commit: PendingWrite<Effects>)] = []
        func finishOldest() async throws {
            let (_, counted, commit) = inFlight.removeFirst()
            carryOut(try await commit.value())
            metrics.add(counted)
        }
        var kinds: [IndicatorKind: Int] = [:]
        var rejections: [String: Int] = [:]
        func send(_ chunk: [Prepared]) {
            var counted = Tally()
            for (kind, count) in kinds { counted.add(.itemsIngested, ["kind": kind.rawValue, "via": via], count) }
            for (reason, count) in rejections { counted.add(.itemsRejected, ["reason": reason], count) }
            (kinds, rejections) = ([:], [:])
            inFlight.append(
                (
                    chunk, counted,
                    store.enqueue(weight: chunk.count) { tx in
                        try Pipeline.commit(chunk, context: context, in: &tx)
                    }
                ))
        }
        var chunk: [Prepared] = []
        chunk.reserveCapacity(Pipeline.chunkSize)
        do {
            while let entry = reader.next() {
                switch entry.result {
                case .success(let indicator):
                    let item = Item(id: ids.next(), payload: .indicator(indicator), via: via, origin: nodeID, receivedAt: receivedAt)
                    summary.ids.append(item.id)
                    kinds[indicator.kind, default: 0] += 1
                    chunk.append(.accepted(item, playbooks, context.planning))
                case .failure(let error):
                    summary.rejected.append(
                        Problem.ItemError(positionName: positionName, position: entry.position, code: error.code.rawValue, message: error.message))
                    chunk.append(.refused(position: entry.position, error, raw: entry.raw))
                    rejections[error.code.rawValue, default: 0] += 1
                }
                guard chunk.count >= Pipeline.chunkSize else { continue }
                if inFlight.count >= Pipeline.chunksInFlight { try await finishOldest() }
                send(chunk)
                chunk = []
                chunk.reserveCapacity(Pipeline.chunkSize)
            }
            if !chunk.isEmpty { send(chunk) }
            while !inFlight.isEmpty { try await finishOldest() }
        } catch {
            // Chunks queued after a failed one may have committed: what they caused still reaches
            // the firewall, the exec runner and the rules directory.
            while !inFlight.isEmpty { try? await finishOldest() }
            throw error
        }
        if summary.ids.count + summary.rejected.count >= FreeMemory.bulk { FreeMemory.releaseSoon(store) }
        return summary
    }

    func context(via: String, positionName: String, inForce: InForce, at: Date, maxBlock: Duration? = nil) -> Context {
        Context(via: via, positionName: positionName, planning: planning(inForce, at: at, maxBlock: maxBlock), playbooks: inForce.playbooks, ids: ids)
    }

    /// What the actions' plans see for a request at `at` under the configuration in force.
    func planning(_ inForce: InForce, at: Date, maxBlock: Duration? = nil) -> PlanContext {
        PlanContext(nodeID: nodeID, peers: inForce.peers, policy: inForce.policy, at: at, maxBlock: maxBlock)
    }

    /// Commits a detection rule posted to the API, with what the rule playbooks make of it;
    /// returns its item, once durable.
    public func ingest(rule: Rule, via: String) async throws -> Item {
        let at = now()
        let inForce = current
        let item = Item(id: ids.next(), payload: .rule(rule), via: via, origin: nodeID, receivedAt: at)
        let context = context(via: via, positionName: "rule", inForce: inForce, at: at)
        let prepared = [Prepared.accepted(item, inForce.playbooks, context.planning)]
        let effects = try await store.write { tx in try Pipeline.commit(prepared, context: context, in: &tx) }
        carryOut(effects)
        var counted = Tally()
        counted.add(.itemsIngested, ["kind": "rule", "via": via])
        metrics.add(counted)
        return item
    }

    /// A block asked for directly (`POST /v1/decisions`): through the safety rails and the merge
    /// rules like a playbook's, and to the firewall by the same path. Returns once durable.
    public func block(_ request: BlockRequest) async throws -> BlockOutcome {
        let at = now()
        let policy = self.policy
        let (outcome, effects) = try await store.write { tx in
            var effects = Effects()
            let outcome = try tx.block(request, policy: policy, now: at)
            effects.tally.add(outcome)
            return (outcome, effects)
        }
        carryOut(effects)
        return outcome
    }

    /// What a commit leaves to do outside the database once it is durable (the firewall's changes
    /// go from the store to the enforcer at the commit, before this).
    struct Effects: Sendable {
        var execs: [ExecJob] = []
        /// Rule files to write, and to remove (replaced under another name, or revoked).
        var rules: [RuleFile] = []
        var removedRules: [RuleFile] = []
        /// Peers with new entries in their outbox.
        var peers: Set<String> = []
        var tally = Tally()
        /// Items stored (duplicates of stored ones are not).
        var stored = 0
    }

    /// Hands what a durable commit caused to the exec runner, the rules directory and the peers'
    /// dispatchers.
    func carryOut(_ effects: Effects) {
        ruleDirectory.remove(effects.removedRules)
        ruleDirectory.write(effects.rules)
        execRunner.submit(effects.execs)
        delivery.wake(effects.peers)
        metrics.add(effects.tally)
    }

    static func commit(_ chunk: [Prepared], context: Context, in tx: inout StoreTransaction) throws -> Effects {
        var effects = Effects()
        let at = context.at
        for entry in chunk {
            switch entry {
            case .accepted(let encoded, let matched, let recordSighting):
                var rendered: [Rendered] = []
                let stored = try tx.ingest(encoded) { tx in
                    if recordSighting { try tx.recordSighting(encoded.item) }
                    var known: StoreTransaction.ActiveDecisions?
                    for match in matched {
                        let playbook = match.playbook
                        if let sightings = playbook.sightings, let value = encoded.item.indicator?.value {
                            let since = at.addingTimeInterval(-Double(sightings.within.milliseconds) / 1000)
                            guard try tx.countSightings(of: value, distinct: sightings.distinct, since: since) >= sightings.min else { continue }
                        }
                        try apply(match, to: encoded, context: context, in: &tx, effects: &effects, known: &known, rendered: &rendered)
                    }
                }
                guard stored else { continue }
                effects.stored += 1
                try store(rendered, context: context, in: &tx, effects: &effects)
            case .refused(let position, let error, let raw):
                try tx.refuse(via: context.via, position: context.positionName, index: position, error: error, raw: raw, at: at)
            case .revocation(let revocation, let path):
                try applyRevocation(revocation, path: path, context: context, in: &tx, effects: &effects)
            }
        }
        return effects
    }

    /// Records the match and carries out its intents inside the item's transaction (and its audit
    /// entry). `known`: the item's active decisions as its previous match's blocks left them;
    /// `rendered`: rule items its `rule` actions made, to store once the item's entry is written.
    static func apply(
        _ match: Match, to encoded: EncodedItem, context: Context, in tx: inout StoreTransaction, effects: inout Effects,
        known: inout StoreTransaction.ActiveDecisions?, rendered: inout [Rendered]
    ) throws {
        let at = context.at
        let item = encoded.item
        let playbook = match.playbook
        try tx.audit(.playbookMatched, subject: item.id, detail: match.detail, at: at)
        effects.tally.add(match.counted)
        for intent in match.intents {
            if case .nothing = intent { continue }
            // `mode: simulate`, in one place: blocks were planned as simulated decisions (kept
            // apart from enforced ones, never sent to the firewall); anything else is recorded, not done.
            if playbook.mode == .simulate, !intent.isBlock {
                guard let event = AuditEvent.action(intent.kind) else { continue }
                try tx.audit(event, subject: item.id, at: at) { w in
                    w.field("playbook", playbook.name)
                    intent.describe(to: &w)
                    w.field("simulated", true)
                }
                effects.tally.add(.actions, ["action": intent.kind, "outcome": "simulated"])
                continue
            }
            switch intent {
            case .block(let request):
                let outcome = try tx.block(request, policy: context.policy, now: at, known: &known)
                effects.tally.add(outcome)
            case .exec(let argv, let timeout):
                effects.execs.append(
                    ExecJob(
                        item: item.id, playbook: playbook.name, argv: argv, input: encoded.json,
                        environment: ExecRunner.environment(for: item, playbook: playbook.name), timeout: timeout
                    )
                )
            case .renderRule(let rendering):
                if let rule = try render(rendering, context: context, in: &tx, effects: &effects) { rendered.append(rule) }
            case .installRule:
                try install(item, playbook: playbook.name, at: at, in: &tx, effects: &effects)
            case .propagate(let propagation):
                try Pipeline.propagate(item, propagation, playbook: playbook.name, at: at, in: &tx, effects: &effects)
            case .notify(let url, let body):
                let destination = Destination.notify(url: url).key
                try tx.enqueue(peer: destination, item: item.id, body: Array(body.utf8), path: [context.nodeID], hopsLeft: 0, suggest: [], at: at)
                effects.peers.insert(destination)
                try tx.audit(.actionNotify, subject: item.id, at: at) { w in
                    w.field("playbook", playbook.name)
                    intent.describe(to: &w)
                }
                effects.tally.add(.actions, ["action": "notify", "outcome": "queued"])
            case .nothing:
                continue
            }
        }
    }

    /// A rule item a `rule` action rendered from an indicator, with the playbook that rendered it.
    struct Rendered {
        let item: Item
        let playbook: String
    }

    /// A `rule` action on an indicator: renders the rule and checks it like any other; unless the
    /// same rule is installed already, returns it as a rule item of its own, which `store` then
    /// stores, installs and runs through the rule playbooks, all in the indicator's transaction.
    static func render(_ rendering: RuleRendering, context: Context, in tx: inout StoreTransaction, effects: inout Effects) throws -> Rendered? {
        let at = context.at
        let (item, format, playbook) = (rendering.item, rendering.format, rendering.playbook)
        let content = try tx.renderRule(format: format, playbook: playbook, item: item, render: { sid in rendering.content(sid: sid) }, at: at)
        let indicator = item.indicator
        let rule: Rule
        do {
            rule = try Rule(
                format: format, content: content, name: rendering.name,
                tlp: item.tlp, confidence: indicator?.confidence ?? 50, severity: indicator?.severity, tags: indicator?.tags ?? [], parent: item.id
            )
        } catch {
            try tx.audit(.ruleInvalid, subject: item.id, at: at) { w in
                w.field("playbook", playbook)
                w.field("format", format.rawValue)
                w.field("content", content)
                w.field("error", error.description)
            }
            effects.tally.add(.actions, ["action": "rule", "outcome": "invalid"])
            return nil
        }
        if let installed = try tx.installedRule(format: format, ruleID: rule.ruleID), installed.content == rule.content, installed.name == rule.name {
            try tx.audit(.ruleUnchanged, subject: item.id, at: at) { w in
                w.field("playbook", playbook)
                w.field("path", rule.relativePath)
                w.field("rule_item", installed.item)
            }
            effects.tally.add(.actions, ["action": "rule", "outcome": "unchanged"])
            return nil
        }
        let ruleItem = Item(id: context.ids.next(), payload: .rule(rule), via: item.via, origin: context.nodeID, receivedAt: at)
        try tx.audit(.ruleRendered, subject: item.id, at: at) { w in
            w.field("playbook", playbook)
            w.field("format", format.rawValue)
            w.field("rule_item", ruleItem.id)
            w.field("path", rule.relativePath)
        }
        return Rendered(item: ruleItem, playbook: playbook)
    }

    /// Stores rendered rule items, each with its own audit entry: installs it, and runs it through
    /// the rule playbooks.
    static func store(_ rendered: [Rendered], context: Context, in tx: inout StoreTransaction, effects: inout Effects) throws {
        var queue = rendered
        while !queue.isEmpty {
            let next = queue.removeFirst()
            let encoded = EncodedItem(next.item)
            try tx.ingest(encoded) { tx in
                try install(next.item, playbook: next.playbook, at: context.at, in: &tx, effects: &effects)
                var known: StoreTransaction.ActiveDecisions?
                for matched in context.playbooks.matches(for: Subject(next.item)) {
                    try apply(
                        Match(matched, item: next.item, context.planning), to: encoded, context: context, in: &tx, effects: &effects,
                        known: &known, rendered: &queue)
                }
            }
        }
    }

    /// Installs a rule item's rule into the rules directory (once the transaction commits).
    static func install(_ item: Item, playbook: String, at: Date, in tx: inout StoreTransaction, effects: inout Effects) throws {
        let outcome: String
        switch try tx.install(item, playbook: playbook, at: at) {
        case .installed(let file, let removed):
            effects.rules.append(file)
            if let removed { effects.removedRules.append(removed) }
            outcome = "installed"
        case .unchanged:
            try tx.audit(.ruleUnchanged, subject: item.id, at: at) { w in
                w.field("playbook", playbook)
                w.field("path", item.rule?.relativePath ?? "")
            }
            outcome = "unchanged"
        case .refused:
            outcome = "refused"
        }
        effects.tally.add(.actions, ["action": "rule", "outcome": outcome])
    }
}
