import AsyncHTTPClient
import CompressNIO
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import RampartCore
import RampartTesting
import Testing

@testable import RampartServer

/// The CrowdSec bouncer API on its own listener, as bouncers use it (the real bouncers run
/// against it in the command-line tests).
@Suite struct BouncerAPITests {
    static let keys = ["edge": "rmpbedge0001", "held": "rmpbheld0002", "narrow": "rmpbnarrow03"]

    let node: TestNode
    let port: Int

    init() throws {
        port = try freePort()
        func hash(_ key: String) -> String { SHA256.hash(data: Array(key.utf8)).map { String(format: "%02x", $0) }.joined() }
        node = try TestNode(
            extraYAML: """
                crowdsec: {listen: 127.0.0.1:\(port)}
                bouncers:
                  - {name: edge, key_sha256: "\(hash(Self.keys["edge"]!))"}
                  - {name: held, key_sha256: "\(hash(Self.keys["held"]!))", hold: 5s}
                  - {name: narrow, key_sha256: "\(hash(Self.keys["narrow"]!))", scopes: [ip], origins: [elsewhere]}
                """)
    }

    struct Reply {
        let status: Int
        let headers: HTTPHeaders
        let body: String
        var json: Any? { try? JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed]) }
        var stream: (new: [[String: Any]], deleted: [[String: Any]]) {
            let object = json as? [String: Any]
            return (object?["new"] as? [[String: Any]] ?? [], object?["deleted"] as? [[String: Any]] ?? [])
        }
    }

    func get(
        _ path: String, key: String? = "edge", method: HTTPMethod = .GET, body: ByteBuffer? = nil, headers: [(String, String)] = []
    ) async throws
        -> Reply
    {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        if let key { request.headers.add(name: "X-Api-Key", value: Self.keys[key] ?? key) }
        request.headers.add(name: "User-Agent", value: "crowdsec-firewall-bouncer/v0.0.25-test")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(body) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: String(buffer: bytes))
    }

    func values(_ decisions: [[String: Any]]) -> [String] { decisions.compactMap { $0["value"] as? String } }

    @Test func answersAsCrowdSecsAPIDoes() async throws {
        try await node.run { client, _ in
            for key in [nil, "wrong"] as [String?] {
                let refused = try await get("/v1/decisions", key: key)
                #expect(refused.status == 403)
                #expect(refused.body == #"{"message":"access forbidden"}"#)
            }
            let probe = try await get("/v1/decisions", method: .HEAD)
            #expect(probe.status == 200)
            #expect(try await get("/v1/decisions/stream", method: .HEAD).status == 200)
            #expect(try await get("/v1/decisions/stream", key: "wrong", method: .HEAD).status == 403)
            #expect(try await get("/health", key: nil).status == 200)
            let none = try await get("/v1/decisions?ip=77.90.185.9")
            #expect(none.status == 200)
            #expect(none.body == "null")
            let unknown = try await get("/v1/nothing")
            #expect(unknown.status == 404)
            #expect((unknown.json as? [String: Any])?["message"] != nil)
            #expect(try await get("/v1/decisions?ip=not-an-ip").status == 400)
            // The main API's routes are not on this listener.
            #expect(try await get("/v1/items").status == 404)

            _ = try await client.call(.post, "/v1/decisions", contentType: "application/json", body: #"{"value":"77.90.185.20","duration":"4h"}"#)
            _ = try await client.call(.post, "/v1/decisions", contentType: "application/json", body: #"{"value":"45.9.0.0/20","duration":"1h"}"#)
            let first = try await get("/v1/decisions/stream?additional_pull=false&community_pull=false&startup=true")
            #expect(first.headers["Content-Type"].first == "application/json")
            #expect(values(first.stream.new) == ["77.90.185.20", "45.9.0.0/20"])
            let decision = try #require(first.stream.new.first)
            #expect(decision["type"] as? String == "ban")
            #expect(decision["scope"] as? String == "Ip")
            #expect(decision["origin"] as? String == "test-1")
            #expect(decision["scenario"] as? String == "manual")
            #expect(decision["id"] as? Int == 1)
            let duration = try #require(decision["duration"] as? String)
            #expect(duration == "4h0m0s" || duration.hasPrefix("3h59m"))
            #expect(first.stream.new.last?["scope"] as? String == "Range")

            let contained = try await get("/v1/decisions?ip=45.9.3.3")
            #expect(values(contained.json as? [[String: Any]] ?? []) == ["45.9.0.0/20"])
            let inside = try await get("/v1/decisions?range=45.0.0.0/8&contains=false")
            #expect(values(inside.json as? [[String: Any]] ?? []) == ["45.9.0.0/20"])
            #expect(try await get("/v1/decisions?range=45.9.0.0/24").body.contains("45.9.0.0/20"))
            #expect(try await get("/v1/decisions?ip=45.9.3.3&type=captcha").body == "null")
            #expect(try await get("/v1/decisions?value=77.90.185.20").body.contains("77.90.185.20"))
            #expect(values(try await get("/v1/decisions").json as? [[String: Any]] ?? []) == ["77.90.185.20", "45.9.0.0/20"])
            // Scopes (default ip,range; %2C-encoded as Go clients send them) and origins.
            #expect(values(try await get("/v1/decisions/stream?startup=true&scopes=ip").stream.new) == ["77.90.185.20"])
            #expect(values(try await get("/v1/decisions/stream?startup=true&scopes=ip%2Crange").stream.new).count == 2)
            #expect(try await get("/v1/decisions/stream?startup=true&origins=crowdsec%2Ccscli").stream.new.isEmpty)
            #expect(try await get("/v1/decisions/stream?startup=true&scenarios_not_containing=manual").stream.new.isEmpty)
            #expect(values(try await get("/v1/decisions/stream?startup=true&scenarios_containing=MAN").stream.new).count == 2)
            // A key's own filters hold whatever it asks.
            #expect(try await get("/v1/decisions/stream?startup=true", key: "narrow").stream.new.isEmpty)
            #expect(try await get("/v1/decisions?ip=77.90.185.20", key: "narrow").body == "null")
        }
    }

    /// A later pull has what changed since that consumer's last complete pull: new decisions, an
    /// extension as deleted and new (bouncers never refresh an element's timeout otherwise), a
    /// revocation as deleted; each key keeps its own place.
    @Test func laterPullsHaveWhatChanged() async throws {
        try await node.run { client, _ in
            func block(_ value: String, _ duration: String) async throws {
                let answer = try await client.call(
                    .post, "/v1/decisions", contentType: "application/json", body: #"{"value":"\#(value)","duration":"\#(duration)"}"#)
                #expect(answer.status == .created || answer.status == .ok)
            }
            #expect(try await get("/v1/decisions/stream?startup=true").stream.new.isEmpty)
            try await block("77.90.185.20", "1h")
            try await block("2a01:4f8::7", "1h")
            let added = try await get("/v1/decisions/stream?")
            #expect(values(added.stream.new) == ["77.90.185.20", "2a01:4f8::7"])
            #expect(added.stream.deleted.isEmpty)
            #expect(try await get("/v1/decisions/stream").body == #"{"new":[],"deleted":[]}"#)

            try await block("77.90.185.20", "48h")
            let extended = try await get("/v1/decisions/stream")
            #expect(values(extended.stream.new) == ["77.90.185.20"])
            #expect(values(extended.stream.deleted) == ["77.90.185.20"])
            #expect((extended.stream.new.first?["duration"] as? String)?.hasPrefix("4") == true)

            _ = try await client.call(.delete, "/v1/decisions?value=2a01:4f8::7")
            let revoked = try await get("/v1/decisions/stream?startup=false")
            #expect(revoked.stream.new.isEmpty)
            #expect(values(revoked.stream.deleted) == ["2a01:4f8::7"])
            #expect(revoked.stream.deleted.first?["duration"] as? String == "0s")

            // Another key starts from the beginning: a first pull, even without startup=true.
            let other = try await get("/v1/decisions/stream", key: "held")
            #expect(values(other.stream.new) == ["77.90.185.20"])
            #expect(values(other.stream.deleted) == ["2a01:4f8::7"])
            // A HEAD moves nothing.
            try await block("77.90.185.21", "1h")
            _ = try await get("/v1/decisions/stream", method: .HEAD)
            #expect(values(try await get("/v1/decisions/stream").stream.new) == ["77.90.185.21"])

            let listed = try await client.call(.get, "/v1/bouncers", as: "read")
            let bouncers = try #require(listed["bouncers"] as? [[String: Any]])
            #expect(bouncers.map { $0["name"] as? String } == ["edge", "held", "narrow"])
            let consumer = try #require((bouncers[0]["consumers"] as? [[String: Any]])?.first)
            #expect(consumer["address"] as? String == "127.0.0.1")
            #expect(consumer["user_agent"] as? String == "crowdsec-firewall-bouncer/v0.0.25-test")
            #expect(consumer["decisions_delivered"] as? Int == 4)
            #expect(consumer["pulls"] as? Int == 6)
        }
    }

    /// A key with `hold` waits on a delta pull with nothing new until something changes: the
    /// bouncer hears of a decision within milliseconds, not at its next poll.
    @Test func aHeldPullAnswersAsSoonAsADecisionIsMade() async throws {
        try await node.run { client, _ in
            _ = try await get("/v1/decisions/stream?startup=true", key: "held")
            let started = ContinuousClock.now
            async let pulled = get("/v1/decisions/stream", key: "held")
            try await Task.sleep(for: .milliseconds(500))
            let blocked = ContinuousClock.now
            _ = try await client.call(.post, "/v1/decisions", contentType: "application/json", body: #"{"value":"77.90.185.30","duration":"1h"}"#)
            let answer = try await pulled
            let answered = ContinuousClock.now
            #expect(values(answer.stream.new) == ["77.90.185.30"])
            #expect(answered - started >= .milliseconds(500), "it was held")
            // Not woken, it would answer 4.5 s after the block (the key's hold is 5 s).
            #expect(answered - blocked < .seconds(3), "answered \(answered - blocked) after the block")

            let idle = ContinuousClock.now
            let empty = try await get("/v1/decisions/stream", key: "held")
            #expect(empty.body == #"{"new":[],"deleted":[]}"#)
            #expect(ContinuousClock.now - idle >= .milliseconds(4900), "held for the key's hold, 5s")
            // A key without hold answers at once.
            let quick = ContinuousClock.now
            _ = try await get("/v1/decisions/stream?startup=true")
            _ = try await get("/v1/decisions/stream")
            #expect(ContinuousClock.now - quick < .seconds(3))
        }
    }

    /// `POST /v1/usage-metrics` takes the current bouncers' reports, gzip-compressed or not (201),
    /// refuses what is not one, and `GET /v1/bouncers` shows them.
    @Test func usageMetricsAreTakenAndShown() async throws {
        try await node.run { client, _ in
            let report = """
                {"remediation_components":[{"type":"crowdsec-firewall-bouncer","version":"v0.0.34","os":{"name":"debian","version":"12"},
                "feature_flags":[],"utc_startup_timestamp":1767225600,"metrics":[{"meta":{"window_size_seconds":900,"utc_now_timestamp":1767226500},
                "items":[{"name":"dropped","value":12,"unit":"packet","labels":{"origin":"rampart","ip_type":"ipv4"}},
                {"name":"dropped","value":3,"unit":"packet","labels":{"origin":"rampart","ip_type":"ipv6"}},
                {"name":"active_decisions","value":2,"unit":"ip","labels":{"origin":"rampart"}}]}]}]}
                """
            var plain = ByteBuffer(string: report)
            let compressed = try plain.compress(with: .gzip)
            let sent = try await get(
                "/v1/usage-metrics", method: .POST, body: compressed, headers: [("Content-Encoding", "gzip"), ("Content-Type", "application/json")])
            #expect(sent.status == 201)
            #expect(try await get("/v1/usage-metrics", method: .POST, body: ByteBuffer(string: #"{"x":1}"#)).status == 422)
            #expect(try await get("/v1/usage-metrics", method: .POST, body: ByteBuffer(string: "{")).status == 400)
            #expect(
                try await get("/v1/usage-metrics", method: .POST, body: ByteBuffer(string: "plain"), headers: [("Content-Encoding", "gzip")]).status
                    == 400)
            #expect(try await get("/v1/usage-metrics", key: "wrong", method: .POST, body: ByteBuffer(string: report)).status == 403)
            let listed = try await client.call(.get, "/v1/bouncers", as: "read")
            let consumer = ((listed["bouncers"] as? [[String: Any]])?.first?["consumers"] as? [[String: Any]])?.first
            let metrics = try #require(consumer?["metrics"] as? [String: Any])
            #expect(metrics["dropped_packet"] as? Int == 15)
            #expect(metrics["active_decisions_ip"] as? Int == 2)
        }
    }

    @Test func durationsAreWrittenAsGoWritesThem() {
        #expect(GoDuration.format(seconds: 14398) == "3h59m58s")
        #expect(GoDuration.format(seconds: 3598) == "59m58s")
        #expect(GoDuration.format(seconds: 58) == "58s")
        #expect(GoDuration.format(seconds: 0) == "0s")
        #expect(GoDuration.format(seconds: -62) == "-1m2s")
        #expect(GoDuration.format(seconds: 172_800) == "48h0m0s")
    }
}

/// The bell long polls wait on: it rings once a commit that changed the firewall is on disk.
@Suite struct DecisionBellTests {
    @Test func ringsOnceTheChangingCommitIsDurable() async throws {
        let bell = DecisionBell()
        let before = bell.rings
        bell.committed(2, firewall: [])
        bell.durable(through: 1)
        #expect(bell.rings == before, "an earlier commit reaching the disk is not the change")
        async let waited: Void = bell.wait(after: before, timeout: .seconds(30))
        try await Task.sleep(for: .milliseconds(50))
        let rung = ContinuousClock.now
        bell.durable(through: 2)
        await waited
        #expect(ContinuousClock.now - rung < .seconds(25), "rung, not timed out")
        #expect(bell.rings == before + 1)
        bell.durable(through: 3)
        #expect(bell.rings == before + 1, "nothing pending: no ring")
    }

    @Test func aWaitAfterARingItDidNotSeeReturnsAtOnceAndOthersTimeOut() async {
        let bell = DecisionBell()
        let seen = bell.rings
        bell.ringNow()
        let start = ContinuousClock.now
        await bell.wait(after: seen, timeout: .seconds(30))
        #expect(ContinuousClock.now - start < .seconds(25), "returned, not timed out")
        await bell.wait(after: bell.rings, timeout: .milliseconds(100))
        #expect(ContinuousClock.now - start >= .milliseconds(100))
    }
}
