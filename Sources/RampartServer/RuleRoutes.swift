import Crypto
import Foundation
import Hummingbird
import RampartCore
import RampartStore

/// `POST /v1/rules` (one detection rule a request, checked before anything sees it),
/// `GET /v1/rules` (the installed rules) and `DELETE /v1/rules/{item}` (withdraws a rule item here
/// and at every peer that got it).
struct RuleRoutes {
    let pipeline: Pipeline
    let store: Store
    let bodies: BodyReceiver

    func register(on router: Router<RampartRequestContext>) {
        router.post("/v1/rules") { request, context in try await ingest(request, context) }
        router.get("/v1/rules") { request, context in try await list(request, context) }
        router.delete("/v1/rules/:item") { request, context in try await revoke(request, context) }
    }

    static let mediaTypes: [String: RuleFormat] = [
        "application/x-sigma+yaml": .sigma,
        "application/x-suricata-rules": .suricata,
        "application/x-snort-rules": .snort,
        "application/x-yara": .yara,
    ]
    static let parameterNames = ["format", "name", "tlp", "tags", "confidence", "severity"]

    func ingest(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let key = try context.require(.ingest)
        var format: RuleFormat?
        var name: String?
        var markings: [(String, String)] = []
        let defaults: IndicatorDefaults
        do {
            for (parameter, value) in request.uri.queryParameters.map({ (String($0.key), String($0.value)) }) {
                switch parameter {
                case "format": format = try RuleFormat(name: value)
                case "name": name = value
                case "tlp", "tags", "confidence", "severity": markings.append((parameter, value))
                default:
                    throw ValueError(
                        .unknownField, "unknown parameter '\(parameter.preview)'; expected \(RuleRoutes.parameterNames.joined(separator: ", "))")
                }
            }
            defaults = try IndicatorDefaults(parameters: markings)
        } catch {
            throw Problem.badRequest("invalid_parameter", "\(error)")
        }
        // Without ?severity=, a Sigma rule's level says.
        let severity = markings.contains { $0.0 == "severity" } ? defaults.severity : nil
        let mediaType = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        if format == nil, let mediaType { format = RuleRoutes.mediaTypes[mediaType] }
        guard let format else {
            throw Problem(
                .unsupportedMediaType, code: "unknown_rule_format",
                detail:
                    "say the rule's format: ?format=sigma|suricata|snort|yara, or Content-Type \(RuleRoutes.mediaTypes.keys.sorted().joined(separator: ", "))"
            )
        }
        let maxBytes = pipeline.limits.maxRuleBytes
        let body = try await bodies.receive(request, context, upTo: maxBytes)
        guard let content = String(validating: body.readableBytesView, as: UTF8.self) else {
            throw Problem.badRequest("invalid_body", "the rule is not UTF-8 text")
        }
        let rule: Rule
        do {
            rule = try Rule(
                format: format, content: content, name: name, tlp: defaults.tlp, confidence: defaults.confidence, severity: severity,
                tags: defaults.tags,
                maxBytes: maxBytes
            )
        } catch {
            throw Problem(
                .unprocessableContent, code: error.code == .tooLong ? "rule_too_large" : "invalid_rule",
                detail:
                    "the \(format.rawValue) rule is refused: \(error.problems.count == 1 ? error.problems[0].message : "\(error.problems.count) problems; each error says where")",
                errors: error.problems.map {
                    Problem.ItemError(positionName: "line", position: $0.line, code: error.code, message: $0.description)
                }
            )
        }
        let item = try await pipeline.ingest(rule: rule, via: "api:\(key.name)")
        var w = JSONWriter()
        w.beginObject()
        w.field("id", item.id)
        w.field("format", rule.format.rawValue)
        w.field("name", rule.name)
        w.field("rule_id", rule.ruleID)
        if let version = rule.version { w.field("version", version) }
        w.field("title", rule.title)
        w.endObject()
        return Response.json(.accepted, w)
    }

    func list(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        _ = try context.require(.read)
        let wantsContent = request.uri.queryParameters["content"].map { $0 == "true" || $0 == "1" } ?? false
        var w = JSONWriter()
        w.beginObject()
        w.key("rules")
        w.beginArray()
        for rule in try await store.installedRules() {
            w.beginObject()
            w.field("format", rule.format.rawValue)
            w.field("name", rule.name)
            w.field("rule_id", rule.ruleID)
            if let version = rule.version { w.field("version", version) }
            w.field("title", rule.title)
            w.field("path", rule.file.relativePath)
            w.field("sha256", Array(SHA256.hash(data: Array(rule.content.utf8))).hexString)
            w.field("item", rule.item)
            if let parent = rule.parent { w.field("parent", parent) }
            w.field("origin", rule.origin)
            w.field("via", rule.via)
            w.field("playbook", rule.playbook)
            w.field("installed_at", rule.installedAt)
            if wantsContent { w.field("content", rule.content) }
            w.endObject()
        }
        w.endArray()
        w.endObject()
        return Response.json(.ok, w)
    }

    func revoke(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let key = try context.require(.admin)
        let item = context.parameters.get("item") ?? ""
        let reason = try request.uri.queryParameters["reason"].map { try DecisionRoutes.revocationReason(String($0)) } ?? "revoked by api:\(key.name)"
        guard let removed = try await pipeline.revokeRule(item: item, reason: reason, by: "api:\(key.name)") else {
            throw Problem.notFound("no rule item with id \(item)")
        }
        var w = JSONWriter()
        w.beginObject()
        w.field("revoked", item)
        w.field("removed", removed.map(\.relativePath))
        w.endObject()
        return Response.json(.ok, w)
    }
}
