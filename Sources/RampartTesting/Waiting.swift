import Foundation

/// Runs a blocking test body (waiting for processes, polling with sleeps) on a thread of its own,
/// so that it holds none of the cooperative pool's threads, two on a two-core machine, which every
/// async test in the process needs: a minute-long blocking test on each of them stalled all the
/// others for as long.
///
/// The body runs in the calling task, on that thread as the task's executor, so what the task
/// carries (the current test, to which an expectation's failure belongs) goes with it. A body run
/// on a bare detached thread recorded its failures against no test ("Test «unknown»").
public func onOwnThread<T>(_ body: () throws -> T) async throws -> T {
    let thread = ThreadExecutor()
    defer { thread.finish() }
    return try await withTaskExecutorPreference(thread) { try await onTaskExecutor(body) }
}

/// Concurrent, so that the task hops to its preferred executor to run it.
@concurrent private func onTaskExecutor<T>(_ body: () throws -> T) async throws -> T { try body() }

/// A task executor that runs its jobs, in order, on a thread of its own; after `finish` the
/// thread ends once it has nothing to run (a job enqueued later gets a thread again).
private final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var finished = false
    private var running = false

    init() {
        condition.lock()
        startThread()
        condition.unlock()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        if !running { startThread() }
        condition.signal()
        condition.unlock()
    }

    /// Lets the thread end once its jobs have run (the one calling this may be one of them).
    func finish() {
        condition.lock()
        finished = true
        condition.signal()
        condition.unlock()
    }

    /// With the lock held.
    private func startThread() {
        running = true
        let thread = Thread { [self] in run() }
        thread.start()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !finished { condition.wait() }
            if jobs.isEmpty {
                running = false
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// Polls `check` every 20 ms until it holds or `seconds` pass, then checks once more (a test
/// starved of time for the whole wait still sees the outcome). Whether it held.
public func eventually(_ seconds: Double = 5, _ check: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if try await check() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await check()
}
