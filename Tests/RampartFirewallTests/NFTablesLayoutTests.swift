import Foundation
import RampartCore
import Testing

@testable import RampartFirewall

@Suite struct NFTablesLayoutTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func block(_ text: String, _ direction: Direction = .inbound, seconds: Double = 3600) -> FirewallChange {
        .add(
            FirewallBlock(
                target: try! IPNetwork(parsing: text, allowBareAddress: true), direction: direction, expiresAt: now.addingTimeInterval(seconds)))
    }

    func remove(_ text: String) -> FirewallChange {
        .remove(try! IPNetwork(parsing: text, allowBareAddress: true))
    }

    @Test func addressesGoToHashSetsAndNestedNetworksToSeparateLayers() {
        var layout = NFTablesLayout()
        let batch = layout.plan(
            [
                block("198.51.100.7", .both), block("8.8.0.0/16"), block("8.8.4.0/24"), block("8.8.4.128/25"), block("9.9.9.0/24"),
                block("2001:db8::/48", .outbound),
            ],
            now: now
        )
        let script = batch.script(table: "rampart")
        #expect(script.contains("add element inet rampart in4 { 198.51.100.7 timeout 3600000ms }"))
        #expect(script.contains("add element inet rampart out4 { 198.51.100.7 timeout 3600000ms }"))
        #expect(script.contains("add element inet rampart in4_net0 { 8.8.0.0/16 timeout 3600000ms, 9.9.9.0/24 timeout 3600000ms }"))
        #expect(script.contains("add element inet rampart in4_net1 { 8.8.4.0/24 timeout 3600000ms }"))
        #expect(script.contains("add element inet rampart in4_net2 { 8.8.4.128/25 timeout 3600000ms }"))
        #expect(script.contains("add element inet rampart out6_net0 { 2001:db8::/48 timeout 3600000ms }"))
        #expect(!script.contains("delete"))
    }

    @Test func aVacatedSlotIsReusedOnlyAfterItsBatchCommits() {
        var layout = NFTablesLayout()
        _ = layout.plan([block("8.8.0.0/16")], now: now)
        layout.committed()
        // Removing the /16 and adding a /24 inside it in one transaction: nft would check the add
        // against the set before the delete, so the /24 goes to the next layer.
        let batch = layout.plan([remove("8.8.0.0/16"), block("8.8.8.0/24")], now: now)
        let script = batch.script(table: "rampart")
        #expect(script.contains("add element inet rampart in4_net0 { 8.8.0.0/16 timeout 1000ms }"))
        #expect(script.contains("delete element inet rampart in4_net0 { 8.8.0.0/16 }"))
        #expect(script.contains("add element inet rampart in4_net1 { 8.8.8.0/24 timeout 3600000ms }"))
        layout.committed()
        let next = layout.plan([block("8.8.9.0/24")], now: now)
        #expect(next.script(table: "rampart").contains("add element inet rampart in4_net0 { 8.8.9.0/24"))
    }

    @Test func theLastChangeForATargetWinsAndExtensionsReplaceTheTimeout() {
        var layout = NFTablesLayout()
        let first = layout.plan([block("1.2.3.4"), block("1.2.3.4", seconds: 60), remove("5.6.7.8")], now: now)
        #expect(first.script(table: "t") == "add element inet t in4 { 1.2.3.4 timeout 60000ms }\n")
        layout.committed()
        #expect(layout.plan([block("1.2.3.4", seconds: 60)], now: now).isEmpty)
        let extended = layout.plan([block("1.2.3.4", .both, seconds: 120)], now: now).script(table: "t")
        #expect(
            extended == """
                add element inet t in4 { 1.2.3.4 timeout 1000ms }
                delete element inet t in4 { 1.2.3.4 }
                add element inet t in4 { 1.2.3.4 timeout 120000ms }
                add element inet t out4 { 1.2.3.4 timeout 120000ms }

                """
        )
        let expired = layout.plan([block("1.2.3.4", seconds: -1)], now: now).script(table: "t")
        #expect(expired.contains("delete element inet t in4 { 1.2.3.4 }") && !expired.contains("120000ms"))
    }

    @Test func networksNestedDeeperThanTheLayersAreReportedNotWritten() throws {
        var layout = NFTablesLayout()
        let nested = (0...NFTablesLayout.layers).map { block("8.8.0.0/\(16 + $0)") }
        let batch = layout.plan(nested, now: now)
        #expect(batch.unplaced == [try IPNetwork(parsing: "8.8.0.0/\(16 + NFTablesLayout.layers)")])
    }

    @Test func reconcilePlacementKeepsNetworksInTheLayerTheKernelHasThemIn() {
        let blocks = [block("8.8.0.0/16"), block("8.8.8.0/24")].map { change -> FirewallBlock in
            guard case .add(let b) = change else { fatalError() }
            return b
        }
        let inner = try! IPNetwork(parsing: "8.8.8.0/24")
        let (layout, unplaced) = NFTablesLayout.placing(blocks, kernelLayers: [inner: 0], now: now)
        #expect(unplaced.isEmpty)
        #expect(layout.placed[inner]?.layer == 0)
        #expect(layout.placed[try! IPNetwork(parsing: "8.8.0.0/16")]?.layer == 1)
    }
}
