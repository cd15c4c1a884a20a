import Foundation
import Logging
import RampartCore
import RampartFirewall
import RampartStore
import ServiceLifecycle
import Synchronization

/// Runs `exec` actions: argv only (never a shell), a clean environment with `RAMPART_*`
/// variables, the item as JSON on stdin, a timeout (SIGTERM, then SIGKILL a second later), at most
/// `maxRunning` at once and `maxQueued` waiting; output is captured (the first 4 KiB of each
/// stream) into an `action.exec` audit entry, as is every failure, timeout and overflow.
public final class ExecRunner: Service, Sendable {
    let store: Store
    let metrics: RampartMetrics
    let logger: Logger
    let maxRunning: Int
    let maxQueued: Int
    let now: @Sendable () -> Date
    /// Jobs waiting to run, and jobs dropped because the queue was full, waiting to be audited.
    private let queue = Mutex<(waiting: [ExecJob], dropped: [ExecJob])>(([], []))
    private let running = Atomic<Int>(0)
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    public init(
        store: Store, metrics: RampartMetrics = RampartMetrics(), logger: Logger, maxRunning: Int = 4, maxQueued: Int = 10_000,
        now: @escaping @Sendable () -> Date
    ) {
        self.metrics = metrics
        self.store = store
        self.logger = logger
        self.maxRunning = maxRunning
        self.maxQueued = maxQueued
        self.now = now
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues jobs; what does not fit is audited as dropped.
    public func submit(_ jobs: [ExecJob]) {
        guard !jobs.isEmpty else { return }
        let overflow: Int = queue.withLock { queue in
            let room = max(0, maxQueued - queue.waiting.count)
            queue.waiting += jobs.prefix(room)
            queue.dropped += jobs.dropFirst(room)
            return jobs.count - min(room, jobs.count)
        }
        if overflow > 0 { logger.error("exec.dropped", metadata: ["rampart.jobs": "\(overflow)", "rampart.reason": "queue full"]) }
        wake.yield()
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await _ in wakeups {
                    let dropped = queue.withLock { queue in
                        defer { queue.dropped = [] }
                        return queue.dropped
                    }
                    if !dropped.isEmpty {
                        try? await record(dropped.map { ($0, Outcome.notRun("dropped: \(maxQueued) exec actions were already waiting")) })
                    }
                    while running.load(ordering: .acquiring) < maxRunning,
                        let job = queue.withLock({ $0.waiting.isEmpty ? nil : $0.waiting.removeFirst() })
                    {
                        running.add(1, ordering: .acquiringAndReleasing)
                        group.addTask {
                            let outcome = await Command.run(job.argv, environment: job.environment, input: job.input, timeout: job.timeout)
                            try? await self.record([(job, outcome)])
                            self.running.subtract(1, ordering: .acquiringAndReleasing)
                            self.wake.yield()
                        }
                    }
                }
            }
            // Shutting down: what never started is recorded as such.
            let (left, dropped) = queue.withLock { queue in
                defer { queue = ([], []) }
                return queue
            }
            let unrun =
                left.map { ($0, Outcome.notRun("not run: the daemon stopped first")) }
                + dropped.map { ($0, Outcome.notRun("dropped: \(maxQueued) exec actions were already waiting")) }
            if !unrun.isEmpty { try? await record(unrun) }
        } onGracefulShutdown: {
            self.wake.finish()
        }
    }

    typealias Outcome = Command.Outcome

    func record(_ results: [(ExecJob, Outcome)]) async throws {
        let at = now()
        _ = try await store.write { tx in
            for (job, outcome) in results {
                try tx.audit(.actionExec, subject: job.item, at: at) { w in
                    w.field("playbook", job.playbook)
                    w.field("argv", job.argv)
                    switch outcome {
                    case .exited(let status, let signalled, let timedOut, let stdout, let stderr, let milliseconds):
                        w.field(signalled ? "signal" : "exit_status", Int(status))
                        w.field("timed_out", timedOut)
                        w.field("duration_ms", milliseconds)
                        w.field("stdout", stdout)
                        w.field("stderr", stderr)
                    case .notRun(let why):
                        w.field("error", why)
                    }
                }
            }
        }
        for (job, outcome) in results {
            switch outcome {
            case .exited(let status, let signalled, let timedOut, _, _, _) where status != 0 || signalled || timedOut:
                metrics.count(.actions, ["action": "exec", "outcome": timedOut ? "timed_out" : "failed"])
                logger.warning(
                    "exec.failed",
                    metadata: [
                        "rampart.playbook": "\(job.playbook)", "rampart.item": "\(job.item)", "rampart.status": "\(status)",
                        "rampart.timed_out": "\(timedOut)",
                    ]
                )
            case .notRun(let why):
                metrics.count(.actions, ["action": "exec", "outcome": "not_run"])
                logger.warning(
                    "exec.not_run", metadata: ["rampart.playbook": "\(job.playbook)", "rampart.item": "\(job.item)", "rampart.reason": "\(why)"])
            case .exited:
                metrics.count(.actions, ["action": "exec", "outcome": "succeeded"])
            }
        }
    }
}
