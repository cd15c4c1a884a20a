import Foundation
import Testing

@testable import RampartCore

@Suite struct PropagateActionTests {
    static let peers: [Peer] = {
        var b = Peer(name: "b", url: "https://b.example/v1/peer/events")
        b.share.maxTLP = .green
        let c = Peer(name: "c", url: "https://c.example/v1/peer/events")
        var gone = Peer(name: "gone", url: "https://gone.example/v1/peer/events")
        gone.expires = Date(timeIntervalSince1970: 1_700_000_000)
        return [b, c, gone]
    }()

    func propagation(_ yaml: String, _ item: Item) throws -> Propagation? {
        let playbook = try ActionFixture.playbook("name: share\nmatch: {kind: ipv4}\nactions:\n  - \(yaml)\n", peers: Self.peers.map(\.name))
        guard case .propagate(let propagation)? = playbook.plan(item, in: ActionFixture.context(peers: Self.peers)).first?.intent else { return nil }
        return propagation
    }

    @Test func queuesForThePeersWhosePoliciesAllowAndSaysWhyTheOthersAreWithheld() throws {
        let planned = try #require(
            try propagation("propagate: {to: all, suggest: [block], hops: 3}", ActionFixture.item("77.90.185.20", tlp: .amber)))
        #expect(planned.outcome == .queued)
        #expect(planned.queued == ["c"])
        #expect(planned.withheld.map { "\($0.peer):\($0.code)" } == ["b:tlp", "gone:expired"])
        #expect(planned.path == ["here"])
        #expect(planned.hopsLeft == 2)
        #expect(planned.suggest == ["block"])
        let playbook = try ActionFixture.playbook(
            "name: share\nmatch: {kind: ipv4}\nactions:\n  - propagate: {to: [c]}\n", peers: Self.peers.map(\.name))
        #expect(playbook.explain(try ActionFixture.item("77.90.185.20"), in: ActionFixture.context(peers: Self.peers)) == ["propagate: send to c"])
    }

    @Test func itemsFromElsewhereGoOnOnlyWhenRelayingAndNeverBack() throws {
        let received = try ActionFixture.item("77.90.185.20", path: ["c"], origin: "c")
        #expect(try propagation("propagate: {to: all}", received)?.outcome == .notOrigin)
        let relayed = try #require(try propagation("propagate: {to: all, relay: true}", received))
        #expect(relayed.queued == [])
        #expect(relayed.path == ["c", "here"])
        #expect(relayed.outcome == .withheld)
    }

    @Test func parseIsStrict() {
        #expect(
            ActionFixture.errors("name: p\nmatch: {kind: ipv4}\nactions:\n  - propagate: {to: [d]}\n", peers: ["b"]) == [
                "p.yaml:4:21: actions[0].propagate.to: unknown peer 'd'; the configuration has b (or say to: all)"
            ])
        #expect(!ActionFixture.errors("name: p\nmatch: {kind: ipv4}\nactions:\n  - propagate: {to: all, suggest: [reboot]}\n").isEmpty)
    }
}
