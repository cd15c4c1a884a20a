import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import RampartCore
import RampartServer
import RampartStore
import Testing

@Suite struct IngestAPITests {
    @Test func textBodyAcceptsGoodLinesAndNamesBadOnes() async throws {
        try await TestNode().run { client, parts in
            // Extra columns (ipsum's IP<TAB>count), comments, a blank line and two bad lines.
            let body = "# feed header\n77.90.185.20\t9\n\n010.1.1.1\nEvil.Example.COM.\n1.2.3.4/24\n"
            let answer = try await client.call(
                .post, "/v1/indicators?source=ipsum&confidence=70&tags=scanner", as: "ingest", contentType: "text/plain", body: body)
            #expect(answer.status == .accepted)
            #expect(answer["accepted"] as? Int == 2)
            let ids = try #require(answer["ids"] as? [String])
            #expect(ids.count == 2)
            let rejected = try #require(answer["rejected"] as? [[String: Any]])
            #expect(rejected.map { $0["line"] as? Int } == [4, 6])
            #expect((rejected[0]["error"] as? String)?.contains("octal") == true)

            // Committed before the answer: the items are in the store, normalised, with the defaults.
            #expect(try await parts.store.itemCount() == 2)
            let stored = try #require(try await parts.store.itemJSON(id: ids[1]))
            let item = try #require(try JSONSerialization.jsonObject(with: Data(stored.utf8)) as? [String: Any])
            #expect(item["via"] as? String == "api:feeder")
            #expect(item["origin"] as? String == "test-1")
            let indicator = try #require(item["indicator"] as? [String: Any])
            #expect(indicator["value"] as? String == "evil.example.com")
            #expect(indicator["kind"] as? String == "domain")
            #expect(indicator["source"] as? String == "ipsum")
            #expect(indicator["confidence"] as? Int == 70)
            #expect(indicator["tags"] as? [String] == ["scanner"])
        }
    }

    @Test func jsonArrayAndObjectAndNDJSON() async throws {
        try await TestNode().run { client, _ in
            let array = """
                [{"value": "2001:DB8:0:0:0:0:0:1", "confidence": 90},
                 {"value": "::ffff:1.2.3.4"},
                 {"kind": "sha256", "value": "abc"},
                 {"value": "d41d8cd98f00b204e9800998ecf8427e", "severity": "extreme"}]
                """
            let a = try await client.call(.post, "/v1/indicators", as: "ingest", contentType: "application/json", body: array)
            #expect(a.status == .accepted)
            #expect(a["accepted"] as? Int == 2)
            #expect((a["rejected"] as? [[String: Any]])?.map { $0["index"] as? Int } == [2, 3])

            let object = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "application/json; charset=utf-8",
                body: #"{"value": "example.org", "tlp": "green"}"#
            )
            #expect(object.status == .accepted)
            #expect(object["accepted"] as? Int == 1)

            let ndjson = "{\"value\": \"8.8.4.4\"}\n\n{not json}\n{\"value\": \"https://example.net/x?a=1\"}\n"
            let n = try await client.call(.post, "/v1/indicators", as: "ingest", contentType: "application/x-ndjson", body: ndjson)
            #expect(n.status == .accepted)
            #expect(n["accepted"] as? Int == 2)
            #expect((n["rejected"] as? [[String: Any]])?.first?["line"] as? Int == 3)
        }
    }

    @Test func allItemsRefusedIs422WithEveryError() async throws {
        try await TestNode().run { client, parts in
            let answer = try await client.call(.post, "/v1/indicators", as: "ingest", contentType: "text/plain", body: "999.1.1.1\nnot a value\n")
            #expect(answer.status == .unprocessableContent)
            #expect(answer.headers[.contentType] == "application/problem+json")
            #expect(answer.problemCode == "all_items_refused")
            #expect((answer["errors"] as? [[String: Any]])?.count == 2)
            #expect(try await parts.store.itemCount() == 0)
            // Refusals are audited all the same.
            let audit = try await client.call(.get, "/v1/audit", as: "read")
            let events = (audit["entries"] as? [[String: Any]])?.compactMap { $0["event"] as? String }
            #expect(events == ["item.refused", "item.refused"])
        }
    }

    /// A body of bad lines costs little: the first 100 refusals are listed (in the answer and with
    /// an audit entry each), the rest only counted, by code, in one entry.
    @Test func refusalsPastTheFirstHundredAreCountedNotListed() async throws {
        try await TestNode().run { client, _ in
            let body = (0..<250).map { "999.0.0.\($0)" }.joined(separator: "\n") + "\nnot a value\n45.9.148.3\n"
            let answer = try await client.call(.post, "/v1/indicators", as: "ingest", contentType: "text/plain", body: body)
            #expect(answer.status == .accepted)
            #expect(answer["accepted"] as? Int == 1)
            #expect(answer["rejected_count"] as? Int == 251)
            let rejected = try #require(answer["rejected"] as? [[String: Any]])
            #expect(rejected.count == 100)
            #expect(rejected.last?["line"] as? Int == 100)
            let events = try await client.auditEvents()
            #expect(events.filter { $0["event"] as? String == "item.refused" }.count == 100)
            let beyond = try #require(events.first { $0["event"] as? String == "items.refused" }?["detail"] as? [String: Any])
            #expect(beyond["listed"] as? Int == 100)
            #expect(beyond["more"] as? Int == 151)
            #expect(beyond["codes"] as? [String: Int] == ["invalid_ipv4": 150, "invalid_domain": 1])

            let none = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "text/plain", body: body.replacingOccurrences(of: "45.9.148.3", with: "x"))
            #expect(none.status == .unprocessableContent)
            #expect((none["errors"] as? [Any])?.count == 100)
            #expect((none["detail"] as? String)?.contains("none of the 252 items was accepted; the first 100 errors say why") == true)
        }
    }

    /// With an Idempotency-Key, items' ids come from the key and their place in the body: a retry
    /// gets the same ids and stores nothing twice (so a request that failed part way can be sent
    /// again); the key with another body is refused.
    @Test func anIdempotencyKeyMakesRetriesStoreNothingTwice() async throws {
        try await TestNode(playbooks: ["block": "name: block\nmatch: {kind: ipv4}\nactions: [{block: {duration: 1h}}]\n"]).run { client, parts in
            func post(_ body: String, key: String?) async throws -> Answer {
                var headers: HTTPFields = [.authorization: "Bearer \(TestNode.tokens["ingest"]!)", .contentType: "text/plain"]
                if let key { headers[HTTPField.Name("Idempotency-Key")!] = key }
                return try await client.execute(uri: "/v1/indicators", method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
                    let json = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]) ?? [:]
                    return Answer(status: response.status, headers: response.headers, json: json)
                }
            }
            let body = "45.9.148.3\n203.0.113.300\n77.90.185.20\n"
            let first = try await post(body, key: "batch-7")
            #expect(first.status == .accepted)
            let ids = try #require(first["ids"] as? [String])
            #expect(ids.count == 2)
            let again = try await post(body, key: "batch-7")
            #expect(again.status == .accepted)
            #expect(again["ids"] as? [String] == ids)
            #expect(try await parts.store.itemCount() == 2)
            let events = try await client.auditEvents().compactMap { $0["event"] as? String }
            #expect(events.filter { $0 == "item.accepted" }.count == 2)
            #expect(events.filter { $0 == "decision.created" }.count == 2)
            #expect(!events.contains("decision.merged"))

            let other = try await post("198.51.100.1\n", key: "batch-7")
            #expect(other.status == .unprocessableContent)
            #expect(other.problemCode == "idempotency_key_reused")
            #expect(try await parts.store.itemCount() == 2)
            let fresh = try await post(body, key: "batch-8")
            #expect(fresh.status == .accepted)
            #expect(Set(fresh["ids"] as? [String] ?? []).isDisjoint(with: ids))
            #expect(try await post(body, key: "two words").problemCode == "invalid_parameter")
        }
    }

    /// What a hostile client sends gets a clear 4xx at once and stores nothing: JSON nested
    /// 100,000 deep, invalid UTF-8 and NUL bytes in text and JSON. (A million tiny lines take
    /// seconds of a debug build's CPU, which would starve the tests running beside this one:
    /// `Benchmarks/hostileclients.py` sends them to a daemon of its own, in CampaignTests.)
    @Test func hostileBodiesGetClearRefusals() async throws {
        try await TestNode().run { client, parts in
            func post(_ type: String, _ bytes: [UInt8]) async throws -> Answer {
                try await client.call(.post, "/v1/indicators", as: "ingest", contentType: type, bytes: bytes)
            }
            let deep = try await post(
                "application/json", Array(repeating: UInt8(ascii: "["), count: 100_000) + Array(repeating: UInt8(ascii: "]"), count: 100_000))
            #expect(deep.status == .badRequest && deep.problemCode == "invalid_body", "\(deep.json)")

            let text = try await post("text/plain", Array("8.8.4.4\n".utf8) + [0xFF, 0xFE] + Array(".example\n".utf8))
            #expect(text.status == .accepted && text["accepted"] as? Int == 1, "\(text.json)")
            let rejected = text["rejected"] as? [[String: Any]]
            #expect(rejected?.first?["line"] as? Int == 2 && (rejected?.first?["error"] as? String)?.contains("UTF-8") == true, "\(text.json)")
            let json = try await post("application/json", Array(#"[{"value":""#.utf8) + [0xC3, 0x28] + Array(#""}]"#.utf8))
            #expect(json.status == .badRequest && json.problemCode == "invalid_body", "\(json.json)")

            let nul = try await post("text/plain", Array("8.8.8.8\u{0}\n".utf8))
            #expect(nul.status == .unprocessableContent, "\(nul.json)")
            let rawNUL = try await post("application/json", Array("[{\"value\":\"8.8.8.8\u{0}\"}]".utf8))
            #expect(rawNUL.status == .badRequest && rawNUL.problemCode == "invalid_body", "\(rawNUL.json)")
            let escapedNUL = try await post("application/json", Array(#"[{"value":"8.8.8.8\u0000"}]"#.utf8))
            #expect(escapedNUL.status == .unprocessableContent, "\(escapedNUL.json)")

            #expect(try await parts.store.itemCount() == 1)
        }
    }

    @Test func problemsForBadRequests() async throws {
        try await TestNode(extraYAML: "http: {max_body: 1 KiB, max_items: 3, max_json_depth: 4}").run { client, parts in
            let unsupported = try await client.call(.post, "/v1/indicators", as: "ingest", contentType: "application/xml", body: "<x/>")
            #expect(unsupported.status == .unsupportedMediaType)
            #expect(unsupported["type"] as? String == "urn:rampart:problem:unsupported_media_type")
            #expect(unsupported["status"] as? Int == 415)
            #expect(unsupported["instance"] as? String == "/v1/indicators")

            let missing = try await client.call(.post, "/v1/indicators", as: "ingest", body: "1.1.1.1")
            #expect(missing.status == .unsupportedMediaType)

            let large = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "text/plain", body: String(repeating: "8.8.8.8\n", count: 200))
            #expect(large.status == .contentTooLarge)
            #expect(large.problemCode == "body_too_large")

            let many = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "text/plain", body: "1.1.1.1\n1.1.1.2\n1.1.1.3\n1.1.1.4\n")
            #expect(many.status == .contentTooLarge)
            #expect(many.problemCode == "too_many_items")
            // Exactly the limit, ending in a newline, is not one too many.
            let exact = try await client.call(.post, "/v1/indicators", as: "ingest", contentType: "text/plain", body: "not-valid\n1\n2\n")
            #expect(exact.status.code == 422 && exact.problemCode != "too_many_items")

            let deep = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "application/json", body: #"[{"value":"1.1.1.1","tags":[[[["x"]]]]}]"#)
            #expect(deep.status == .badRequest)
            #expect(deep.problemCode == "invalid_body")
            #expect((deep["detail"] as? String)?.contains("nested deeper than 4") == true)

            let broken = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "application/json", body: #"[{"value":"1.1.1.1"},"#)
            #expect(broken.status == .badRequest)

            let parameter = try await client.call(.post, "/v1/indicators?confidence=300", as: "ingest", contentType: "text/plain", body: "1.1.1.1")
            #expect(parameter.status == .badRequest)
            #expect(parameter.problemCode == "invalid_parameter")

            let empty = try await client.call(.post, "/v1/indicators", as: "ingest", contentType: "text/plain", body: "# nothing\n")
            #expect(empty.status == .badRequest)
            #expect(empty.problemCode == "empty_body")

            // None of these stored anything.
            #expect(try await parts.store.itemCount() == 0)
        }
    }

    @Test func authenticationAndRoles() async throws {
        try await TestNode().run { client, _ in
            let none = try await client.call(.post, "/v1/indicators", as: nil, contentType: "text/plain", body: "1.1.1.1")
            #expect(none.status == .unauthorized)
            #expect(none.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            #expect(none.headers[.contentType] == "application/problem+json")

            let wrong = try await client.call(.post, "/v1/indicators", as: "tok_nope", contentType: "text/plain", body: "1.1.1.1")
            #expect(wrong.status == .unauthorized)

            let reader = try await client.call(.post, "/v1/indicators", as: "read", contentType: "text/plain", body: "1.1.1.1")
            #expect(reader.status == .forbidden)
            #expect((reader["detail"] as? String)?.contains("ingest") == true)

            let feeder = try await client.call(.get, "/v1/decisions", as: "ingest")
            #expect(feeder.status == .forbidden)
            let block = try await client.call(
                .post, "/v1/decisions", as: "read", contentType: "application/json", body: #"{"value":"8.8.8.8","duration":"1h"}"#)
            #expect(block.status == .forbidden)

            // Health endpoints need no token.
            #expect(try await client.call(.get, "/healthz", as: nil).status == .ok)
            let ready = try await client.call(.get, "/readyz", as: nil)
            #expect(ready.status == .ok)
            #expect(ready["status"] as? String == "ready")

            let unknown = try await client.call(.get, "/v1/nothing-here", as: "read")
            #expect(unknown.status == .notFound)
            #expect(unknown.headers[.contentType] == "application/problem+json")
        }
    }

    @Test func concurrentRequestsAreAllDurableAndAudited() async throws {
        try await TestNode().run { client, parts in
            let ids = try await withThrowingTaskGroup(of: [String].self) { group in
                for request in 0..<16 {
                    group.addTask {
                        let body = (0..<50).map { "45.\(request).\($0 / 250).\($0 % 250 + 1)" }.joined(separator: "\n")
                        let answer = try await client.call(.post, "/v1/indicators", as: "ingest", contentType: "text/plain", body: body)
                        return answer["ids"] as? [String] ?? []
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(ids.count == 800)
            #expect(Set(ids).count == 800)
            #expect(try await parts.store.itemCount() == 800)
            let report = try parts.store.verifyAudit()
            #expect(report.entries == 800)
            #expect(report.firstBroken == nil)
        }
    }
}
