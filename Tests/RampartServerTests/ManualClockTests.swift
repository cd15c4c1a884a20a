import Foundation
import RampartTesting
import Testing

/// The manual clock wakes sleepers exactly when advanced past their deadline, and a cancelled
/// sleeper at once.
struct ManualClockTests {
    @Test func sleepersWakeWhenTheClockPassesTheirDeadline() async throws {
        let clock = ManualClock(wallTime: Date(timeIntervalSince1970: 100))
        try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                try await clock.sleep(for: .seconds(10))
                return 10
            }
            group.addTask {
                try await clock.sleep(for: .seconds(5))
                return 5
            }
            try await clock.waitForSleepers(2)
            clock.advance(by: .seconds(4))
            #expect(clock.sleeping == 2)
            clock.advance(by: .seconds(1))
            #expect(try await group.next() == 5)
            #expect(clock.sleeping == 1 && clock.wallTime == Date(timeIntervalSince1970: 105))
            clock.advance(by: .seconds(5))
            #expect(try await group.next() == 10)
        }
        let cancelled = Task { try await clock.sleep(for: .seconds(1)) }
        try await clock.waitForSleepers(1)
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(clock.sleeping == 0)
    }
}
