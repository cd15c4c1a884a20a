import Foundation
import Hummingbird
import RampartCore
import RampartStore

/// `GET/POST/DELETE /v1/decisions`: list, manual blocks, revocations.
struct DecisionRoutes {
    let store: Store
    let pipeline: Pipeline
    let bodies: BodyReceiver
    let nodeID: String
    let now: @Sendable () -> Date
    static let maxDuration: Duration = .seconds(366 * 86_400)

    func register(on router: Router<RampartRequestContext>) {
        router.get("/v1/decisions") { request, context in try await list(request, context) }
        router.get("/v1/decisions/:id") { request, context in try await show(request, context) }
        router.post("/v1/decisions") { request, context in try await add(request, context) }
        router.delete("/v1/decisions/:id") { request, context in try await revoke(request, context) }
        router.delete("/v1/decisions") { request, context in try await revoke(request, context) }
    }

    func list(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        _ = try context.require(.read)
        var filter = Store.DecisionFilter()
        for (name, value) in request.uri.queryParameters {
            let value = String(value)
            switch name {
            case "value":
                do {
                    filter.containing = try IPAddress(parsing: value)
                } catch {
                    throw Problem.badRequest("invalid_parameter", "value must be an IP address: \(error.message)")
                }
            case "playbook": filter.playbook = value
            case "origin": filter.origin = value
            case "active":
                guard value == "true" || value == "false" else { throw Problem.badRequest("invalid_parameter", "active must be true or false") }
                filter.active = value == "true"
            case "limit":
                guard let limit = Int(value), (1...1000).contains(limit) else {
                    throw Problem.badRequest("invalid_parameter", "limit must be a number from 1 to 1000")
                }
                filter.limit = limit
            case "cursor": filter.after = value
            default:
                throw Problem.badRequest(
                    "invalid_parameter", "unknown parameter '\(name)'; expected value, playbook, origin, active, limit or cursor")
            }
        }
        let at = now()
        let decisions = try await store.decisions(filter, now: at)
        var w = JSONWriter(capacity: 256 * decisions.count + 64)
        w.beginObject()
        w.key("decisions")
        w.beginArray()
        for decision in decisions { decision.write(to: &w, now: at) }
        w.endArray()
        w.key("next")
        if decisions.count == filter.limit, let last = decisions.last { w.value(last.id) } else { w.null() }
        w.endObject()
        return Response.json(.ok, w)
    }

    func show(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        _ = try context.require(.read)
        let id = try context.parameters.require("id")
        guard let decision = try await store.decision(id: id) else { throw Problem.notFound("no decision with id \(id)") }
        var w = JSONWriter()
        decision.write(to: &w, now: now())
        return Response.json(.ok, w)
    }

    func add(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let key = try context.require(.admin)
        let body = try await bodies.receive(request, context, upTo: 64 << 10)
        let blockRequest: BlockRequest
        do {
            blockRequest = try DecisionRoutes.parseManualBlock(JSONValue.parse(body.readableBytesView), by: key.name, origin: nodeID)
        } catch {
            throw Problem.badRequest(error.code == .invalidJSON ? "invalid_json" : "invalid_decision", error.message)
        }
        let at = now()
        let outcome = try await pipeline.block(blockRequest)
        let status: HTTPResponse.Status
        let outcomeName: String
        switch outcome {
        case .refused(let refusal):
            throw Problem(.unprocessableContent, code: refusal.code, detail: refusal.message)
        case .created: (status, outcomeName) = (.created, "created")
        case .extended: (status, outcomeName) = (.ok, "extended")
        case .unchanged: (status, outcomeName) = (.ok, "unchanged")
        }
        let decision = outcome.decision!
        var w = JSONWriter()
        w.beginObject()
        w.field("outcome", outcomeName)
        w.key("decision")
        decision.write(to: &w, now: at)
        w.endObject()
        var response = Response.json(status, w)
        if status == .created { response.headers[.location] = "/v1/decisions/\(decision.id)" }
        return response
    }

    func revoke(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let key = try context.require(.admin)
        let id = context.parameters.get("id")
        var value: String?
        var reason = "revoked by \(key.name)"
        for (name, parameter) in request.uri.queryParameters {
            switch name {
            case "value" where id == nil:
                do {
                    value = try IPNetwork(parsing: String(parameter), allowBareAddress: true).description
                } catch {
                    throw Problem.badRequest("invalid_parameter", "value must be an IP address or CIDR: \(error.message)")
                }
            case "reason": reason = try DecisionRoutes.revocationReason(String(parameter))
            default: throw Problem.badRequest("invalid_parameter", "unknown parameter '\(name)'")
            }
        }
        guard id != nil || value != nil else {
            throw Problem.badRequest("missing_parameter", "name the decision: DELETE /v1/decisions/{id} or DELETE /v1/decisions?value=ADDRESS")
        }
        let at = now()
        let revoked = try await pipeline.revoke(id: id, value: value, reason: reason, by: "api:\(key.name)")
        guard !revoked.isEmpty else {
            throw Problem.notFound(id.map { "no active decision with id \($0)" } ?? "no active decision for \(value ?? "")")
        }
        var w = JSONWriter()
        w.beginObject()
        w.key("revoked")
        w.beginArray()
        for decision in revoked { decision.write(to: &w, now: at) }
        w.endArray()
        w.endObject()
        return Response.json(.ok, w)
    }

    /// A `reason` query parameter of a revocation, checked as peers check it.
    static func revocationReason(_ text: String) throws -> String {
        do {
            return try PeerMessage.Revocation.checkedReason(text)
        } catch {
            throw Problem.badRequest("invalid_parameter", error.message)
        }
    }

    /// `{"value": "77.90.185.20", "duration": "1h", "direction": "both", "reason": "..."}`.
    static func parseManualBlock(_ json: JSONValue, by keyName: String, origin: String) throws(ValueError) -> BlockRequest {
        guard case .object(let members) = json else { throw ValueError(.invalidField, "expected a JSON object") }
        var target: IPNetwork?
        var duration: Duration?
        var direction = Direction.both
        var reason = "manual block by \(keyName)"
        for (name, value) in members {
            guard case .string(let text) = value else { throw ValueError(.invalidField, "'\(name)' must be a string") }
            switch name {
            case "value":
                let (kind, normalised) = try IndicatorValue.normalise(text)
                guard kind.isNetwork else {
                    throw ValueError(.kindMismatch, "'\(text.preview)' is a \(kind.rawValue); only IP addresses and CIDRs can be blocked")
                }
                target = try IPNetwork(parsing: normalised, allowBareAddress: true)
            case "duration":
                let parsed = try Duration(parsing: text)
                guard parsed > .zero, parsed <= maxDuration else { throw ValueError(.invalidDuration, "duration must be from 1s to 366d") }
                duration = parsed
            case "direction": direction = try Direction(name: text)
            case "reason": reason = try Indicator.checkedText(text, field: "reason", max: 1024)
            default: throw ValueError(.unknownField, "unknown field '\(name.preview)'; expected value, duration, direction, reason")
            }
        }
        guard let target else { throw ValueError(.missingField, "missing field 'value'") }
        guard let duration else { throw ValueError(.missingField, "missing field 'duration' (such as \"1h\")") }
        return BlockRequest(target: target, direction: direction, duration: duration, origin: origin, reason: reason)
    }
}
