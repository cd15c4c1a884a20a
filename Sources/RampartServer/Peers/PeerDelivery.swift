import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RampartCore
import RampartStore
import ServiceLifecycle
import Synchronization

/// Delivers each peer's outbox: one dispatcher per peer does what its `DeliveryMachine` says
/// (read the oldest pending entries, batch those with one route into a signed request, record
/// the outcome in the store: delivered, refused, retried later, dead-lettered, disabled).
/// `notify` URLs get a dispatcher each too, which posts their notifications one by one. Its
/// timing follows `DeliverySchedule`. One request per peer is
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
    /// By destination key: peer names, and `notify:URL`.
    let dispatchers: Mutex<[String: Dispatcher]> = Mutex([:])
    /// What the dispatchers' waits (backoff, safety timeouts) run on.
    let clock: any Clock<Duration>
    /// Tells `run` to start dispatchers for peers added by a reload.
    private let started: Signal
    private let stopping = Atomic<Bool>(false)
    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    public init(
        store: Store, nodeID: String, signingKey: WebhookSignature.SigningKey?, peers: [Peer], notifyURLs: Set<String>, metrics: RampartMetrics,
        logger: Logger,
        settings: DeliverySchedule.Settings = .init(), batchSize: Int = 2000, requestTimeout: Duration = .seconds(30),
        clock: any Clock<Duration> = ContinuousClock(), now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.clock = clock
        self.started = Signal(clock: clock)
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

    /// What one destination's dispatcher knows: its configuration, schedule and counts since start.
    final class Dispatcher: Sendable {
        struct State: Sendable {
            var destination: Destination
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
            /// Anti-entropy (`AntiEntropy.swift`): whether its loop runs, and how the last syncs went.
            var syncing = false
            var lastSyncAttempt: Date?
            var lastSync: Date?
            var lastSyncRepaired = 0
            var lastSyncError: String?
            /// Entries queued again by syncs since start.
            var repaired = 0
            /// Whether the next sync asks the peer to sync back at once: the first since start, and
            /// the first after the link was seen down.
            var reciprocate = true
        }

        let state: Mutex<State>
        let signal: Signal
        /// Wakes the anti-entropy loop: a link back, a sync the peer began.
        let syncSignal: Signal

        init(_ destination: Destination, settings: DeliverySchedule.Settings, clock: any Clock<Duration>) {
            var settings = settings
            if let peer = destination.peer { settings.deadAfter = peer.deadLetterAfter }
            state = Mutex(State(destination: destination, schedule: DeliverySchedule(settings: settings)))
            signal = Signal(clock: clock)
            syncSignal = Signal(clock: clock)
        }
    }

    /// A reload's peers and notify URLs: new ones get a dispatcher, changed ones their new
    /// settings, removed ones stop (what they had queued waits for them to come back).
    public func update(peers: [Peer], notifyURLs: Set<String>) {
        let configured = peers.map(Destination.peer) + notifyURLs.sorted().map { Destination.notify(url: $0) }
        let keys = Set(configured.map(\.key))
        self.dispatchers.withLock { dispatchers in
            for destination in configured {
                if let dispatcher = dispatchers[destination.key] {
                    // A reload tries notify URLs that answered 410 again; peers wait for a replay.
                    dispatcher.state.withLock { state in
                        state.destination = destination
                        state.schedule.settings.deadAfter = destination.peer?.deadLetterAfter ?? settings.deadAfter
                        if destination.peer == nil { state.schedule.enable() }
                    }
                } else {
                    dispatchers[destination.key] = Dispatcher(destination, settings: settings, clock: clock)
                }
            }
            for (name, dispatcher) in dispatchers where !keys.contains(name) {
                dispatcher.state.withLock { $0.removed = true }
                dispatcher.signal.fire()
                dispatcher.syncSignal.fire()
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
        dispatchers.withLock { $0.values.map { $0.state.withLock { $0 } } }.filter { $0.destination.peer != nil }.sorted {
            $0.destination.key < $1.destination.key
        }
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
                dispatcher.state.withLock({ $0.destination.peer != nil })
            else { continue }
            dispatcher.state.withLock { $0.schedule.disable(reason: reason) }
        }
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
                    let (idle, unsynced) = dispatchers.withLock { all in
                        (
                            all.values.filter { dispatcher in
                                dispatcher.state.withLock { state in
                                    defer { state.running = true }
                                    return !state.running
                                }
                            },
                            all.values.filter { dispatcher in
                                dispatcher.state.withLock { state in
                                    guard state.destination.peer != nil, !state.syncing else { return false }
                                    state.syncing = true
                                    return true
                                }
                            }
                        )
                    }
                    for dispatcher in idle {
                        group.addTask { await self.deliver(dispatcher, client: client) }
                    }
                    for dispatcher in unsynced {
                        group.addTask { await self.synchronize(dispatcher, client: client) }
                    }
                    await started.wait(timeout: .seconds(3600))
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            self.started.fire()
            for dispatcher in self.dispatchers.withLock({ Array($0.values) }) {
                dispatcher.signal.fire()
                dispatcher.syncSignal.fire()
            }
        }
        try? await client.shutdown()
    }

    /// One destination's loop: it does what its `DeliveryMachine` says (sleep, read, withhold,
    /// send, record). While a request carrying every pending entry is in flight, the entries after
    /// it are read and planned, and sent once the first request is delivered.
    private func deliver(_ dispatcher: Dispatcher, client: HTTPClient) async {
        var machine = DeliveryMachine()
        var readAhead: (after: Int64, plan: Task<DeliveryMachine.Plan?, any Error>)?
        func discardReadAhead() async {
            readAhead?.plan.cancel()
            _ = try? await readAhead?.plan.value
            readAhead = nil
        }
        while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
            let (destination, schedule, removed) = dispatcher.state.withLock { ($0.destination, $0.schedule, $0.removed) }
            if removed { break }
            let at = now()
            switch machine.next(schedule, at: at) {
            case .sleep(let until):
                await discardReadAhead()
                // Until woken; the timeout only bounds how long an entry could wait if a wakeup were ever missed.
                let timeout = until.map { Duration.milliseconds(Int64($0.timeIntervalSince(at) * 1000) + 1) } ?? .seconds(5)
                await dispatcher.signal.wait(timeout: min(timeout, .seconds(3600)))
            case .read(let after):
                do {
                    let plan: DeliveryMachine.Plan?
                    if let ahead = readAhead, ahead.after == after {
                        readAhead = nil
                        plan = machine.take(try await ahead.plan.value)
                    } else {
                        await discardReadAhead()
                        plan = machine.read(try await pending(destination, after: after), for: destination, at: at)
                    }
                    guard let plan else {
                        await dispatcher.signal.wait(timeout: .seconds(5))
                        continue
                    }
                    try await withhold(plan.withheld, from: destination, at: at)
                    guard !plan.batch.isEmpty else { continue }
                    if plan.complete {
                        let after = plan.lastSeq
                        readAhead = (
                            after,
                            Task { [self] in DeliveryMachine.plan(try await pending(destination, after: after), for: destination, at: now()) }
                        )
                    }
                    if try await send(plan, to: destination, dispatcher: dispatcher, machine: &machine, client: client) == false {
                        await discardReadAhead()
                    }
                } catch {
                    await discardReadAhead()
                    logger.error("peer.dispatch_failed", metadata: ["rampart.peer": "\(destination.key)", "rampart.error": "\(error)"])
                    await dispatcher.signal.wait(timeout: .seconds(1))
                }
            }
        }
        await discardReadAhead()
    }

    /// Entries per request: a notify URL gets one notification a request.
    private func batchLimit(_ destination: Destination) -> Int { destination.peer == nil ? 1 : batchSize }

    private func pending(_ destination: Destination, after: Int64?) async throws -> [OutboxEntry] {
        try await store.pendingOutbox(peer: destination.key, after: after, limit: batchLimit(destination))
    }

    /// Marks what the policy no longer lets go as withheld.
    private func withhold(_ withheld: [DeliveryMachine.Declined], from destination: Destination, at: Date) async throws {
        guard !withheld.isEmpty else { return }
        let name = destination.key
        try await store.write { tx in
            for entry in withheld {
                try tx.markWithheld(peer: name, seq: entry.seq, item: entry.item, code: entry.code, reason: entry.reason, at: at)
            }
        }
        metrics.count(.peerWithheld, ["peer": name], withheld.count)
    }

    /// A POST of `body` to the destination, signed with this node's key (and the peer's secret).
    func signedRequest(_ body: [UInt8], to destination: Destination, at: Date) throws -> (HTTPClientRequest, webhookID: String) {
        let webhookID = "msg_" + IDGenerator.shared.next().replacingOccurrences(of: "-", with: "")
        let timestamp = Int(at.timeIntervalSince1970)
        var request = HTTPClientRequest(url: destination.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "rampart/\(nodeID)")
        let signature = try WebhookSignature.sign(id: webhookID, timestamp: timestamp, body: body, key: signingKey, secret: destination.peer?.secret)
        if !signature.isEmpty {
            request.headers.add(name: "webhook-id", value: webhookID)
            request.headers.add(name: "webhook-timestamp", value: String(timestamp))
            request.headers.add(name: "webhook-signature", value: signature)
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        return (request, webhookID)
    }

    /// Sends a request and reads its answer up to `limit` bytes, all within `timeout`: a peer that
    /// drips its answer's body would otherwise hold the outbox for as long as it likes.
    func exchange(
        _ request: HTTPClientRequest, timeout: Duration, limit: Int = 1 << 20, client: HTTPClient
    ) async throws -> (HTTPClientResponse, ByteBuffer) {
        try await withDeadline(timeout) { [client, request] in
            let response = try await client.execute(request, timeout: .milliseconds(timeout.milliseconds))
            return (response, try await response.body.collect(upTo: limit))
        }
    }

    /// Posts a plan's batch, signed, and records the outcome the machine makes of the answer.
    /// Returns whether the peer took it.
    private func send(
        _ plan: DeliveryMachine.Plan, to destination: Destination, dispatcher: Dispatcher, machine: inout DeliveryMachine, client: HTTPClient
    ) async throws -> Bool {
        // Notifications are signed too when this node has a key, so that their receiver can check them.
        let (request, webhookID) = try signedRequest(plan.body, to: destination, at: now())
        let (begun, failuresBefore) = dispatcher.state.withLock { ($0.schedule.epoch, $0.schedule.failures) }
        let started = ContinuousClock.now
        let answer: DeliveryMachine.Answer
        do {
            let (response, body) = try await exchange(request, timeout: destination.peer?.timeout ?? requestTimeout, client: client)
            answer = DeliveryMachine.answer(
                status: Int(response.status.code), retryAfter: response.headers.first(name: "retry-after"), body: body.readableBytesView,
                listsRefusals: destination.peer != nil, at: now())
        } catch {
            answer = DeliveryMachine.answer(status: nil, retryAfter: nil, body: [], error: "\(error)", at: now())
        }
        let took = ContinuousClock.now - started
        let done = now()
        let name = destination.key
        let random = Double.random(in: 0..<1)
        let snapshot = machine
        let (record, failures, dead, next) = try await store.write { tx -> (DeliveryMachine.Record, Int, Int, DeliveryMachine) in
            // The outcome goes into the schedule here, on the writer's thread, in order with a
            // replay's write: a replay that came while this request was in flight wins over it.
            var machine = snapshot
            let (record, failures) = dispatcher.state.withLock { state in
                let record = machine.answered(answer, to: plan, schedule: &state.schedule, begun: begun, at: done, random: random)
                return (record, state.schedule.failures)
            }
            var dead = 0
            switch record {
            case .delivered(let seqs, let refused):
                let refusedSeqs = Set(refused.map(\.seq))
                try tx.markDelivered(peer: name, seqs: seqs.filter { !refusedSeqs.contains($0) }, webhookID: webhookID, at: done)
                for refusal in refused {
                    try tx.markRefused(peer: name, seq: refusal.seq, item: refusal.item, code: refusal.code, message: refusal.reason, at: done)
                }
            case .failed(let seqs, let error, let deadBefore, let disable):
                dead = try tx.markFailed(peer: name, seqs: seqs, error: error, deadBefore: deadBefore, at: done)
                if let disable { try tx.disablePeer(name, reason: disable, at: done) }
            }
            return (record, failures, dead, machine)
        }
        machine = next
        switch record {
        case .delivered(let seqs, let refused):
            dispatcher.state.withLock { state in
                state.lastAttempt = done
                state.sent += seqs.count - refused.count
                state.refusedByPeer += refused.count
                state.lastSuccess = done
                state.lastError = refused.last.map { "\(refused.count) refused by the peer, the last: \($0.code): \($0.reason)" }
            }
            if let first = refused.first {
                metrics.count(.peerRefusedByPeer, ["peer": name], refused.count)
                logger.warning(
                    "peer.entries_refused",
                    metadata: [
                        "rampart.peer": "\(name)", "rampart.entries": "\(refused.count)", "rampart.code": "\(first.code)",
                        "rampart.error": "\(first.reason)",
                    ]
                )
            }
            metrics.delivery(peer: name, entries: seqs.count - refused.count, took: took, delivered: true, deadLettered: 0)
            // The link is back: what went missing while it was down (dead letters) is compared now.
            if failuresBefore > 0 {
                dispatcher.state.withLock { $0.reciprocate = true }
                dispatcher.syncSignal.fire()
            }
            return true
        case .failed(let seqs, let error, _, _):
            // The link may be down: the sync loop probes it (every 10 s at most) until it answers,
            // also once nothing is left to deliver (entries dead-lettered during a long partition).
            let probing = dispatcher.state.withLock { state in
                state.lastAttempt = done
                state.lastError = error
                state.reciprocate = true
                return state.lastSyncError != nil
            }
            if !probing && destination.peer != nil { dispatcher.syncSignal.fire() }
            metrics.delivery(peer: name, entries: seqs.count, took: took, delivered: false, deadLettered: dead)
            logger.warning(
                "peer.delivery_failed",
                metadata: [
                    "rampart.peer": "\(name)", "rampart.error": "\(error)", "rampart.entries": "\(seqs.count)",
                    "rampart.failures": "\(failures)", "rampart.dead_lettered": "\(dead)",
                ]
            )
            return false
        }
    }
}
