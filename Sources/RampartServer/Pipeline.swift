import Foundation
import Logging
import NIOCore
import RampartCore
import RampartStore
import Synchronization

/// The ingest path: parse a request body into items, run each through the playbooks, and commit
/// them with what they caused (decisions, audit entries) in chunks that pipeline with parsing:
/// while one chunk commits on the writer thread, the next is parsed and matched on this one.
/// `ingest` returns once every chunk is durable; the firewall hears of new blocks after the commit.
public final class Pipeline: Sendable {
    let store: Store
    let enforcer: Enforcer
    let execRunner: ExecRunner
    let ruleDirectory: RuleDirectory
    let metrics: RampartMetrics
    let nodeID: String
    let ids: IDGenerator
    let now: @Sendable () -> Date
    let limits: IngestParser.Limits
    private let inForce: Mutex<(playbooks: PlaybookSet, policy: SafetyPolicy)>
    static let chunkSize = 2048
    static let chunksInFlight = 4

    public init(
        store: Store, enforcer: Enforcer, execRunner: ExecRunner, rules: RuleDirectory, metrics: RampartMetrics = RampartMetrics(), nodeID: String,
        limits: IngestParser.Limits, policy: SafetyPolicy, playbooks: PlaybookSet, ids: IDGenerator = .shared,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.store = store
        self.enforcer = enforcer
        self.execRunner = execRunner
        self.ruleDirectory = rules
        self.metrics = metrics
        self.nodeID = nodeID
        self.ids = ids
        self.now = now
        self.limits = limits
        self.inForce = Mutex((playbooks, policy))
    }

    /// The playbooks in force. A request uses the set that was in force when it started.
    public var playbooks: PlaybookSet { inForce.withLock { $0.playbooks } }

    /// The safety policy in force, for every block whatever its source.
    public var policy: SafetyPolicy { inForce.withLock { $0.policy } }

    /// Puts a new set of playbooks and safety policy in force, at once, for the requests that start after.
    public func replace(playbooks: PlaybookSet, policy: SafetyPolicy) {
        inForce.withLock { $0 = (playbooks, policy) }
    }

    public struct Summary: Sendable {
        public var ids: [String] = []
        public var rejected: [Problem.ItemError] = []
    }

    private enum Prepared: Sendable {
        case accepted(EncodedItem, [Match], recordSighting: Bool)
        case refused(position: Int, ValueError, raw: String?)
    }

    /// A playbook that matched an item, with its `playbook.matched` audit detail encoded before the
    /// write, and its metrics series.
    struct Match: Sendable {
        let playbook: Playbook
        let detail: AuditDetail
        let counted: Tally.Key

        init(_ playbook: Playbook, item: Item) {
            self.playbook = playbook
            counted = Tally.Key("rampart_playbook_matches_total", ["playbook": playbook.name])
            detail = AuditDetail { w in
                w.field("playbook", playbook.name)
                w.field("mode", playbook.mode.rawValue)
                w.field("value", item.indicator?.value ?? "")
                w.field("actions", playbook.actions.map(\.name))
            }
        }
    }

    /// Parses and commits a body. Throws `IngestParser.BodyError` when the body as a whole is refused
    /// (nothing is then written), or the store's error if a commit fails.
    public func ingest(_ body: ByteBuffer, format: IngestParser.Format, defaults: IndicatorDefaults, via: String) async throws -> Summary {
        let receivedAt = now()
        let positionName = IngestParser.positionName(format)
        var summary = Summary()
        let (playbooks, policy) = inForce.withLock { $0 }
        var reader = try IngestParser.Reader(Array(body.readableBytesView), format: format, defaults: defaults, now: receivedAt, limits: limits)
        // Chunks committing, oldest first. Each stays referenced until its commit is done, so that
        // it is freed on this thread rather than the writer's; at most `chunksInFlight` wait, so a
        // large body never holds more than a few chunks' items in memory while the writer catches up.
        // Items are counted here (the writer has less time to spare) and reported once committed.
        var inFlight: [(chunk: [Prepared], counted: Tally, commit: PendingWrite<Effects>)] = []
        func finishOldest() async throws {
            let (_, counted, commit) = inFlight.removeFirst()
            let effects = try await commit.value()
            ruleDirectory.write(effects.rules)
            enforcer.submit(effects.firewall)
            execRunner.submit(effects.execs)
            metrics.add(counted)
            metrics.add(effects.tally)
        }
        var kinds: [IndicatorKind: Int] = [:]
        var rejections: [String: Int] = [:]
        func send(_ chunk: [Prepared]) {
            var counted = Tally()
            for (kind, count) in kinds { counted.add("rampart_items_ingested_total", ["kind": kind.rawValue, "via": via], count) }
            for (reason, count) in rejections { counted.add("rampart_items_rejected_total", ["reason": reason], count) }
            (kinds, rejections) = ([:], [:])
            inFlight.append((chunk, counted, store.enqueue(weight: chunk.count) { tx in
                try Pipeline.commit(chunk, via: via, positionName: positionName, policy: policy, at: receivedAt, in: &tx)
            }))
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
                    let matched = playbooks.playbooks.isEmpty ? [] : playbooks.matches(for: Subject(indicator, via: via)).map { Match($0, item: item) }
                    chunk.append(.accepted(EncodedItem(item), matched, recordSighting: playbooks.sightingKinds.contains(indicator.kind)))
                case .failure(let error):
                    summary.rejected.append(Problem.ItemError(positionName: positionName, position: entry.position, code: error.code.rawValue, message: error.message))
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
        return summary
    }

    /// What a commit leaves to do outside the database once it is durable.
    struct Effects: Sendable {
        var firewall: [FirewallChange] = []
        var execs: [ExecJob] = []
        var rules: [RuleFile] = []
        var tally = Tally()
    }

    private static func commit(
        _ chunk: [Prepared], via: String, positionName: String, policy: SafetyPolicy, at: Date, in tx: inout StoreTransaction
    ) throws -> Effects {
        var effects = Effects()
        for entry in chunk {
            switch entry {
            case .accepted(let encoded, let matched, let recordSighting):
                guard try tx.insert(encoded) else { continue }
                if recordSighting { try tx.recordSighting(encoded.item) }
                for match in matched {
                    let playbook = match.playbook
                    if let sightings = playbook.sightings, let value = encoded.item.indicator?.value {
                        let since = at.addingTimeInterval(-Double(sightings.within.milliseconds) / 1000)
                        guard try tx.countSightings(of: value, distinct: sightings.distinct, since: since) >= sightings.min else { continue }
                    }
                    try apply(match, to: encoded, policy: policy, at: at, in: &tx, effects: &effects)
                }
            case .refused(let position, let error, let raw):
                try tx.refuse(via: via, position: positionName, index: position, error: error, raw: raw, at: at)
            }
        }
        return effects
    }

    /// Records the match and carries out the playbook's actions inside the item's transaction.
    static func apply(
        _ match: Match, to encoded: EncodedItem, policy: SafetyPolicy, at: Date, in tx: inout StoreTransaction, effects: inout Effects
    ) throws {
        let item = encoded.item
        let playbook = match.playbook
        try tx.audit("playbook.matched", subject: item.id, detail: match.detail, at: at)
        effects.tally.add(match.counted)
        for action in playbook.actions {
            switch action {
            case .block(let block):
                guard let target = item.indicator?.network else { continue }
                let request = BlockRequest(
                    target: target, direction: block.direction, duration: block.duration, playbook: playbook.name, item: item.id,
                    origin: item.origin, reason: "playbook \(playbook.name)", simulated: playbook.mode == .simulate,
                    escalation: block.escalate
                )
                let outcome = try tx.block(request, policy: policy, now: at)
                effects.tally.add(outcome)
                if let change = outcome.firewallChange(at: at) { effects.firewall.append(change) }
            case .exec(let exec):
                let argv = exec.arguments(for: item, playbook: playbook.name)
                guard playbook.mode == .enforce else {
                    try tx.audit("action.exec", subject: item.id, at: at) { w in
                        w.field("playbook", playbook.name)
                        w.field("argv", argv)
                        w.field("simulated", true)
                    }
                    effects.tally.add("rampart_actions_total", ["action": "exec", "outcome": "simulated"])
                    continue
                }
                effects.execs.append(
                    ExecJob(
                        item: item.id, playbook: playbook.name, argv: argv, input: encoded.json,
                        environment: ExecRunner.environment(for: item, playbook: playbook.name), timeout: exec.timeout
                    )
                )
            case .rule(let rule):
                guard playbook.mode == .enforce else {
                    try tx.audit("action.rule", subject: item.id, at: at) { w in
                        w.field("playbook", playbook.name)
                        w.field("format", rule.format.rawValue)
                        w.field("content", rule.template.render(item, playbook: playbook.name))
                        w.field("simulated", true)
                    }
                    effects.tally.add("rampart_actions_total", ["action": "rule", "outcome": "simulated"])
                    continue
                }
                effects.rules.append(
                    try tx.writeRule(format: rule.format, playbook: playbook.name, item: item, render: { sid in
                        rule.template.render(item, playbook: playbook.name, sid: sid)
                    }, at: at)
                )
                effects.tally.add("rampart_actions_total", ["action": "rule", "outcome": "written"])
            }
        }
    }
}
