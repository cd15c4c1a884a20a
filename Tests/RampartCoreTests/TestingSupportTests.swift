import Foundation
import RampartTesting
import Testing

@Suite struct TestingSupportTests {
    /// Blocking bodies run on threads of their own, and still within their test (a failed
    /// expectation in one belongs to the test that made it): one more of them than the
    /// cooperative pool has threads all block until every one has started, which they could not
    /// do on the pool.
    @Test func blockingBodiesRunOnThreadsOfTheirOwnWithinTheirTest() async throws {
        let bodies = ProcessInfo.processInfo.activeProcessorCount + 1
        let arrived = NSCondition()
        nonisolated(unsafe) var count = 0
        let results = try await withThrowingTaskGroup(of: (Bool, String?).self) { group in
            for _ in 0..<bodies {
                group.addTask {
                    try await onOwnThread {
                        arrived.lock()
                        count += 1
                        arrived.broadcast()
                        let deadline = Date().addingTimeInterval(10)
                        while count < bodies && arrived.wait(until: deadline) {}
                        let all = count == bodies
                        arrived.unlock()
                        return (all, Test.current?.name)
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == bodies)
        #expect(results.allSatisfy { $0.0 }, "every body saw all \(bodies) start")
        #expect(results.allSatisfy { $0.1 == "blockingBodiesRunOnThreadsOfTheirOwnWithinTheirTest()" })
    }
}
