import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RampartCore
import RampartStore
import Synchronization

/// `POST /.well-known/openc2`: OpenC2 commands over HTTPS (transfer specification 1.1, with its
/// message envelope, and 1.0's bare commands), carried out as a Stateless Packet Filter through the
/// same engine and safety rails as every other block. Callers authenticate with an API key that
/// has the admin role, or, where the listener requires client certificates (`tls.client_ca`),
/// with their certificate. Answers carry the OpenC2 status as their HTTP status (and 200 for an
/// `ack`'s 102, 204 with no body for `response_requested: none`).
///
/// `GET /v1/allows` (read) lists allow entries; `DELETE /v1/allows/{number}` (admin) ends one.
struct OpenC2Routes {
    let pipeline: Pipeline
    let store: Store
    let keys: [Config.APIKey]
    /// The listener requires a client certificate signed by `tls.client_ca`: having one authenticates.
    let mutualTLS: Bool
    let bodies: BodyReceiver
    let nodeID: String
    let now: @Sendable () -> Date
    let limit = RateLimit(perMinute: OpenC2Routes.rateLimit)

    /// Commands carried out per minute, at most (`query features` with `rate_limit` says so).
    static let rateLimit = 600

    func register(on router: Router<RampartRequestContext>) {
        router.post("/.well-known/openc2") { request, context in try await command(request, context) }
        router.get("/v1/allows") { request, context in
            _ = try context.require(.read)
            let all = request.uri.queryParameters["active"] == "false"
            let at = now()
            var w = JSONWriter()
            w.beginObject()
            w.key("allows")
            w.beginArray()
            for entry in try await store.allowEntries(activeOnly: !all, now: at) { entry.write(to: &w, now: at) }
            w.endArray()
            w.endObject()
            return Response.json(.ok, w)
        }
        router.delete("/v1/allows/:number") { _, context in
            let key = try context.require(.admin)
            guard let number = Int64(try context.parameters.require("number")) else { throw Problem.notFound("allow entries are numbered") }
            let at = now()
            guard let entry = try await store.write({ tx in try tx.revokeAllow(number: number, by: "api:\(key.name)", now: at) }) else {
                throw Problem.notFound("no allow entry in force numbered \(number)")
            }
            var w = JSONWriter()
            entry.write(to: &w, now: at)
            return Response.json(.ok, w)
        }
    }

    /// The media types of both transfer versions, and what each is answered with.
    enum MediaType {
        case openC2, command, json

        init?(_ header: String?) {
            let type = header?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
            switch type {
            case "application/openc2+json": self = .openC2
            case "application/openc2-cmd+json": self = .command
            case "application/json": self = .json
            default: return nil
            }
        }

        var answer: String { self == .command ? "application/openc2-rsp+json;version=1.0" : "application/openc2+json;version=1.0" }
    }

    /// A message's envelope (transfer 1.1), or none (a bare command).
    struct Envelope {
        var requestID: String?
        var from: String?
    }

    func command(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let media = MediaType(request.headers[.contentType])
        var envelope: Envelope?
        var requestID = request.headers[Self.requestIDHeader]
        func answer(_ status: Int, _ text: String? = nil, results: ((inout JSONWriter) -> Void)? = nil) -> Response {
            var w = JSONWriter()
            if let envelope {
                w.beginObject()
                w.key("headers")
                w.beginObject()
                w.field("request_id", envelope.requestID)
                w.key("created")
                w.value(now().milliseconds)
                w.field("from", nodeID)
                if let from = envelope.from { w.field("to", [from]) }
                w.endObject()
                w.key("body")
                w.beginObject()
                w.key("openc2")
                w.beginObject()
                w.key("response")
            }
            w.beginObject()
            w.field("status", status)
            w.field("status_text", text)
            if let results {
                w.key("results")
                w.beginObject()
                results(&w)
                w.endObject()
            }
            w.endObject()
            if envelope != nil {
                w.endObject()
                w.endObject()
                w.endObject()
            }
            var headers: HTTPFields = [.contentType: (media ?? .openC2).answer, .cacheControl: "no-cache"]
            if let requestID { headers[Self.requestIDHeader] = requestID }
            // The final statuses are HTTP statuses too; an ack (102) is carried by a 200.
            let http = HTTPResponse.Status(code: status == 102 ? 200 : status)
            return Response(status: http, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
        }

        let caller: String
        if let header = request.headers[.authorization] {
            guard header.hasPrefix("Bearer "), let key = AuthMiddleware.match(token: header.dropFirst(7), keys: keys) else {
                var refused = answer(401, "the bearer token is not valid")
                refused.headers[.wwwAuthenticate] = "Bearer"
                return refused
            }
            guard key.roles.contains(.admin) else { return answer(403, "the API key '\(key.name)' lacks the admin role OpenC2 commands need") }
            caller = "api:\(key.name)"
        } else if mutualTLS {
            caller = "tls:client-certificate"
        } else {
            var refused = answer(401, "OpenC2 commands need Authorization: Bearer TOKEN (an API key with the admin role) or a client certificate")
            refused.headers[.wwwAuthenticate] = "Bearer"
            return refused
        }
        guard media != nil else {
            return answer(
                400, "Content-Type must be application/openc2+json;version=1.0, application/openc2-cmd+json;version=1.0 or application/json")
        }
        let body = try await bodies.receive(request, context, upTo: 64 << 10)
        let json: JSONValue
        do { json = try JSONValue.parse(body.readableBytesView, maxDepth: 16) } catch { return answer(400, "invalid JSON: \(error.message)") }
        var commandJSON = json
        if json["headers"] != nil || json["body"] != nil {
            guard case .object(let headers)? = json["headers"], let command = json["body"]?["openc2"]?["request"] else {
                return answer(400, "the message envelope needs headers and body.openc2.request")
            }
            var found = Envelope()
            for (name, value) in headers {
                if name == "request_id", case .string(let text) = value { found.requestID = String(text.prefix(128)) }
                if name == "from", case .string(let text) = value { found.from = String(text.prefix(256)) }
            }
            found.requestID = found.requestID ?? requestID
            requestID = found.requestID
            envelope = found
            commandJSON = command
        }
        guard limit.take(now: now()) else { return answer(503, "more than \(Self.rateLimit) commands in the last minute") }
        let parsed: OpenC2.Command
        do {
            parsed = try OpenC2.parse(commandJSON, now: now())
        } catch {
            return answer(error.status, error.text)
        }
        let reply = try await carryOut(parsed, by: caller)
        switch parsed.responseRequested {
        case .none:
            var headers: HTTPFields = [:]
            if let requestID { headers[Self.requestIDHeader] = requestID }
            return Response(status: .noContent, headers: headers)
        case .ack: return answer(102, "Processing")
        case .status, .complete: return answer(reply.status, reply.text, results: reply.results)
        }
    }

    struct Reply {
        var status = 200
        var text: String?
        var results: ((inout JSONWriter) -> Void)?
    }

    private func carryOut(_ command: OpenC2.Command, by caller: String) async throws -> Reply {
        let reason = "OpenC2 \(command.commandID.map { "command \($0) " } ?? "")from \(caller)"
        switch command.action {
        case .queryFeatures(let features):
            guard !features.isEmpty else { return Reply() }
            return Reply { w in
                for feature in features {
                    w.key(feature.rawValue)
                    switch feature {
                    case .versions: w.value(.array([.string("1.0")]))
                    case .profiles: w.value(.array([.string("slpf")]))
                    case .pairs:
                        w.beginObject()
                        for (action, targets) in OpenC2.pairs { w.field(action, targets) }
                        w.endObject()
                    case .rateLimit: w.value(Self.rateLimit)
                    }
                }
            }
        case .deny(let network, let duration, let direction):
            let outcome = try await pipeline.block(
                BlockRequest(target: network, direction: direction, duration: duration, origin: nodeID, reason: reason))
            guard let decision = outcome.decision else {
                if case .refused(let refusal) = outcome { return Reply(status: 403, text: refusal.message) }
                return Reply(status: 500, text: "Rule not updated")
            }
            guard let number = try await store.decisionNumber(id: decision.id) else { return Reply(status: 500, text: "Rule not updated") }
            return Reply(results: Self.ruleNumber(number))
        case .allow(let network, let duration, _):
            let at = now()
            let entry = try await store.write { tx in
                try tx.allow(network, until: at.adding(duration), reason: reason, by: caller, now: at)
            }
            return Reply(results: Self.ruleNumber(entry.number))
        case .delete(let number):
            if let decision = try await store.decision(number: number), decision.state == .active {
                let revoked = try await pipeline.revoke(id: decision.id, value: nil, reason: reason, by: caller)
                if !revoked.isEmpty { return Reply() }
            }
            let at = now()
            if try await store.write({ tx in try tx.revokeAllow(number: number, by: caller, now: at) }) != nil { return Reply() }
            return Reply(status: 500, text: "firewall rule not removed or updated")
        }
    }

    private static func ruleNumber(_ number: Int64) -> (inout JSONWriter) -> Void {
        { w in
            w.key("slpf")
            w.beginObject()
            w.key("rule_number")
            w.value(number)
            w.endObject()
        }
    }

    static let requestIDHeader = HTTPField.Name("X-Request-ID")!
}

/// At most `perMinute` takes in any minute-long window that starts at a take (a fixed window).
final class RateLimit: Sendable {
    private let perMinute: Int
    private let window = Mutex<(start: Date, count: Int)>((.distantPast, 0))

    init(perMinute: Int) {
        self.perMinute = perMinute
    }

    func take(now: Date) -> Bool {
        window.withLock { window in
            if now.timeIntervalSince(window.start) >= 60 { window = (now, 0) }
            guard window.count < perMinute else { return false }
            window.count += 1
            return true
        }
    }
}
