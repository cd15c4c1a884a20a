import Foundation
import HTTPTypes
import HummingbirdTesting
import RampartCore
import RampartServer
import Testing

@Suite struct STIXIngestTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/stix")
    static let blockIPs = "name: block-ips\nmatch: {kind: [ipv4, ipv6, cidr]}\nactions: [{block: {duration: 1h}}]\n"

    static func fixture(_ name: String) throws -> String {
        try String(contentsOf: fixtures.appendingPathComponent(name), encoding: .utf8)
    }

    static func bundle(_ objects: String...) -> String {
        bundle(objects)
    }

    static func bundle(_ objects: [String]) -> String {
        #"{"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": ["# + objects.joined(separator: ",") + "]}"
    }

    static func indicator(
        _ pattern: String, modified: String = "2026-01-02T00:00:00.000Z", id: String = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        extra: String = "", type: String = "stix"
    ) -> String {
        let escaped = pattern.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return """
            {"type": "indicator", "spec_version": "2.1", "id": "\(id)", "created": "2026-01-01T00:00:00.000Z",
             "modified": "\(modified)", "valid_from": "2026-01-01T00:00:00Z", "pattern_type": "\(type)", "pattern": "\(escaped)"\(extra)}
            """
    }

    func activeValues(_ client: TestClientProtocol) async throws -> [String] {
        let answer = try await client.call(.get, "/v1/decisions?active=true", as: "read")
        return ((answer["decisions"] as? [[String: Any]]) ?? []).compactMap { $0["value"] as? String }.sorted()
    }

    /// The official examples: every object has an outcome, with why for those left alone.
    @Test func officialExamplesPerObjectOutcome() async throws {
        try await TestNode(playbooks: ["block-ips": Self.blockIPs]).run { client, parts in
            let poisonivy = try Self.fixture("poisonivy.json")
            let answer = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "application/stix+json;version=2.1", body: poisonivy)
            #expect(answer.status == .accepted)
            // 25 indicators: 23 name domains and addresses (one domain has a space in it), 2 a file name.
            let skipped = try #require(answer["skipped"] as? [[String: Any]])
            let reasons = skipped.compactMap { $0["reason"] as? String }
            #expect(reasons.filter { $0.contains("file:name") }.count == 2)
            #expect(reasons.filter { $0.hasPrefix("value refused") && $0.contains("domain autuo.xicp.net") }.count == 1)
            // 130 other objects (relationships, malware, ...) hold no indicator; the answer lists the first 100.
            #expect(skipped.count == 100)
            #expect(answer["skipped_count"] as? Int == 133)
            let ids = try #require(answer["ids"] as? [String])
            #expect(ids.count == answer["accepted"] as? Int)
            #expect(ids.count > 40)
            #expect(try await activeValues(client).contains("219.76.208.163"))

            // The C2 example names 10.0.0.0: the item is stored, the block is refused (not global).
            let c2 = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "application/json", body: try Self.fixture("indicators-for-C2-with-COA.json"))
            #expect(c2.status == .accepted)
            #expect(c2["accepted"] as? Int == 2)
            #expect(try await activeValues(client).contains("10.0.0.0") == false)
            let firstID = try #require((c2["ids"] as? [String])?.first)
            let stored = try #require(try await parts.store.itemJSON(id: firstID))
            #expect(stored.contains(#""stix":{"id":"indicator--"#))

            // No indicator in the e-mail example names a value.
            let email = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "application/stix+json",
                body: try Self.fixture("malicious-email-indicator-with-attachment.json"))
            #expect(email.status == .accepted)
            #expect(email["accepted"] as? Int == 0)
            #expect((email["skipped"] as? [[String: Any]])?.count == 6)
        }
    }

    /// STIX versioning: a newer `modified` replaces, an older one or the same is ignored, `revoked`
    /// withdraws what the object caused, and only its source may change it.
    @Test func versionsReplaceAndRevoke() async throws {
        try await TestNode(playbooks: ["block-ips": Self.blockIPs]).run { client, _ in
            func post(_ object: String, as role: String = "ingest") async throws -> Answer {
                try await client.call(.post, "/v1/indicators", as: role, contentType: "application/stix+json", body: Self.bundle(object))
            }
            let v1 = try await post(Self.indicator("[ipv4-addr:value = '77.90.185.20' OR ipv4-addr:value = '77.90.185.21']"))
            #expect(v1["accepted"] as? Int == 2)
            #expect(try await activeValues(client) == ["77.90.185.20", "77.90.185.21"])

            let again = try await post(Self.indicator("[ipv4-addr:value = '77.90.185.20' OR ipv4-addr:value = '77.90.185.21']"))
            #expect(again["accepted"] as? Int == 0)
            #expect(((again["skipped"] as? [[String: Any]])?.first?["reason"] as? String)?.contains("stored already") == true)
            let older = try await post(Self.indicator("[ipv4-addr:value = '77.90.185.30']", modified: "2026-01-01T12:00:00.000Z"))
            #expect(((older["skipped"] as? [[String: Any]])?.first?["reason"] as? String)?.contains("a newer version") == true)

            // v2 names one of the two: the other's block goes, the kept one stays in force throughout.
            let v2 = try await post(Self.indicator("[ipv4-addr:value = '77.90.185.20']", modified: "2026-01-03T00:00:00.000Z"))
            #expect(v2["accepted"] as? Int == 1)
            #expect(try await activeValues(client) == ["77.90.185.20"])

            let foreign = try await post(
                Self.indicator("[ipv4-addr:value = '77.90.185.20']", modified: "2026-01-04T00:00:00.000Z", extra: #", "revoked": true"#), as: "admin")
            #expect(((foreign["skipped"] as? [[String: Any]])?.first?["reason"] as? String)?.contains("only its source") == true)
            #expect(try await activeValues(client) == ["77.90.185.20"])

            let revoked = try await post(
                Self.indicator("[ipv4-addr:value = '77.90.185.20']", modified: "2026-01-04T00:00:00.000Z", extra: #", "revoked": true"#))
            #expect(revoked["revoked"] as? [String] == ["indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"])
            #expect(try await activeValues(client) == [])
            let later = try await post(Self.indicator("[ipv4-addr:value = '77.90.185.20']", modified: "2026-01-05T00:00:00.000Z"))
            #expect(((later["skipped"] as? [[String: Any]])?.first?["reason"] as? String)?.contains("was revoked") == true)
            #expect(try await activeValues(client) == [])

            let events = try await client.auditEvents().compactMap { $0["event"] as? String }
            #expect(events.filter { $0 == "decision.revoked" }.count == 2)
        }
    }

    /// A TAXII collection serves every version of an object ingested as STIX under the object's
    /// id, the latest (here its revocation) by default, however many other objects came between.
    @Test func versionsAreServedUnderTheObjectID() async throws {
        let collection = "365fed99-08fa-4dcd-a1b3-fb247eb41d01"
        let yaml = "taxii:\n  collections:\n    - {id: \(collection), title: shared, read: [viewer], write: [feeder]}"
        try await TestNode(extraYAML: yaml).run { client, _ in
            let id = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
            func post(_ objects: [String]) async throws {
                let answer = try await client.call(
                    .post, "/v1/indicators", as: "ingest", contentType: "application/stix+json", body: Self.bundle(objects))
                #expect(answer.status == .accepted, "\(answer.json)")
            }
            try await post([Self.indicator("[ipv4-addr:value = '77.90.185.20']")])
            // Others between the versions, so that the object's rows are not neighbours.
            try await post(
                (0..<20).map { n in
                    Self.indicator(
                        "[ipv4-addr:value = '77.90.186.\(n + 1)']",
                        id: "indicator--\(String(format: "%08x", n * 0x0a3b_1c7d))-17d4-4cbf-938f-98ee46b3cd3f")
                })
            try await post([Self.indicator("[ipv4-addr:value = '77.90.185.21']", modified: "2026-01-03T00:00:00.000Z")])
            try await post([Self.indicator("[ipv4-addr:value = '77.90.185.21']", modified: "2026-01-04T00:00:00.000Z", extra: #", "revoked": true"#)])
            let base = "/taxii2/api/collections/\(collection)/objects/"
            let versions = try await client.call(.get, base + id + "/versions/", as: "read")
            // The revocation is a version of its own, made when it came.
            let listed = versions["versions"] as? [String] ?? []
            #expect(listed.prefix(2) == ["2026-01-02T00:00:00.000000Z", "2026-01-03T00:00:00.000000Z"] && listed.count == 3, "\(listed)")
            let last = try await client.call(.get, base + id + "/", as: "read")
            let objects = last["objects"] as? [[String: Any]] ?? []
            #expect(objects.count == 1 && objects.first?["revoked"] as? Bool == true, "\(last.json)")
            let all = try await client.call(.get, base + "?match[id]=\(id)&match[version]=all", as: "read")
            #expect((all["objects"] as? [[String: Any]])?.compactMap { $0["pattern"] as? String }.filter { $0.contains("77.90.185.2") }.count == 3)
            for empty in ["match[version]=", "match[id]=", "match[type]=,"] {
                #expect(try await client.call(.get, base + "?" + empty, as: "read")["error_code"] as? String == "invalid_parameter", "\(empty)")
            }
            let everything = try await client.call(.get, base + "?limit=100", as: "read")
            #expect((everything["objects"] as? [[String: Any]])?.count == 21)
        }
    }

    /// Another source's item for the same value keeps the block when the STIX object is revoked.
    @Test func revocationKeepsWhatOthersSupport() async throws {
        try await TestNode(playbooks: ["block-ips": Self.blockIPs]).run { client, _ in
            _ = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "application/stix+json",
                body: Self.bundle(Self.indicator("[ipv4-addr:value = '77.90.185.20']")))
            _ = try await client.call(.post, "/v1/indicators", as: "admin", contentType: "text/plain", body: "77.90.185.20\n")
            _ = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "application/stix+json",
                body: Self.bundle(
                    Self.indicator("[ipv4-addr:value = '77.90.185.20']", modified: "2026-01-03T00:00:00.000Z", extra: #", "revoked": true"#)))
            #expect(try await activeValues(client) == ["77.90.185.20"])
            let kept = try await client.auditEvents().filter { $0["event"] as? String == "revocation.kept" }
            #expect(kept.count == 1)
        }
    }

    /// Rule patterns become rule items through the rule checks; MISP's bracketed form too.
    @Test func rulePatternsAndMISPForms() async throws {
        try await TestNode().run { client, _ in
            let yara = "rule evil_marker { strings: $a = \"evil\" condition: $a }"
            let objects = [
                Self.indicator(yara, id: "indicator--1e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", type: "yara"),
                Self.indicator("[" + yara + "]", id: "indicator--2e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", type: "yara"),
                Self.indicator("rule broken {", id: "indicator--3e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", type: "yara"),
                Self.indicator("/evil/", id: "indicator--4e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", type: "pcre"),
                Self.indicator(
                    "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '5.6.7.8' AND network-traffic:dst_port = '5678']",
                    id: "indicator--5e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"),
                Self.indicator(
                    "[file:hashes.SHA256 = 'EF537F25C895BFA782526529A9B63D97AA631564D5D789C2B765448C8635FB6C']",
                    id: "indicator--6e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"),
                Self.indicator("[ipv4-addr:value = '5.6.7.9'", id: "indicator--7e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"),
            ]
            let answer = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "application/stix+json",
                body: Self.bundle(objects[0], objects[1], objects[2], objects[3], objects[4], objects[5], objects[6]))
            #expect(answer.status == .accepted)
            #expect(answer["accepted"] as? Int == 4)
            #expect((answer["rejected"] as? [[String: Any]])?.compactMap { $0["index"] as? Int } == [2, 6])
            #expect((answer["skipped"] as? [[String: Any]])?.compactMap { $0["index"] as? Int } == [3])
        }
    }

    @Test func bodyErrors() async throws {
        try await TestNode().run { client, _ in
            let notBundle = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "application/stix+json", body: #"{"type": "indicator"}"#)
            #expect(notBundle.status == .badRequest)
            #expect(notBundle.problemCode == "invalid_body")
            let badObjects = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "application/stix+json", body: #"{"type": "bundle", "objects": 3}"#)
            #expect(badObjects.status == .badRequest)
            // A TAXII envelope is read like a bundle.
            let envelope = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "application/stix+json",
                body: #"{"objects": ["# + Self.indicator("[domain-name:value = 'evil.example']") + "]}")
            #expect(envelope["accepted"] as? Int == 1)
        }
    }
}
