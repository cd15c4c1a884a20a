import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import RampartServer

/// `/metrics` is Prometheus text whose counts follow what the daemon did.
@Suite struct MetricsTests {
    /// Series (`name{labels}`) to values, from the exposition format; comments skipped, every
    /// other line must parse.
    static func parse(_ text: String) throws -> [String: Double] {
        var series: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw DaemonError("not a sample line: \(line)")
            }
            series[String(line[..<space])] = value
        }
        return series
    }

    struct DaemonError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    @Test func countsIngestRefusalsActionsAndReloads() async throws {
        let node = try TestNode(playbooks: ["block": "name: block-all\nmatch: {kind: ipv4}\nactions: [{block: {duration: 1h}}]\n"])
        try await node.run { client, _ in
            let posted = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "text/plain", body: "23.1.2.3\n127.0.0.1\nnot an address\n")
            #expect(posted.status == .accepted)
            let manual = try await client.call(
                .post, "/v1/decisions", contentType: "application/json", body: #"{"value": "10.1.2.3", "duration": "1h"}"#)
            #expect(manual.status.code == 422)
            #expect(try await client.call(.post, "/v1/reload").status == .ok)

            let (text, contentType): (String, String?) = try await client.execute(uri: "/metrics", method: .get) { response in
                (String(buffer: response.body), response.headers[.contentType])
            }
            #expect(contentType?.hasPrefix("text/plain; version=0.0.4") == true)
            let series = try Self.parse(text)
            let expected: [String: Double] = [
                #"rampart_items_ingested_total{kind="ipv4",via="api:feeder"}"#: 2,
                #"rampart_items_rejected_total{reason="invalid_domain"}"#: 1,
                #"rampart_playbook_matches_total{playbook="block-all"}"#: 2,
                #"rampart_actions_total{action="block",outcome="created"}"#: 1,
                #"rampart_actions_total{action="block",outcome="refused"}"#: 2,
                #"rampart_blocks_refused_total{code="protected"}"#: 1,
                #"rampart_blocks_refused_total{code="non_global"}"#: 1,
                #"rampart_reloads_total{outcome="reloaded"}"#: 1,
                "rampart_decisions_active": 1,
            ]
            for (name, value) in expected {
                #expect(series[name] == value, "\(name): \(String(describing: series[name]))\n\(text)")
            }
            #expect((series["rampart_firewall_batch_size_count"] ?? 0) >= 1, "\(text)")
            #expect(series.keys.contains { $0.hasPrefix("rampart_firewall_batch_seconds_bucket") })
        }
    }
}
