import Crypto
import Foundation
import Logging
import NIOCore
import RampartCore
import RampartStore

/// The ingest path: parse a request body into items, run each through the playbooks, and commit
/// them with what they caused (decisions, audit entries) in chunks that pipeline with parsing:
/// while one chunk commits on the writer thread, the next is parsed and matched on this one.
/// `ingest` returns once every chunk is durable; the firewall hears of new blocks from the store,
/// at each chunk's commit, before its log sync.
public final class Pipeline: Sendable {
    let store: Store
    let execRunner: ExecRunner
    let ruleDirectory: RuleDirectory
    let delivery: PeerDelivery
    let metrics: RampartMetrics
    let nodeID: String
    let ids: IDGenerator
    let now: @Sendable () -> Date
    let limits: IngestParser.Limits
    /// What is in force (the reloader replaces it).
    let inForce: @Sendable () -> InForce
    static let chunkSize = 2048
    static let chunksInFlight = 4

    public init(
        store: Store, execRunner: ExecRunner, rules: RuleDirectory, delivery: PeerDelivery,
        metrics: RampartMetrics = RampartMetrics(),
        nodeID: String, limits: IngestParser.Limits, inForce: @escaping @Sendable () -> InForce, ids: IDGenerator = .shared,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.store = store
        self.execRunner = execRunner
        self.ruleDirectory = rules
        self.delivery = delivery
        self.metrics = metrics
        self.nodeID = nodeID
        self.ids = ids
        self.now = now
        self.limits = limits
        self.inForce = inForce
    }

    var current: InForce { inForce() }

    /// The playbooks in force. A request uses the set that was in force when it started.
    public var playbooks: PlaybookSet { inForce().playbooks }

    /// The safety policy in force, for every block whatever its source.
    public var policy: SafetyPolicy { inForce().policy }

    /// The peers configured now.
    public var peers: [Peer] { inForce().peers }

    public struct Summary: Sendable {
        public var ids: [String] = []
        /// The first `Pipeline.refusalsListed` refusals.
        public var rejected: [Problem.ItemError] = []
        /// Every refusal.
        public var rejectedCount = 0
        /// STIX objects left alone, by place in the body, and why (another object type, a pattern
        /// that names nothing to act on, an older or the same version as the one stored).
        public var skipped: [(position: Int, reason: String)] = []
        /// STIX objects revoked.
        public var revoked: [String] = []
        /// The body was STIX (a bundle or an envelope).
        public var stix = false
    }

    /// How long an `Idempotency-Key` is remembered: a retry within it stores nothing twice.
    public static let idempotencyWindow: TimeInterval = 24 * 3600

    /// The request's `Idempotency-Key` was used before for another body (or other parameters).
    public struct IdempotencyKeyReused: Error {}

    /// A request's `Idempotency-Key`, and the digest of what the request sends under it.
    public struct IdempotencyKey: Sendable {
        public let key: String
        public let digest: [UInt8]

        /// `parts`: what the request's items are made of (its body, content type and query), each
        /// hashed where it lies.
        public init(key: String, request parts: [ByteBuffer]) {
            self.key = key
            var hash = SHA256()
            for part in parts {
                hash.update(data: withUnsafeBytes(of: UInt64(part.readableBytes).bigEndian, Array.init))
                part.withUnsafeReadableBytes { hash.update(bufferPointer: $0) }
            }
            digest = Array(hash.finalize())
        }
    }

    /// Refusals listed one by one in an answer and in the audit log; past these a request's
    /// refusals are only counted (by code), so that a body of bad lines costs little.
    public static let refusalsListed = 100

    /// Parses and commits a body. Throws `IngestParser.BodyError` when the body as a whole is refused
    /// (nothing is then written), or the store's error if a commit fails.
    /// With an `idempotency` key, items' ids derive from the key and their place in the body, so
    /// that a retry of a request that failed part way (or whose answer was lost) stores only
    /// what is missing; the same key with another body throws `IdempotencyKeyReused`.
    public func ingest(
        _ body: ByteBuffer, format: IngestParser.Format, defaults: IndicatorDefaults, via: String, idempotency: IdempotencyKey? = nil
    ) async throws -> Summary {
        if let idempotency, let digest = try await store.idempotencyDigest(idempotency.key, via: via), digest != idempotency.digest {
            throw IdempotencyKeyReused()
        }
        let receivedAt = now()
        var reader = try IngestParser.Reader(Array(body.readableBytesView), format: format, defaults: defaults, now: receivedAt, limits: limits)
        return try await ingest(
            entries: { reader.next() }, stix: reader.format == .stix, positionName: IngestParser.positionName(format), via: via,
            idempotency: idempotency, at: receivedAt)
    }

    /// Commits the entries `next` gives, in order, until it gives nil: the chunked path every
    /// body takes, and what a feed's values take.
    func ingest(
        entries next: () -> IngestParser.Entry?, stix: Bool, positionName: String, via: String, idempotency: IdempotencyKey? = nil,
        at receivedAt: Date
    ) async throws -> Summary {
        var summary = Summary()
        summary.stix = stix
        let inForce = current
        let playbooks = inForce.playbooks
        let context = context(via: via, positionName: positionName, inForce: inForce, at: receivedAt)
        // Chunks committing, oldest first. Each stays referenced until its commit is done, so that
        // it is freed on this thread rather than the writer's; at most `chunksInFlight` wait, so a
        // large body never holds more than a few chunks' items in memory while the writer catches up.
        // Items are counted here (the writer has less time to spare) and reported once committed.
        var inFlight: [(chunk: [Planned], counted: Tally, commit: PendingWrite<Outcomes>)] = []
        func finishOldest() async throws {
            let (_, counted, commit) = inFlight.removeFirst()
            let outcomes = try await commit.value()
            summary.ids += outcomes.stixItems
            summary.skipped += outcomes.stixSkipped
            summary.revoked += outcomes.stixRevoked
            await carryOut(outcomes)
            metrics.add(counted)
        }
        var kinds: [IndicatorKind: Int] = [:]
        var rejections: [String: Int] = [:]
        var keyUnrecorded = idempotency != nil
        func send(_ chunk: [Planned]) {
            var counted = Tally()
            for (kind, count) in kinds { counted.add(.itemsIngested, ["kind": kind.rawValue, "via": via], count) }
            for (reason, count) in rejections { counted.add(.itemsRejected, ["reason": reason], count) }
            (kinds, rejections) = ([:], [:])
            // The key goes in with the first chunk: if that commit fails, nothing of the request is kept.
            let recordKey = keyUnrecorded ? idempotency : nil
            keyUnrecorded = false
            inFlight.append(
                (
                    chunk, counted,
                    store.enqueue(weight: chunk.count) { tx in
                        if let recordKey, try !tx.recordIdempotencyKey(recordKey.key, via: via, digest: recordKey.digest, at: receivedAt) {
                            throw IdempotencyKeyReused()
                        }
                        return try tx.apply(chunk, in: context)
                    }
                ))
        }
        var chunk: [Planned] = []
        chunk.reserveCapacity(Pipeline.chunkSize)
        var unlisted: [String: Int] = [:]
        do {
            while let entry = next() {
                switch entry.result {
                case .success(.indicator(let indicator)):
                    let id = entry.id ?? idempotency.map { IDGenerator.derived([$0.key, via, String(entry.position)]) } ?? ids.next()
                    let item = Item(id: id, payload: .indicator(indicator), via: via, origin: nodeID, receivedAt: receivedAt)
                    summary.ids.append(item.id)
                    kinds[indicator.kind, default: 0] += 1
                    chunk.append(.accepted(item, playbooks, context.planning))
                case .success(.stix(let object)):
                    guard let version = object.version else {
                        if case .skipped(let reason) = object.content { summary.skipped.append((entry.position, reason)) }
                        continue
                    }
                    switch object.content {
                    case .skipped(let reason):
                        summary.skipped.append((entry.position, reason))
                    case .revoked:
                        chunk.append(.stixObject(position: entry.position, version, revoked: true, items: []))
                    case .payloads(let payloads):
                        for message in object.refused { summary.skipped.append((entry.position, "value refused: \(message)")) }
                        let items = payloads.enumerated().map { index, payload in
                            let id = idempotency.map { IDGenerator.derived([$0.key, via, "\(entry.position).\(index)"]) } ?? ids.next()
                            var item = Item(id: id, payload: payload, via: via, origin: nodeID, receivedAt: receivedAt)
                            if payloads.count == 1 { item.stix = version }
                            if let kind = item.indicator?.kind { kinds[kind, default: 0] += 1 }
                            return Planned.accepted(item, playbooks, context.planning)
                        }
                        chunk.append(.stixObject(position: entry.position, version, revoked: false, items: items))
                    }
                case .failure(let error):
                    summary.rejectedCount += 1
                    rejections[error.code.rawValue, default: 0] += 1
                    guard summary.rejectedCount <= Pipeline.refusalsListed else {
                        unlisted[error.code.rawValue, default: 0] += 1
                        continue
                    }
                    summary.rejected.append(
                        Problem.ItemError(positionName: positionName, position: entry.position, code: error.code, message: error.message))
                    chunk.append(.refused(position: entry.position, error, raw: entry.raw))
                }
                guard chunk.count >= Pipeline.chunkSize else { continue }
                if inFlight.count >= Pipeline.chunksInFlight { try await finishOldest() }
                send(chunk)
                chunk = []
                chunk.reserveCapacity(Pipeline.chunkSize)
            }
            if !unlisted.isEmpty { chunk.append(.refusedBeyond(listed: Pipeline.refusalsListed, counts: unlisted)) }
            if !chunk.isEmpty { send(chunk) }
            while !inFlight.isEmpty { try await finishOldest() }
        } catch {
            // Chunks queued after a failed one may have committed: what they caused still reaches
            // the firewall, the exec runner and the rules directory.
            while !inFlight.isEmpty { try? await finishOldest() }
            throw error
        }
        if summary.ids.count + summary.rejectedCount >= FreeMemory.bulk { store.releaseMemoryWhenQuiet() }
        return summary
    }

    func context(via: String, positionName: String, inForce: InForce, at: Date, maxBlock: Duration? = nil) -> EngineContext {
        EngineContext(
            via: via, positionName: positionName, planning: planning(inForce, at: at, maxBlock: maxBlock), playbooks: inForce.playbooks, ids: ids)
    }

    /// What the actions' plans see for a request at `at` under the configuration in force.
    func planning(_ inForce: InForce, at: Date, maxBlock: Duration? = nil) -> PlanContext {
        PlanContext(nodeID: nodeID, peers: inForce.peers, policy: inForce.policy, at: at, maxBlock: maxBlock)
    }

    /// Withdraws items a source (`via`) sent, as a peer's revocation does: the decisions only
    /// they support are revoked, and the peers they went to hear of it. Returns once durable.
    public func withdraw(items: [String], via: String, reason: String) async throws {
        guard !items.isEmpty else { return }
        let at = now()
        let context = context(via: via, positionName: "item", inForce: current, at: at)
        let planned = items.map { Planned.revocation(PeerMessage.Revocation(id: ids.next(), item: $0, reason: reason), path: []) }
        for chunk in stride(from: 0, to: planned.count, by: Pipeline.chunkSize).map({
            Array(planned[$0..<min($0 + Pipeline.chunkSize, planned.count)])
        }) {
            await carryOut(try await store.write { tx in try tx.apply(chunk, in: context) })
        }
    }

    /// Commits a detection rule posted to the API, with what the rule playbooks make of it;
    /// returns its item, once durable.
    public func ingest(rule: Rule, via: String) async throws -> Item {
        let at = now()
        let inForce = current
        let item = Item(id: ids.next(), payload: .rule(rule), via: via, origin: nodeID, receivedAt: at)
        let context = context(via: via, positionName: "rule", inForce: inForce, at: at)
        let planned = [Planned.accepted(item, inForce.playbooks, context.planning)]
        await carryOut(try await store.write { tx in try tx.apply(planned, in: context) })
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
        let (outcome, outcomes) = try await store.write { tx in
            var outcomes = Outcomes()
            let outcome = try tx.block(request, policy: policy, now: at)
            outcomes.tally.add(outcome)
            return (outcome, outcomes)
        }
        await carryOut(outcomes)
        return outcome
    }

    /// Hands what a durable commit caused to the exec runner, the rules directory and the peers'
    /// dispatchers.
    func carryOut(_ outcomes: Outcomes) async {
        if !outcomes.rules.isEmpty || !outcomes.removedRules.isEmpty {
            let (directory, rules, removed) = (ruleDirectory, outcomes.rules, outcomes.removedRules)
            do {
                try await Blocking.run {
                    directory.remove(removed)
                    directory.write(rules)
                }
            } catch {
                // The pool stopped (the daemon is shutting down): the rules directory follows
                // the store at the next start.
            }
        }
        execRunner.submit(outcomes.execs)
        delivery.wake(outcomes.destinations)
        metrics.add(outcomes.tally)
    }
}
