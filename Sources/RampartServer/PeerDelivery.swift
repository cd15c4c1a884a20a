import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RampartCore
import RampartStore
import ServiceLifecycle
import Synchronization

/// Delivers each peer's outbox: one dispatcher per peer takes the oldest pending entries, batches
/// those with one route into a signed request, and records the outcome in the store (delivered,
/// retried later, dead-lettered). `notify` URLs get a dispatcher each too, which posts their
/// notifications one by one. Its timing follows `DeliverySchedule`. One request per peer is
/// in flight at a time, so a peer never has more than one busy connection from this node.
public final class PeerDelivery: Service, Sendable {
    let store: Store
    let nodeID: String
    let signingKey: WebhookSignature.SigningKey?
    let metrics: RampartMetrics
    let logger: Logger
    let now: @Sendable () -> Date
    let settings: DeliverySchedule.Settings
    /// Entries per request.
    let batchSize: Int
    let requestTimeout: Duration
    /// By destination: peer names, and `notify:URL`.
    private let dispatchers: Mutex<[String: Dispatcher]> = Mutex([:])
    /// Tells `run` to start dispatchers for peers added by a reload.
    private let started = Signal()
    private let stopping = Atomic<Bool>(false)

    public init(
        store: Store, nodeID: String, signingKey: WebhookSignature.SigningKey?, peers: [Peer], notifyURLs: Set<String>, metrics: RampartMetrics,
        logger: Logger,
        settings: DeliverySchedule.Settings = .init(), batchSize: Int = 2000, requestTimeout: Duration = .seconds(30),
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.store = store
        self.nodeID = nodeID
        self.signingKey = signingKey
        self.metrics = metrics
        self.logger = logger
        self.settings = settings
        self.batchSize = batchSize
        self.requestTimeout = requestTimeout
        self.now = now
        update(peers: peers, notifyURLs: notifyURLs)
    }

    /// What one peer's dispatcher knows: its configuration, schedule and counts since start.
    final class Dispatcher: Sendable {
        struct State: Sendable {
            var peer: Peer
            var schedule: DeliverySchedule
            var removed = false
            var running = false
            var sent = 0
            var received = 0
            var accepted = 0
            var refused = 0
            /// Entries sent that the peer took but refused (its answer's `refused` list).
            var refusedByPeer = 0
            var lastAttempt: Date?
            var lastSuccess: Date?
            var lastError: String?
        }

        let state: Mutex<State>
        let signal = Signal()

        init(peer: Peer, settings: DeliverySchedule.Settings) {
            state = Mutex(State(peer: peer, schedule: DeliverySchedule(settings: settings)))
        }
    }

    /// A reload's peers and notify URLs: new ones get a dispatcher, changed ones their new
    /// settings, removed ones stop (what they had queued waits for them to come back).
    public func update(peers: [Peer], notifyURLs: Set<String>) {
        let configured = peers + notifyURLs.sorted().map { Peer(name: NotifyAction.destination($0), url: $0) }
        self.dispatchers.withLock { dispatchers in
            for peer in configured {
                if let dispatcher = dispatchers[peer.name] {
                    // A reload tries notify URLs that answered 410 again; peers wait for a replay.
                    dispatcher.state.withLock { state in
                        state.peer = peer
                        if peer.isNotify { state.schedule.enable() }
                    }
                } else {
                    dispatchers[peer.name] = Dispatcher(peer: peer, settings: settings)
                }
            }
            for (name, dispatcher) in dispatchers where !configured.contains(where: { $0.name == name }) {
                dispatcher.state.withLock { $0.removed = true }
                dispatcher.signal.fire()
                dispatchers[name] = nil
            }
        }
        started.fire()
    }

    /// New entries are in these peers' outboxes.
    func wake(_ names: Set<String>) {
        guard !names.isEmpty else { return }
        let woken = dispatchers.withLock { all in names.compactMap { all[$0] } }
        for dispatcher in woken { dispatcher.signal.fire() }
    }

    /// After `rampart peers replay`: a peer disabled by 410 is tried again, at once. Called inside
    /// the replay's write, so that it is ordered with the outcomes that deliveries record.
    func enable(_ name: String) {
        guard let dispatcher = dispatchers.withLock({ $0[name] }) else { return }
        dispatcher.state.withLock { $0.schedule.enable() }
        dispatcher.signal.fire()
    }

    /// Counts a request received from a peer, for `GET /v1/peers`.
    func noteReceived(from name: String, _ received: Pipeline.Received) {
        dispatchers.withLock { $0[name] }?.state.withLock { state in
            state.received += received.accepted + received.duplicates + received.revocations + received.refused.count
            state.accepted += received.accepted + received.revocations
            state.refused += received.refused.count
        }
    }

    /// Peers' dispatchers (not notify URLs').
    func snapshot() -> [Dispatcher.State] {
        dispatchers.withLock { $0.values.map { $0.state.withLock { $0 } } }.filter { !$0.peer.isNotify }.sorted { $0.peer.name < $1.peer.name }
    }

    public func run() async throws {
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: HTTPClient.Configuration(
                redirectConfiguration: .disallow,
                timeout: .init(connect: .seconds(3), read: .milliseconds(requestTimeout.milliseconds)),
                // Each dispatcher has one request in flight; peers that share a host get a connection each.
                connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 16)
            )
        )
        // Peers a 410 disabled stay disabled across restarts, until a replay.
        for (name, outbox) in (try? await store.outboxStatus()) ?? [:] {
            guard let reason = outbox.disabledReason, let dispatcher = dispatchers.withLock({ $0[name] }),
                !dispatcher.state.withLock({ $0.peer.isNotify })
            else { continue }
            dispatcher.state.withLock { $0.schedule.disable(reason: reason) }
        }
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
                    let idle = dispatchers.withLock { all in
                        all.values.filter { dispatcher in
                            dispatcher.state.withLock { state in
                                defer { state.running = true }
                                return !state.running
                            }
                        }
                    }
                    for dispatcher in idle {
                        group.addTask { await self.deliver(dispatcher, client: client) }
                    }
                    await started.wait(timeout: .seconds(3600))
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            self.started.fire()
            for dispatcher in self.dispatchers.withLock({ Array($0.values) }) { dispatcher.signal.fire() }
        }
        try? await client.shutdown()
    }

    /// One peer's loop: wait until something is due, send a batch, record what happened. While a
    /// request is in flight the next batch is read and encoded, and sent once the first succeeded.
    private func deliver(_ dispatcher: Dispatcher, client: HTTPClient) async {
        var prefetched: Task<Batch?, any Error>?
        func discardPrefetched() async {
            prefetched?.cancel()
            _ = try? await prefetched?.value
            prefetched = nil
        }
        while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
            let (peer, schedule, removed) = dispatcher.state.withLock { ($0.peer, $0.schedule, $0.removed) }
            if removed { break }
            let at = now()
            if case .waiting(let until) = schedule.state, until > at {
                await discardPrefetched()
                await dispatcher.signal.wait(timeout: .milliseconds(Int64(until.timeIntervalSince(at) * 1000) + 1))
                continue
            }
            if case .disabled = schedule.state {
                await discardPrefetched()
                await dispatcher.signal.wait(timeout: .seconds(3600))
                continue
            }
            do {
                let next = prefetched
                prefetched = nil
                let ready: Batch? = if let next { try await next.value } else { try await prepare(for: peer, after: nil) }
                guard let batch = ready else {
                    // Nothing pending: wait for a wakeup (a new entry, a replay). The timeout only
                    // bounds how long an entry could wait if a wakeup were ever missed.
                    await dispatcher.signal.wait(timeout: .seconds(5))
                    continue
                }
                guard !batch.entries.isEmpty else { continue }
                if batch.complete {
                    let after = batch.lastSeq
                    prefetched = Task { try await self.prepare(for: peer, after: after) }
                }
                if try await send(batch, to: peer, dispatcher: dispatcher, client: client) == false { await discardPrefetched() }
            } catch {
                await discardPrefetched()
                logger.error("peer.dispatch_failed", metadata: ["rampart.peer": "\(peer.name)", "rampart.error": "\(error)"])
                await dispatcher.signal.wait(timeout: .seconds(1))
            }
        }
        await discardPrefetched()
    }

    /// Entries ready to go in one request.
    struct Batch: Sendable {
        let entries: [OutboxEntry]
        let body: [UInt8]
        /// The last pending entry looked at.
        let lastSeq: Int64
        /// Every pending entry up to `lastSeq` is in this batch or was withheld: the next batch may
        /// start after it. (Entries of another route wait for a batch of their own.)
        let complete: Bool
    }

    /// Reads the oldest pending entries (after `after`) and encodes those that share the first
    /// one's route. What may no longer go (the peer expired, the item's validity ended, the
    /// sharing policy changed) is withheld. Nil when nothing is pending.
    private func prepare(for peer: Peer, after: Int64?) async throws -> Batch? {
        let pending = try await store.pendingOutbox(peer: peer.name, after: after, limit: peer.isNotify ? 1 : batchSize)
        guard let first = pending.first, let last = pending.last else { return nil }
        if peer.isNotify, let body = first.body {
            return Batch(entries: [first], body: body, lastSeq: first.seq, complete: true)
        }
        let at = now()
        var withheld: [(OutboxEntry, code: String, reason: String)] = []
        var batch: [OutboxEntry] = []
        var bodies: [[UInt8]] = []
        var complete = true
        for entry in pending {
            guard entry.path == first.path && entry.hopsLeft == first.hopsLeft else {
                complete = false
                continue
            }
            if peer.hasExpired(at: at) {
                withheld.append((entry, "expired", "the peer's entry expired"))
                continue
            }
            if let revocation = entry.body {
                batch.append(entry)
                bodies.append(revocation)
                continue
            }
            guard let stored = entry.storedItem else {
                withheld.append((entry, "missing", "the item is not stored"))
                continue
            }
            do {
                var item = try Item(stored: JSONValue.parse(stored, maxDepth: 16), now: at)
                item.suggested = entry.suggest
                switch peer.share.share(item) {
                case .success(let shared):
                    batch.append(entry)
                    bodies.append(shared.wireJSON)
                case .failure(let reason):
                    withheld.append((entry, reason.code, reason.message))
                }
            } catch {
                withheld.append((entry, "invalid", error.message))
            }
        }
        if !withheld.isEmpty {
            let (name, refused) = (peer.name, withheld)
            try await store.write { tx in
                for (entry, code, reason) in refused {
                    try tx.markWithheld(peer: name, seq: entry.seq, item: entry.item, code: code, reason: reason, at: at)
                }
            }
            metrics.count("rampart_peer_withheld_total", ["peer": peer.name], withheld.count)
        }
        let body = batch.isEmpty ? [] : PeerMessage.encode(path: first.path, hopsLeft: first.hopsLeft, entries: bodies, at: at)
        return Batch(entries: batch, body: body, lastSeq: last.seq, complete: complete)
    }

    /// Posts a batch, signed, and records the outcome. Returns whether the peer took it.
    private func send(_ batch: Batch, to peer: Peer, dispatcher: Dispatcher, client: HTTPClient) async throws -> Bool {
        let at = now()
        let webhookID = "msg_" + IDGenerator.shared.next().replacingOccurrences(of: "-", with: "")
        let timestamp = Int(at.timeIntervalSince1970)
        var request = HTTPClientRequest(url: peer.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "rampart/\(nodeID)")
        // Notifications are signed too when this node has a key, so that their receiver can check them.
        let signature = try WebhookSignature.sign(id: webhookID, timestamp: timestamp, body: batch.body, key: signingKey, secret: peer.secret)
        if !signature.isEmpty {
            request.headers.add(name: "webhook-id", value: webhookID)
            request.headers.add(name: "webhook-timestamp", value: String(timestamp))
            request.headers.add(name: "webhook-signature", value: signature)
        }
        request.body = .bytes(ByteBuffer(bytes: batch.body))

        let begun = dispatcher.state.withLock { $0.schedule.epoch }
        let started = ContinuousClock.now
        let outcome: DeliverySchedule.Outcome
        let failure: String?
        var refused: [(entry: OutboxEntry, code: String, message: String)] = []
        do {
            let response = try await client.execute(request, timeout: .milliseconds(requestTimeout.milliseconds))
            let answer = try await response.body.collect(upTo: 1 << 20)
            let status = Int(response.status.code)
            if (200..<300).contains(status) {
                (outcome, failure) = (.delivered, nil)
                if !peer.isNotify { refused = PeerDelivery.refusals(in: answer.readableBytesView, of: batch.entries) }
            } else {
                let retryAfter = DeliverySchedule.retryAfter(response.headers.first(name: "retry-after"), now: now())
                outcome = .failed(status: status, retryAfter: retryAfter)
                let detail = (try? JSONValue.parse(answer.readableBytesView))?["detail"].flatMap { if case .string(let s) = $0 { s } else { nil } }
                failure = "HTTP \(status)\(detail.map { ": \($0)" } ?? "")"
            }
        } catch {
            (outcome, failure) = (.failed(status: nil, retryAfter: nil), "\(error)")
        }
        let took = ContinuousClock.now - started
        let done = now()
        let refusals = refused
        let refusedSeqs = Set(refused.map(\.entry.seq))
        let seqs = batch.entries.map(\.seq)
        let name = peer.name
        let random = Double.random(in: 0..<1)
        let (dead, failures) = try await store.write { tx -> (Int, Int) in
            // The outcome goes into the schedule here, on the writer's thread, in order with a
            // replay's write: a replay that came while this request was in flight wins over it.
            let (deadBefore, disabled, failures) = dispatcher.state.withLock { state -> (Date, String?, Int) in
                let counted = state.schedule.record(outcome, begun: begun, at: done, random: random)
                let disabled: String? = if counted, case .disabled(let reason) = state.schedule.state { reason } else { nil }
                return (state.schedule.deadBefore(done), disabled, state.schedule.failures)
            }
            switch outcome {
            case .delivered:
                try tx.markDelivered(peer: name, seqs: seqs.filter { !refusedSeqs.contains($0) }, webhookID: webhookID, at: done)
                for (entry, code, message) in refusals {
                    try tx.markRefused(peer: name, seq: entry.seq, item: entry.item, code: code, message: message, at: done)
                }
                return (0, failures)
            case .failed:
                let dead = try tx.markFailed(peer: name, seqs: seqs, error: failure ?? "", deadBefore: deadBefore, at: done)
                if let disabled { try tx.disablePeer(name, reason: disabled, at: done) }
                return (dead, failures)
            }
        }
        dispatcher.state.withLock { state in
            state.lastAttempt = done
            if outcome == .delivered {
                state.sent += seqs.count - refused.count
                state.refusedByPeer += refused.count
                state.lastSuccess = done
                state.lastError = refused.last.map { "\(refused.count) refused by the peer, the last: \($0.code): \($0.message)" }
            } else {
                state.lastError = failure
            }
        }
        if !refused.isEmpty {
            metrics.count("rampart_peer_refused_by_peer_total", ["peer": name], refused.count)
            logger.warning(
                "peer.entries_refused",
                metadata: [
                    "rampart.peer": "\(name)", "rampart.entries": "\(refused.count)", "rampart.code": "\(refused[0].code)",
                    "rampart.error": "\(refused[0].message)",
                ]
            )
        }
        metrics.delivery(peer: name, entries: seqs.count - refused.count, took: took, delivered: outcome == .delivered, deadLettered: dead)
        if let failure {
            logger.warning(
                "peer.delivery_failed",
                metadata: [
                    "rampart.peer": "\(name)", "rampart.error": "\(failure)", "rampart.entries": "\(seqs.count)",
                    "rampart.failures": "\(failures)", "rampart.dead_lettered": "\(dead)",
                ]
            )
        }
        return outcome == .delivered
    }

    /// The entries of a batch that the peer's answer lists as refused (`{"refused": [{"index": N,
    /// "code": ..., "error": ...}]}`, N the entry's place in the batch).
    static func refusals(in answer: some Collection<UInt8>, of entries: [OutboxEntry]) -> [(entry: OutboxEntry, code: String, message: String)] {
        guard case .array(let list)? = (try? JSONValue.parse(answer))?["refused"] else { return [] }
        return list.compactMap { refusal in
            guard case .number(let index)? = refusal["index"], index == index.rounded(), index >= 0, Int(index) < entries.count else { return nil }
            let code: String = if case .string(let c)? = refusal["code"] { c } else { "refused" }
            let message: String = if case .string(let m)? = refusal["error"] { m } else { "" }
            return (entries[Int(index)], code.preview, message.preview)
        }
    }
}

/// A wakeup for one waiting task: `fire` before `wait` is remembered, so none is lost.
final class Signal: Sendable {
    private let state = Mutex<(fired: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func fire() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.fired = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns once fired, after `timeout`, or when the task is cancelled.
    func wait(timeout: Duration) async {
        let timer = Task {
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { fire() }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let fired = state.withLock { state in
                    if state.fired {
                        state.fired = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if fired { continuation.resume() }
            }
        } onCancel: {
            fire()
        }
        timer.cancel()
    }
}
