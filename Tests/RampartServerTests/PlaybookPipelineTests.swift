import Foundation
import HummingbirdTesting
import RampartCore
import RampartServer
import Testing

@Suite struct PlaybookPipelineTests {
    static let playbooks = [
        "c2": """
            name: block-c2
            priority: 10
            match:
              kind: [ipv4, ipv6, cidr]
              confidence: {min: 80}
              tags: {any: [c2]}
            actions:
              - block: {duration: 4h, direction: inbound}
            """,
        "trial": """
            name: trial-feed
            mode: simulate
            priority: 20
            match:
              kind: ipv4
              from: [api:feeder]
            actions:
              - block: {duration: 1h}
            """,
    ]

    @Test func matchingItemsCreateDecisionsInTheSameCommit() async throws {
        let node = try TestNode(playbooks: Self.playbooks)
        try await node.run { client, _ in
            let body = #"[{"value": "77.90.185.20", "confidence": 90, "tags": ["c2"]}, {"value": "127.0.0.1", "confidence": 90, "tags": ["c2"]}, {"value": "77.90.185.21", "confidence": 10, "tags": ["c2"]}]"#
            let answer = try await client.call(.post, "/v1/indicators", as: "admin", contentType: "application/json", body: body)
            #expect(answer.status == .accepted)
            let ids = try #require(answer["ids"] as? [String])
            #expect(ids.count == 3)

            // Committed with the 202: the decision is listed at once, naming playbook and item.
            let listed = try await client.call(.get, "/v1/decisions?active=true", as: "read")
            let decisions = try #require(listed["decisions"] as? [[String: Any]])
            #expect(decisions.count == 1)
            #expect(decisions.first?["value"] as? String == "77.90.185.20")
            #expect(decisions.first?["playbook"] as? String == "block-c2")
            #expect(decisions.first?["item"] as? String == ids[0])
            #expect(decisions.first?["direction"] as? String == "inbound")
            try await waitUntil { node.firewall.current.map(\.target.description) == ["77.90.185.20"] }

            // The audit chain tells the story in order; the loopback block was refused, not dropped.
            let audit = try await client.call(.get, "/v1/audit?limit=1000", as: "read")
            let events = (audit["entries"] as? [[String: Any]])?.compactMap { $0["event"] as? String }
            #expect(events == [
                "item.accepted", "playbook.matched", "decision.created",
                "item.accepted", "playbook.matched", "decision.refused",
                "item.accepted",
            ])
        }
    }

    @Test func simulatePlaybooksRecordWithoutEnforcing() async throws {
        let node = try TestNode(playbooks: Self.playbooks)
        try await node.run { client, _ in
            let answer = try await client.call(.post, "/v1/indicators", as: "ingest", contentType: "text/plain", body: "45.9.148.3\n")
            #expect(answer.status == .accepted)
            let listed = try await client.call(.get, "/v1/decisions", as: "read")
            let decision = try #require((listed["decisions"] as? [[String: Any]])?.first)
            #expect(decision["playbook"] as? String == "trial-feed")
            #expect(decision["simulated"] as? Bool == true)
            try await Task.sleep(for: .milliseconds(100))
            #expect(node.firewall.current.isEmpty)
        }
    }

    @Test func invalidPlaybooksStopStartUpWithEveryError() throws {
        let node = try TestNode(playbooks: ["bad": "name: bad\nmatch: {kind: domain, confidense: {min: 1}}\nactions: [{block: {duration: 1h}}]\n"])
        do {
            _ = try Daemon.build(config: node.config, logger: .init(label: "test"))
            Issue.record("the daemon started with an invalid playbook")
        } catch let error as Diagnostics {
            #expect(error.items.count == 2)
            #expect(error.items.allSatisfy { $0.file.hasSuffix("bad.yaml") && $0.line == 2 || $0.line == 3 })
        }
    }
}
