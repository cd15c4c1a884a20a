import Foundation
import Testing

@testable import RampartCore

@Suite struct BlockActionTests {
    static let yaml =
        "name: c2\nmatch: {kind: [ipv4, cidr]}\nactions:\n  - block: {duration: 4h, direction: inbound, escalate: {factor: 2, max: 1d}}\n"

    @Test func plansOneRequestForTheItemsNetwork() throws {
        let playbook = try ActionFixture.playbook(Self.yaml)
        let intents = playbook.plan(try ActionFixture.item("77.90.185.0/24"), in: ActionFixture.context(maxBlock: .seconds(3600))).map(\.intent)
        guard case .block(let request)? = intents.first, intents.count == 1 else { Issue.record("expected one block, got \(intents)"); return }
        #expect(request.target.description == "77.90.185.0/24")
        #expect(request.direction == .inbound)
        #expect(request.duration == .seconds(4 * 3600))
        #expect(request.playbook == "c2")
        #expect(request.escalation == Escalation(factor: 2, max: .seconds(86_400)))
        #expect(request.maxDuration == .seconds(3600))
        #expect(!request.simulated)
    }

    @Test func simulatePlansASimulatedDecisionAndSaysSo() throws {
        let playbook = try ActionFixture.playbook(Self.yaml.replacingOccurrences(of: "match:", with: "mode: simulate\nmatch:"))
        let item = try ActionFixture.item("77.90.185.20")
        guard case .block(let request)? = playbook.plan(item, in: ActionFixture.context()).first?.intent else { Issue.record("no block"); return }
        #expect(request.simulated)
        #expect(
            playbook.explain(item, in: ActionFixture.context()) == [
                "block: record (simulate, not enforced) a block of 77.90.185.20 for 4h, 2x longer for each earlier block by this playbook, up to 1d, inbound"
            ])
    }

    @Test func theExplanationNamesTheSafetyRailsRefusal() throws {
        let playbook = try ActionFixture.playbook(Self.yaml)
        let policy = SafetyPolicy(neverBlock: [.init(try IPNetwork(parsing: "77.90.185.0/24"), "a partner")])
        let lines = playbook.explain(try ActionFixture.item("77.90.185.20"), in: ActionFixture.context(policy: policy))
        #expect(lines.count == 1)
        #expect(lines[0].hasPrefix("block: refused by the safety rails: "))
    }

    @Test func parseIsStrict() {
        #expect(
            ActionFixture.errors("name: p\nmatch: {kind: domain}\nactions:\n  - block: {duration: 1h}\n") == [
                "p.yaml:4:5: block acts on addresses and networks, but this playbook can match [domain]; limit match.kind to ipv4, ipv6 and cidr"
            ])
        #expect(
            ActionFixture.errors("name: p\nmatch: {kind: ipv4}\nactions:\n  - block: {duration: 1h, escalate: {factor: 2, max: 30m}}\n") == [
                "p.yaml:4:37: actions[0].block.escalate.max (30m) is shorter than the duration (1h)"
            ])
        #expect(!ActionFixture.errors("name: p\nmatch: {kind: ipv4}\nactions:\n  - block: {duration: 1h, direction: sideways}\n").isEmpty)
    }
}
