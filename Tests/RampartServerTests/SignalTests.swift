import Foundation
import RampartTesting
import Testing

@testable import RampartServer

/// The dispatchers' wakeup: a fire is never lost, a timeout follows the injected clock, and a
/// cancelled wait ends at once without eating the next fire.
struct SignalTests {
    @Test func aFireBeforeTheWaitIsRemembered() async {
        let signal = Signal(clock: ManualClock())
        signal.fire()
        await signal.wait(timeout: .seconds(3600))  // returns at once: the clock never moves
    }

    @Test func aWaitEndsWhenFiredOrWhenItsTimeoutPasses() async throws {
        let clock = ManualClock()
        let signal = Signal(clock: clock)
        let fired = Task { await signal.wait(timeout: .seconds(3600)) }
        try await clock.waitForSleepers(1)
        signal.fire()
        await fired.value
        #expect(clock.sleeping == 0, "the timeout's child task ends with the wait")

        let timedOut = Task { await signal.wait(timeout: .seconds(5)) }
        try await clock.waitForSleepers(1)
        clock.advance(by: .seconds(5))
        await timedOut.value

        // A cancelled wait consumed no fire: the next wait sees this one.
        let cancelled = Task { await signal.wait(timeout: .seconds(3600)) }
        try await clock.waitForSleepers(1)
        cancelled.cancel()
        await cancelled.value
        signal.fire()
        await signal.wait(timeout: .seconds(3600))
    }
}
