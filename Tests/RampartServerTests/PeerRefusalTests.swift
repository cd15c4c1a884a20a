import Foundation
import HummingbirdTesting
import RampartCore
import RampartServer
import Testing

/// Two live nodes: what the receiver refuses of a batch it otherwise takes (its 200 answer's
/// `refused` list) is recorded as refused at the sender, not passed off as delivered.
@Suite struct PeerRefusalTests {
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    @Test func entriesAPeerRefusesAreSeenByTheSender() async throws {
        let receiver = try TestNode(
            nodeID: "node-b",
            extraYAML: """
                peers:
                  - {name: a, node_id: node-a, url: "http://127.0.0.1:9/v1/peer/events", secret: \(Self.secret), accept: {min_confidence: 60}}
                """
        )
        try await receiver.run { b, _ in
            let port = try #require(b.port)
            let sender = try TestNode(
                nodeID: "node-a",
                extraYAML: """
                    peers:
                      - {name: b, node_id: node-b, url: "http://127.0.0.1:\(port)/v1/peer/events", secret: \(Self.secret)}
                    """,
                playbooks: ["share": "name: share\nmatch: {kind: ipv4}\nactions:\n  - propagate: {to: [b]}\n"]
            )
            try await sender.run { a, _ in
                let body = #"[{"value": "77.90.185.20", "confidence": 90}, {"value": "77.90.185.21", "confidence": 30}]"#
                let posted = try await a.call(.post, "/v1/indicators", as: "ingest", contentType: "application/json", body: body)
                #expect(posted.status == .accepted)
                var peer: [String: Any] = [:]
                try await waitUntil {
                    let peers = try await a.call(.get, "/v1/peers", as: "read")
                    peer = (peers["peers"] as? [[String: Any]])?.first ?? [:]
                    return (peer["sent"] as? Int ?? 0) + (peer["refused_by_peer"] as? Int ?? 0) == 2
                }
                #expect(peer["sent"] as? Int == 1)
                #expect(peer["refused_by_peer"] as? Int == 1)
                #expect((peer["last_error"] as? String)?.contains("refused by the peer") == true)
                let audit = try await a.call(.get, "/v1/audit?limit=1000", as: "read")
                let entries = try #require(audit["entries"] as? [[String: Any]])
                #expect(entries.filter { $0["event"] as? String == "peer.refused" }.count == 1)
            }
        }
    }
}
