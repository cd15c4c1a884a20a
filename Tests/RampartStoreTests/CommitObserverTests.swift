import Foundation
import RampartCore
import Synchronization
import RampartTesting
import Testing

@testable import RampartStore

/// The store hands each transaction's firewall changes to its observer at the commit, before the
/// log sync, and says when the log holding them is on disk.
struct CommitObserverTests {
    final class Recorder: CommitObserver {
        struct Heard: Sendable {
            var commits: [(UInt64, [FirewallChange])] = []
            var durable: [UInt64] = []
        }
        let heard = Mutex(Heard())

        func committed(_ commit: UInt64, firewall: [FirewallChange]) {
            heard.withLock { $0.commits.append((commit, firewall)) }
        }

        func durable(through commit: UInt64) {
            heard.withLock { $0.durable.append(commit) }
        }
    }

    let now = Date(milliseconds: 1_800_000_000_000)
    let policy = SafetyPolicy()

    func block(_ value: String, simulated: Bool = false) -> BlockRequest {
        BlockRequest(
            target: try! IPNetwork(parsing: value, allowBareAddress: true), direction: .inbound, duration: .seconds(60), origin: "node-a",
            reason: "test", simulated: simulated)
    }

    func withStore(_ body: (Store, Recorder) async throws -> Void) async throws {
        let directory = Scratch.directory("rampart-observer").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try Store(path: directory + "/rampart.sqlite")
        let recorder = Recorder()
        store.start(observer: recorder)
        try await body(store, recorder)
        await store.close()
    }

    /// Blocks, extensions, revocations and expiries reach the observer in the order the
    /// transaction decided them; simulated blocks and merges that change nothing do not.
    @Test func aCommitsChangesReachTheObserverInOrder() async throws {
        try await withStore { store, recorder in
            let (policy, now) = (policy, now)
            let (a, b) = (block("77.90.185.1"), block("77.90.185.2"))
            _ = try await store.write { tx in
                _ = try tx.block(a, policy: policy, now: now)
                _ = try tx.block(a, policy: policy, now: now)  // unchanged
                _ = try tx.block(self.block("77.90.185.3", simulated: true), policy: policy, now: now)
                _ = try tx.block(b, policy: policy, now: now)
                _ = try tx.revoke(value: "77.90.185.1", reason: "test", by: "test", now: now)
            }
            _ = try await store.write { tx in try tx.expire(now: now.addingTimeInterval(61)) }
            let heard = recorder.heard.withLock { $0 }
            #expect(heard.commits.map(\.0) == [1, 2])
            #expect(
                heard.commits.first?.1 == [
                    .add(FirewallBlock(target: a.target, direction: .inbound, expiresAt: now.addingTimeInterval(60))),
                    .add(FirewallBlock(target: b.target, direction: .inbound, expiresAt: now.addingTimeInterval(60))),
                    .remove(a.target),
                ])
            #expect(heard.commits.last?.1 == [.remove(b.target)])
            #expect(heard.durable.last == 2, "a write returns once its commit is reported durable")
        }
    }

    /// A job that fails is rolled back alone, and nothing it decided reaches the firewall; a
    /// transaction whose commit fails reports nothing either.
    @Test func aFailedJobsBlocksNeverReachTheObserver() async throws {
        struct Failure: Error {}
        try await withStore { store, recorder in
            let (policy, now) = (policy, now)
            let (kept, failed) = (block("77.90.185.1"), block("77.90.185.2"))
            let first = store.enqueue { tx in
                _ = try tx.block(failed, policy: policy, now: now)
                throw Failure()
            }
            let second = store.enqueue { tx in _ = try tx.block(kept, policy: policy, now: now) }
            await #expect(throws: Failure.self) { try await first.value() }
            _ = try await second.value()
            let heard = recorder.heard.withLock { $0 }
            let targets = heard.commits.flatMap(\.1).map { change -> IPNetwork in
                switch change {
                case .add(let block): block.target
                case .remove(let target): target
                }
            }
            #expect(targets == [kept.target])
        }
    }
}
