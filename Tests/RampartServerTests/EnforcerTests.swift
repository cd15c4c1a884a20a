import Foundation
import Logging
import RampartCore
import RampartFirewall
import RampartTesting
import Testing

@testable import RampartServer

/// The enforcer applies a commit's blocks at once and its unblocks only once that commit is on
/// disk, and a later block of the same target cancels an unblock still waiting.
/// (The waits are long because other suites may keep the cooperative pool busy for seconds.)
struct EnforcerTests {
    let expires = Date(milliseconds: 1_800_000_000_000)

    func add(_ value: String) -> FirewallChange {
        .add(FirewallBlock(target: try! IPNetwork(parsing: value, allowBareAddress: true), direction: .both, expiresAt: expires))
    }

    func remove(_ value: String) -> FirewallChange {
        .remove(try! IPNetwork(parsing: value, allowBareAddress: true))
    }

    func held(_ firewall: DryRunFirewall) -> Set<String> {
        Set(firewall.current.map(\.target.description))
    }

    func running(_ body: (Enforcer, DryRunFirewall) async throws -> Void) async throws {
        let firewall = DryRunFirewall(logger: Logger(label: "test"))
        let enforcer = Enforcer(firewall: firewall, decisions: { [] }, reconcileInterval: .seconds(3600), logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await enforcer.run() }
            try await body(enforcer, firewall)
            group.cancelAll()
        }
    }

    @Test func unblocksWaitForTheirCommitToBeDurable() async throws {
        try await running { enforcer, firewall in
            enforcer.committed(1, firewall: [add("77.90.185.1")])
            try await waitUntil(seconds: 30) { held(firewall) == ["77.90.185.1"] }
            // One commit unblocks one address and blocks another: the block is applied, the unblock
            // (which came first, and would have gone in the same batch or before) waits.
            enforcer.committed(2, firewall: [remove("77.90.185.1"), add("77.90.185.2")])
            try await waitUntil(seconds: 30) { held(firewall).contains("77.90.185.2") }
            #expect(held(firewall) == ["77.90.185.1", "77.90.185.2"])
            enforcer.durable(through: 1)
            enforcer.committed(3, firewall: [add("77.90.185.3")])
            try await waitUntil(seconds: 30) { held(firewall).contains("77.90.185.3") }
            #expect(held(firewall).contains("77.90.185.1"), "commit 2 is not durable yet")
            enforcer.durable(through: 2)
            try await waitUntil(seconds: 30) { !held(firewall).contains("77.90.185.1") }
            #expect(held(firewall) == ["77.90.185.2", "77.90.185.3"])
        }
    }

    @Test func aLaterBlockCancelsAWaitingUnblock() async throws {
        try await running { enforcer, firewall in
            enforcer.committed(1, firewall: [add("77.90.185.1")])
            enforcer.committed(2, firewall: [remove("77.90.185.1")])
            // Blocked again before commit 2's log sync: once 2 and 3 are durable, it stays blocked.
            enforcer.committed(3, firewall: [add("77.90.185.1")])
            enforcer.durable(through: 3)
            enforcer.committed(4, firewall: [add("77.90.185.4")])
            try await waitUntil(seconds: 30) { held(firewall).contains("77.90.185.4") }
            #expect(held(firewall) == ["77.90.185.1", "77.90.185.4"])
        }
    }

    /// The periodic reconcile follows the injected clock: nothing before the interval, the kernel
    /// brought to the store as soon as it has passed, with no real waiting.
    @Test func theReconcileIntervalRunsOnTheInjectedClock() async throws {
        let firewall = DryRunFirewall(logger: Logger(label: "test"))
        try firewall.apply([add("77.90.185.9")])  // behind the store's back
        let clock = ManualClock()
        let enforcer = Enforcer(
            firewall: firewall, decisions: { [] }, reconcileInterval: .seconds(60), clock: clock, logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await enforcer.run() }
            try await clock.waitForSleepers(1)
            clock.advance(by: .seconds(59))
            try await clock.waitForSleepers(1)
            #expect(held(firewall) == ["77.90.185.9"])
            clock.advance(by: .seconds(1))
            try await waitUntil(seconds: 30) { held(firewall).isEmpty }
            group.cancelAll()
        }
    }
}
