import Foundation
import Logging
import RampartCore
import RampartStore
import ServiceLifecycle

/// Closes decisions whose time is up, every `interval`: each gets its `decision.expired` audit
/// entry, and the firewall drops its element once that is durable. Sightings older than the longest
/// window of the playbooks in force go in the same transaction, and so do the ids of peers'
/// requests once their timestamps are too old to be accepted again.
struct ExpiryService: Service {
    let store: Store
    /// How long sightings must be kept (nil: none are needed).
    let sightingWindow: @Sendable () -> Duration?
    let interval: Duration
    /// How long ended decisions and finished outbox entries are kept.
    let retention: Config.Retention
    /// What it waits on between sweeps, and the wall time it expires by.
    let clock: any Clock<Duration>
    let now: @Sendable () -> Date
    let logger: Logger

    /// How often what `retention` no longer keeps is pruned.
    static let pruneInterval: TimeInterval = 600

    func run() async throws {
        var lastPrune = Date.distantPast
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await sweep()
                if now().timeIntervalSince(lastPrune) >= Self.pruneInterval {
                    lastPrune = now()
                    try await prune()
                }
            } catch {
                logger.error("expiry.failed", metadata: ["rampart.error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await clock.sleep(for: interval) }
        }
    }

    /// Deletes what `retention` no longer keeps, a bounded batch a transaction; returns how many rows went.
    @discardableResult
    func prune() async throws -> Int {
        var total = 0
        while true {
            let at = now()
            let (decisions, outbox, statuses) = (
                at.addingTimeInterval(-Double(retention.decisions.milliseconds) / 1000),
                at.addingTimeInterval(-Double(retention.outbox.milliseconds) / 1000),
                at.addingTimeInterval(-Double(retention.taxiiStatus.milliseconds) / 1000)
            )
            let pruned = try await store.write { tx in
                try tx.prune(decisionsBefore: decisions, outboxBefore: outbox, taxiiStatusesBefore: statuses)
            }
            total += pruned
            if pruned < 10_000 { break }
        }
        if total > 0 { logger.info("store.pruned", metadata: ["rampart.rows": "\(total)"]) }
        return total
    }

    /// Expires everything due now, and forgets sightings no playbook can count any more; returns
    /// how many decisions expired.
    @discardableResult
    func sweep() async throws -> Int {
        var total = 0
        while true {
            let at = now()
            let forgetBefore = at.addingTimeInterval(-Double((sightingWindow() ?? .zero).milliseconds) / 1000)
            let expired = try await store.write { tx in
                try tx.pruneSightings(before: forgetBefore)
                try tx.prunePeerMessages(before: at.addingTimeInterval(-2 * WebhookSignature.tolerance))
                try tx.pruneIdempotencyKeys(before: at.addingTimeInterval(-Pipeline.idempotencyWindow))
                return try tx.expire(now: at)
            }
            total += expired.count
            if expired.count < 10_000 { return total }
        }
    }
}

/// Owns the store's writer: starts its threads, checkpoints its write-ahead log in pauses between
/// writes, off the commit path, and on shutdown joins the threads after the queued writes. It is
/// first in the service group, so it starts first and stops last.
struct StoreService: Service {
    let store: Store
    /// Hears of each transaction's firewall changes (the enforcer).
    let observer: any CommitObserver
    let clock: any Clock<Duration>
    let logger: Logger

    func run() async throws {
        store.start(observer: observer)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await clock.sleep(for: .milliseconds(250)) }
            do {
                // Checkpoints and freeing cached pages block for as long as their I/O takes.
                try await Blocking.run { [store] in
                    try store.checkpointIfDue()
                    if store.releaseMemoryIfDue() { FreeMemory.release() }
                }
            } catch {
                logger.warning("store.checkpoint_failed", metadata: ["rampart.error": "\(error)"])
            }
        }
        await store.close()
    }
}
