import Foundation
import Logging
import RampartCore
import RampartStore
import ServiceLifecycle

/// The one way to the firewall backend: changes go in batches (the first at once when the backend
/// is idle; changes arriving while a batch is applied coalesce into the next one), and reconciles
/// (the backend brought to the store's active decisions: at start, on reload, every
/// `reconcileInterval` and after a failed batch) run in the same loop, never beside a batch.
///
/// Changes come from the store's writer as each transaction commits. Blocks go to the kernel at
/// once, while the commit's log sync is still running; unblocks wait until the log holding them is
/// on disk, so that after a crash the kernel may block more than the store says (the start-up
/// reconcile removes it), never less. A block committed after an unblock still waiting for its
/// sync cancels that unblock.
public final class Enforcer: Service, CommitObserver, @unchecked Sendable {
    private let firewall: any Firewall
    private let decisions: @Sendable () async throws -> [FirewallBlock]
    private let reconcileInterval: Duration
    private let clock: any Clock<Duration>
    private let metrics: RampartMetrics
    private let logger: Logger
    private let lock = NSLock()
    private var pending: [FirewallChange] = []
    /// Unblocks committed but not yet on disk: the commit of each target's latest.
    private var held: [IPNetwork: UInt64] = [:]
    private var reconcileWanted = false
    /// Changes applied since the heap was last trimmed (read and written by the run loop only).
    private var appliedSinceRelease = 0
    private var waiting: [CheckedContinuation<Void, any Error>] = []
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    /// - Parameter decisions: the blocks that must be in force now (the store's active decisions).
    public init(
        firewall: any Firewall, decisions: @escaping @Sendable () async throws -> [FirewallBlock], reconcileInterval: Duration,
        clock: any Clock<Duration> = ContinuousClock(), metrics: RampartMetrics = RampartMetrics(), logger: Logger
    ) {
        self.clock = clock
        self.firewall = firewall
        self.decisions = decisions
        self.reconcileInterval = reconcileInterval
        self.metrics = metrics
        self.logger = logger
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// From the store's writer thread, right after commit `commit`: blocks are applied now,
    /// unblocks once that commit is durable.
    public func committed(_ commit: UInt64, firewall changes: [FirewallChange]) {
        let blocks = lock.withLock {
            var blocks = false
            for change in changes {
                switch change {
                case .add(let block):
                    if !held.isEmpty { held[block.target] = nil }
                    pending.append(change)
                    blocks = true
                case .remove(let target):
                    held[target] = commit
                }
            }
            return blocks
        }
        if blocks { wake.yield() }
    }

    /// From the store's log syncer: every commit up to `commit` is on disk, so their unblocks go.
    public func durable(through commit: UInt64) {
        let released = lock.withLock {
            guard !held.isEmpty else { return false }
            let count = pending.count
            for (target, committed) in held where committed <= commit {
                pending.append(.remove(target))
                held[target] = nil
            }
            return pending.count > count
        }
        if released { wake.yield() }
    }

    /// Brings the backend to the store, and returns once that is done (or throws why it failed).
    public func reconcile() async throws {
        try await withCheckedThrowingContinuation { continuation in
            lock.withLock {
                waiting.append(continuation)
                reconcileWanted = true
            }
            wake.yield()
        }
    }

    /// Asks for a reconcile soon, without waiting for it.
    public func requestReconcile() {
        lock.withLock { reconcileWanted = true }
        wake.yield()
    }

    public func run() async {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    while !Task.isCancelled {
                        try? await self.clock.sleep(for: self.reconcileInterval)
                        self.requestReconcile()
                    }
                }
                for await _ in wakeups {
                    await reconcileIfWanted()
                    await applyPending()
                }
                await applyPending()
                group.cancelAll()
            }
            let left = lock.withLock {
                defer { waiting.removeAll() }; return waiting
            }
            for continuation in left { continuation.resume(throwing: CancellationError()) }
        } onGracefulShutdown: {
            // Apply what is queued, then end.
            self.wake.finish()
        }
    }

    private func reconcileIfWanted() async {
        let callers: [CheckedContinuation<Void, any Error>]? = lock.withLock {
            guard reconcileWanted else { return nil }
            reconcileWanted = false
            defer { waiting.removeAll() }
            return waiting
        }
        guard let callers else { return }
        do {
            let blocks = try await decisions()
            try await Blocking.run { [firewall] in try firewall.reconcile(blocks) }
            logger.debug(
                "firewall.reconciled", metadata: ["rampart.firewall.backend": "\(firewall.name)", "rampart.firewall.blocks": "\(blocks.count)"])
            for caller in callers { caller.resume() }
        } catch {
            metrics.count(.firewallFailures, ["operation": "reconcile"])
            logger.error("firewall.reconcile_failed", metadata: ["rampart.firewall.backend": "\(firewall.name)", "rampart.error": "\(error)"])
            for caller in callers { caller.resume(throwing: error) }
        }
    }

    private func applyPending() async {
        let batch = lock.withLock {
            defer { pending.removeAll(keepingCapacity: pending.count < FreeMemory.bulk) }
            return pending
        }
        guard !batch.isEmpty else { return }
        // After a bulk load's batches, once nothing waits: what their scripts and nft's answers
        // took goes back to the system.
        appliedSinceRelease += batch.count
        defer {
            if appliedSinceRelease >= FreeMemory.bulk, lock.withLock({ pending.isEmpty }) {
                appliedSinceRelease = 0
                FreeMemory.release()
            }
        }
        let started = ContinuousClock.now
        do {
            try await Blocking.run { [firewall] in try firewall.apply(batch) }
            metrics.firewallBatch(size: batch.count, took: .now - started, failed: false)
        } catch {
            metrics.firewallBatch(size: batch.count, took: .now - started, failed: true)
            logger.error(
                "firewall.apply_failed",
                metadata: [
                    "rampart.firewall.backend": "\(firewall.name)", "rampart.error": "\(error)", "rampart.firewall.changes": "\(batch.count)",
                ]
            )
            // The store is right; the kernel is brought to it.
            requestReconcile()
        }
    }
}
