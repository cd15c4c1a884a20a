import Foundation

/// Runs a blocking test body (waiting for processes, polling with sleeps) on a thread of its own,
/// so that it holds none of the cooperative pool's threads, two on a two-core machine, which every
/// async test in the process needs: a minute-long blocking test on each of them stalled all the
/// others for as long.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
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
