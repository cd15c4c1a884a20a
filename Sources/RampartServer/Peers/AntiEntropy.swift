import AsyncHTTPClient
import Foundation
import NIOCore
import RampartCore
import RampartStore

/// Anti-entropy (`PeerSync`): each peer's loop compares what this node queued for the peer with
/// what the peer took, on start, every `resync`, when the link comes back (a delivery fails, and
/// the loop probes the peer until a sync succeeds) and when the peer, just started or back,
/// asks for it; it queues again what the peer lacks. What went missing (entries
/// dead-lettered during a long partition, or lost by a peer restored from a backup) then goes
/// through the outbox as any entry does, policies and deduplication included.
extension PeerDelivery {
    /// What one sync found and did.
    struct SyncReport: Sendable {
        var entries = 0
        var differing = 0
        var missing = 0
        var requeued = 0
    }

    struct SyncFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// One peer's anti-entropy loop: a sync a second after start, then every `resync`; after a
    /// failure, again in 2 s, then 4, 8 and every 10 s (or `resync`, when shorter), so that a
    /// partition's end is noticed within 10 s even when nothing else is being sent.
    func synchronize(_ dispatcher: Dispatcher, client: HTTPClient) async {
        defer { dispatcher.state.withLock { $0.syncing = false } }
        var wait = Duration.seconds(1)
        var failures = 0
        while !isStopping && !Task.isCancelled {
            await dispatcher.syncSignal.wait(timeout: wait)
            let (destination, removed, disabled) = dispatcher.state.withLock { state in
                let disabled = if case .disabled = state.schedule.state { true } else { false }
                return (state.destination, state.removed, disabled)
            }
            guard !removed, !isStopping, let peer = destination.peer else { break }
            wait = peer.resync
            // A peer that answered 410, or whose entry expired, gets nothing, syncs included.
            if disabled || peer.hasExpired(at: now()) { continue }
            let started = now()
            let reciprocate = dispatcher.state.withLock { state in
                state.lastSyncAttempt = started
                return state.reciprocate
            }
            do {
                let report = try await sync(peer, reciprocate: reciprocate, client: client)
                failures = 0
                dispatcher.state.withLock { state in
                    if reciprocate { state.reciprocate = false }
                    state.lastSync = started
                    state.lastSyncRepaired = report.requeued
                    state.lastSyncError = nil
                    state.repaired += report.requeued
                    state.schedule.answered()
                }
                dispatcher.signal.fire()
                metrics.count(.peerSyncs, ["peer": peer.name, "outcome": "ok"])
                metrics.count(.peerSyncRepaired, ["peer": peer.name], report.requeued)
                if report.requeued > 0 {
                    logger.info(
                        "peer.synced",
                        metadata: [
                            "rampart.peer": "\(peer.name)", "rampart.differing": "\(report.differing)", "rampart.missing": "\(report.missing)",
                            "rampart.requeued": "\(report.requeued)",
                        ])
                }
            } catch {
                failures += 1
                wait = min(peer.resync, .seconds(min(10, 1 << min(failures, 4))))
                dispatcher.state.withLock { state in
                    state.lastSyncError = "\(error)"
                    state.reciprocate = true
                }
                metrics.count(.peerSyncs, ["peer": peer.name, "outcome": "failed"])
                // The first failure, then about once a minute while the probing goes on.
                if failures == 1 || failures % 6 == 0 {
                    logger.warning(
                        "peer.sync_failed",
                        metadata: ["rampart.peer": "\(peer.name)", "rampart.error": "\(error)", "rampart.failures": "\(failures)"])
                }
            }
        }
    }

    /// The peer, just started or with its link back, asked this node to sync towards it: at once.
    /// That sync does not ask back, so two nodes' syncs never call each other forever.
    func syncRequested(by name: String) {
        dispatchers.withLock { $0[name] }?.syncSignal.fire()
    }

    /// Compares this node's entries for `peer` with what the peer took, bucket by bucket, and
    /// queues again what it lacks.
    func sync(_ peer: Peer, reciprocate: Bool, client: HTTPClient) async throws -> SyncReport {
        var report = SyncReport()
        let ids = try await store.queuedEntries(peer: peer.name)
        report.entries = ids.count
        let answer = try await post(.digests(PeerSync.digests(ids), reciprocate: reciprocate), to: peer, client: client)
        guard case .array(let list)? = answer["differing"] else { throw SyncFailure(description: "the peer's answer lists no 'differing' buckets") }
        let differing = list.compactMap { value -> Int? in
            guard case .number(let number) = value, number == number.rounded(), (0..<Double(PeerSync.buckets)).contains(number) else { return nil }
            return Int(number)
        }
        report.differing = differing.count
        var missing: [String] = []
        for page in PeerSync.pages(ids, differing: differing) {
            let answer = try await post(.entries(buckets: page.buckets, ids: page.ids), to: peer, client: client)
            guard case .array(let list)? = answer["missing"] else { throw SyncFailure(description: "the peer's answer lists no 'missing' entries") }
            let listed = Set(page.ids)
            missing += list.compactMap { if case .string(let id) = $0, listed.contains(id) { id } else { nil } }
        }
        report.missing = missing.count
        guard !missing.isEmpty else { return report }
        let (at, found, lacking) = (now(), report, missing)
        report.requeued = try await store.write { tx in
            // Those still pending are on their way already.
            let requeued = try tx.requeue(peer: peer.name, entries: lacking)
            guard requeued > 0 else { return 0 }
            try tx.audit(.peerSynced, subject: peer.name, at: at) { w in
                w.field("entries", found.entries)
                w.field("buckets_differing", found.differing)
                w.field("missing", found.missing)
                w.field("requeued", requeued)
            }
            return requeued
        }
        wake([peer.name])
        return report
    }

    /// A signed sync request to the peer; its JSON answer, which must be a 200.
    private func post(_ request: PeerSync.Request, to peer: Peer, client: HTTPClient) async throws -> JSONValue {
        let at = now()
        let (signed, _) = try signedRequest(PeerSync.encode(request, node: nodeID, at: at), to: .peer(peer), at: at)
        let (response, body) = try await exchange(signed, timeout: peer.timeout, limit: 4 << 20, client: client)
        let status = Int(response.status.code)
        guard status == 200, let json = try? JSONValue.parse(body.readableBytesView) else {
            let answer = DeliveryMachine.answer(status: status, retryAfter: nil, body: body.readableBytesView, listsRefusals: false, at: now())
            throw SyncFailure(description: answer.failure ?? "HTTP \(status): the answer is not JSON")
        }
        return json
    }
}
