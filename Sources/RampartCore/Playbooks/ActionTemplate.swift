import Foundation
import Mustache

/// A logic-less (Mustache) template in an action, compiled at load time. It may name only the
/// fields below (a misspelt name is a load error, not an empty string at run time), and it escapes
/// for its output: nothing for argv entries (no shell ever sees them), JSON string escaping for
/// JSON bodies.
public struct ActionTemplate: Sendable {
    public enum Output: String, Sendable {
        case text = "TEXT"
        /// Inside a JSON (or YAML double-quoted) string.
        case json = "RAMPART_JSON"
        /// Inside a Suricata or Snort rule option value.
        case ruleOption = "RAMPART_RULE_OPTION"
        /// Inside a YARA string literal.
        case yaraString = "RAMPART_YARA_STRING"
    }

    /// What a template can name. `tags` is a list: `{{#tags}}{{.}} {{/tags}}`. For a rule item,
    /// `kind` is `rule`, `value` the rule's name, `description` its title; `format` and `rule_id`
    /// are empty for indicators.
    public static let fields = [
        "id", "kind", "value", "confidence", "severity", "tlp", "source", "description", "tags", "via", "origin", "playbook", "received_at",
        "format", "rule_id",
    ]
    /// What rule templates can name besides: the rule's signature id, stable for a playbook and value.
    public static let ruleFields = fields + ["sid"]

    public let text: String
    private let template: MustacheTemplate

    public init(_ text: String, output: Output, fields allowed: [String] = ActionTemplate.fields) throws(ValueError) {
        ActionTemplate.registerContentTypes
        do {
            template = try MustacheTemplate(string: "{{% CONTENT_TYPE: \(output.rawValue)}}" + text)
        } catch {
            throw ValueError(.invalidField, "'\(text.preview)' is not a valid template: \(error)")
        }
        self.text = text
        let recorder = NameRecorder()
        _ = template.render(recorder)
        if let unknown = recorder.names.first(where: { !allowed.contains($0) }) {
            var message = "the template names '\(unknown.preview)', which is not a field; it can use \(allowed.joined(separator: ", "))"
            if let guess = YAMLReader.closest(unknown, in: allowed) { message += " (did you mean '\(guess)'?)" }
            throw ValueError(.invalidField, message)
        }
    }

    /// Whether the template uses any field (a constant needs no rendering).
    public var isConstant: Bool { !text.contains("{{") }

    public func render(_ item: Item, playbook: String, sid: Int? = nil) -> String {
        isConstant ? text : template.render(ActionTemplate.context(item, playbook: playbook, sid: sid))
    }

    static func context(_ item: Item, playbook: String, sid: Int?) -> [String: Any] {
        var context: [String: Any] = [
            "id": item.id, "via": item.via, "origin": item.origin, "playbook": playbook, "received_at": Timestamp.format(item.receivedAt),
        ]
        if let sid { context["sid"] = sid }
        switch item.payload {
        case .rule(let rule):
            context["kind"] = "rule"
            context["value"] = rule.name
            context["confidence"] = rule.confidence
            context["severity"] = rule.severity.rawValue
            context["tlp"] = rule.tlp.rawValue
            context["description"] = rule.title
            context["tags"] = rule.tags
            context["format"] = rule.format.rawValue
            context["rule_id"] = rule.ruleID
        case .indicator(let indicator):
            context["kind"] = indicator.kind.rawValue
            context["value"] = indicator.value
            context["confidence"] = indicator.confidence
            context["severity"] = indicator.severity.rawValue
            context["tlp"] = indicator.tlp.rawValue
            context["source"] = indicator.source ?? ""
            context["description"] = indicator.description ?? ""
            context["tags"] = indicator.tags
        }
        return context
    }

    private static let registerContentTypes: Void = {
        MustacheContentTypes.register(JSONStringContent(), named: Output.json.rawValue)
        MustacheContentTypes.register(BackslashContent(special: "\\\";"), named: Output.ruleOption.rawValue)
        MustacheContentTypes.register(BackslashContent(special: "\\\""), named: Output.yaraString.rawValue)
    }()

    /// Backslash-escapes the given characters; drops control characters, which no rule format
    /// allows inside a value.
    struct BackslashContent: MustacheContentType {
        let special: String

        func escapeText(_ text: String) -> String {
            var out = ""
            for scalar in text.unicodeScalars where scalar.value >= 0x20 && scalar.value != 0x7f {
                if special.unicodeScalars.contains(scalar) { out.append("\\") }
                out.unicodeScalars.append(scalar)
            }
            return out
        }
    }

    /// Escapes text for the inside of a JSON string.
    struct JSONStringContent: MustacheContentType {
        func escapeText(_ text: String) -> String {
            var w = JSONWriter()
            w.value(text)
            return String(decoding: w.bytes.dropFirst().dropLast(), as: UTF8.self)
        }
    }

    /// A rendering context that records every name the template asks for.
    final class NameRecorder: MustacheParent {
        var names: [String] = []

        func child(named name: String) -> Any? {
            names.append(name)
            return name == "tags" ? ["tag"] : "x"
        }
    }
}
