import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import RampartCore
import RampartServer
import RampartTesting
import Testing

/// `POST /.well-known/openc2` as OpenC2 producers use it (otupy runs against it in the
/// command-line tests): both transfer versions, the envelope's request id, and SLPF's actions
/// through the engine and its safety rails.
@Suite struct OpenC2APITests {
    static let v11 = "application/openc2+json;version=1.0"
    static let v10 = "application/openc2-cmd+json;version=1.0"

    struct Reply {
        let status: HTTPResponse.Status
        let headers: HTTPFields
        let json: [String: Any]
        /// The OpenC2 response, inside the envelope when there is one.
        var response: [String: Any] { ((json["body"] as? [String: Any])?["openc2"] as? [String: Any])?["response"] as? [String: Any] ?? json }
        var ruleNumber: Int? { ((response["results"] as? [String: Any])?["slpf"] as? [String: Any])?["rule_number"] as? Int }
    }

    static func send(
        _ client: TestClientProtocol, _ command: String, envelope: Bool = true, contentType: String = v11, as role: String? = "admin",
        requestID: String = "d1ac0489-ed51-4345-9175-f3078f30afe5"
    ) async throws -> Reply {
        let body =
            envelope
            ? #"{"headers":{"request_id":"\#(requestID)","created":1545257700000,"from":"soar.example","to":["rampart"]},"body":{"openc2":{"request":\#(command)}}}"#
            : command
        var headers: HTTPFields = [.contentType: contentType, .accept: contentType]
        if let role { headers[.authorization] = "Bearer \(TestNode.tokens[role] ?? role)" }
        if !envelope { headers[HTTPField.Name("X-Request-ID")!] = requestID }
        return try await client.execute(uri: "/.well-known/openc2", method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
            let json = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
            return Reply(status: response.status, headers: response.headers, json: json)
        }
    }

    @Test func queryDenyDeleteThroughTheEngine() async throws {
        let node = try TestNode()
        try await node.run { client, parts in
            let features = try await Self.send(client, #"{"action":"query","target":{"features":["versions","profiles","pairs","rate_limit"]}}"#)
            #expect(features.status == .ok)
            #expect(features.headers[.contentType] == Self.v11)
            let headers = try #require(features.json["headers"] as? [String: Any])
            #expect(headers["request_id"] as? String == "d1ac0489-ed51-4345-9175-f3078f30afe5")
            #expect(headers["to"] as? [String] == ["soar.example"])
            #expect(headers["from"] as? String == "test-1")
            let results = try #require(features.response["results"] as? [String: Any])
            #expect(results["versions"] as? [String] == ["1.0"])
            #expect(results["profiles"] as? [String] == ["slpf"])
            #expect((results["pairs"] as? [String: [String]])?["deny"] == ["ipv4_net", "ipv6_net"])
            #expect(results["rate_limit"] as? Int == 600)
            let empty = try await Self.send(client, #"{"action":"query","target":{"features":[]}}"#)
            #expect(empty.response["status"] as? Int == 200)
            #expect(empty.response["results"] == nil)

            let denied = try await Self.send(
                client, #"{"action":"deny","target":{"ipv4_net":"77.90.185.20"},"args":{"duration":60000,"slpf":{"direction":"ingress"}}}"#)
            #expect(denied.status == .ok)
            let number = try #require(denied.ruleNumber)
            let decision = try #require(try await parts.store.decision(number: Int64(number)))
            #expect(decision.target.description == "77.90.185.20")
            #expect(decision.direction == .inbound)
            #expect(abs(decision.expiresAt.timeIntervalSince(decision.createdAt) - 60) < 1)
            #expect(decision.reason.contains("OpenC2") && decision.reason.contains("api:ops"))

            // The safety rails hold: a protected range is refused, and nothing is decided.
            let protected = try await Self.send(client, #"{"action":"deny","target":{"ipv4_net":"203.0.113.5"}}"#)
            #expect(protected.status == .forbidden)
            #expect((protected.response["status_text"] as? String)?.contains("never_block") == true)

            let deleted = try await Self.send(client, #"{"action":"delete","target":{"slpf:rule_number":"\#(number)"}}"#)
            #expect(deleted.status == .ok)
            #expect(try await parts.store.decision(number: Int64(number))?.state == .revoked)
            let again = try await Self.send(client, #"{"action":"delete","target":{"slpf:rule_number":\#(number)}}"#)
            #expect(again.status == .internalServerError)
            #expect(again.response["status_text"] as? String == "firewall rule not removed or updated")
        }
    }

    /// An allow entry refuses blocks that overlap it, whoever asks, until it ends; it is listed
    /// and revocable, and its rule number deletes it.
    @Test func allowRefusesBlocksUntilItEnds() async throws {
        let node = try TestNode()
        try await node.run { client, _ in
            let allowed = try await Self.send(client, #"{"action":"allow","target":{"ipv4_net":"77.90.185.0/24"},"args":{"duration":3600000}}"#)
            let number = try #require(allowed.ruleNumber)
            let refused = try await client.call(
                .post, "/v1/decisions", contentType: "application/json", body: #"{"value":"77.90.185.20","duration":"1h"}"#)
            #expect(refused.status == .unprocessableContent)
            #expect(refused.problemCode == "allowed")
            let denied = try await Self.send(client, #"{"action":"deny","target":{"ipv4_net":"77.90.0.0/16"}}"#)
            #expect(denied.status == .forbidden)
            let listed = try await client.call(.get, "/v1/allows", as: "read")
            let entries = try #require(listed["allows"] as? [[String: Any]])
            #expect(entries.map { $0["rule_number"] as? Int } == [number])
            #expect(entries.first?["value"] as? String == "77.90.185.0/24")
            #expect(try await client.call(.delete, "/v1/allows/\(number)", as: "read").status == .forbidden)
            #expect(try await client.call(.delete, "/v1/allows/\(number)").status == .ok)
            #expect(try await client.call(.delete, "/v1/allows/\(number)").status == .notFound)
            let blocked = try await client.call(
                .post, "/v1/decisions", contentType: "application/json", body: #"{"value":"77.90.185.20","duration":"1h"}"#)
            #expect(blocked.status == .created)
            let events = try await client.auditEvents().compactMap { $0["event"] as? String }
            #expect(events.contains("allow.created") && events.contains("allow.revoked"))

            let second = try await Self.send(client, #"{"action":"allow","target":{"ipv6_net":"2a01:4f8::/32"}}"#)
            let secondNumber = try #require(second.ruleNumber)
            #expect(try await Self.send(client, #"{"action":"delete","target":{"slpf:rule_number":\#(secondNumber)}}"#).status == .ok)
            #expect((try await client.call(.get, "/v1/allows", as: "read")["allows"] as? [[String: Any]])?.isEmpty == true)
        }
    }

    @Test func transferVersionsAuthenticationAndResponseKinds() async throws {
        let node = try TestNode()
        try await node.run { client, _ in
            // HTTPS 1.0: a bare command, answered with its response media type and X-Request-ID.
            let bare = try await Self.send(
                client, #"{"action":"query","target":{"features":["versions"]}}"#, envelope: false, contentType: Self.v10, requestID: "r-1")
            #expect(bare.status == .ok)
            #expect(bare.headers[.contentType] == "application/openc2-rsp+json;version=1.0")
            #expect(bare.headers[HTTPField.Name("X-Request-ID")!] == "r-1")
            #expect(bare.json["status"] as? Int == 200)
            #expect(try await Self.send(client, #"{"action":"query","target":{"features":[]}}"#, contentType: "application/json").status == .ok)
            let wrongType = try await Self.send(client, #"{"action":"query","target":{"features":[]}}"#, contentType: "text/plain")
            #expect(wrongType.status == .badRequest)

            #expect(try await Self.send(client, #"{"action":"query","target":{"features":[]}}"#, as: nil).status == .unauthorized)
            #expect(try await Self.send(client, #"{"action":"query","target":{"features":[]}}"#, as: "wrong").status == .unauthorized)
            #expect(try await Self.send(client, #"{"action":"query","target":{"features":[]}}"#, as: "read").status == .forbidden)

            let none = try await Self.send(
                client, #"{"action":"deny","target":{"ipv4_net":"77.90.185.21"},"args":{"response_requested":"none"}}"#)
            #expect(none.status == .noContent)
            let listed = try await client.call(.get, "/v1/decisions?value=77.90.185.21&active=true", as: "read")
            #expect((listed["decisions"] as? [Any])?.count == 1, "carried out, answered with nothing")
            let ack = try await Self.send(client, #"{"action":"deny","target":{"ipv4_net":"77.90.185.22"},"args":{"response_requested":"ack"}}"#)
            #expect(ack.status == .ok)
            #expect(ack.response["status"] as? Int == 102)

            let unsupported = try await Self.send(client, #"{"action":"deny","target":{"ipv4_connection":{"src_addr":"77.90.185.23"}}}"#)
            #expect(unsupported.status.code == 501)
            #expect(unsupported.response["status_text"] as? String == "Target type not supported")
            let malformed = try await Self.send(client, #"{"action":"deny","target":{"ipv4_net":"127.0.0.1/64"}}"#)
            #expect(malformed.status == .badRequest)
            #expect(try await Self.send(client, "{not json", envelope: false).status == .badRequest)
        }
    }
}
