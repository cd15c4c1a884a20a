import Foundation
import Mustache

/// A logic-less (Mustache) template in an action, compiled at load time. It may name only the
/// fields below (a misspelt name is a load error, not an empty string at run time), and it escapes
/// for its output: nothing for argv entries (no shell ever sees them), JSON string escaping for
/// JSON bodies.
public struct ActionTemplate: Sendable {
    public enum Output: String, Sendable {
        case text = "TEXT"
        case json = "RAMPART_JSON"
    }

    /// What a template can name. `tags` is a list: `{{#tags}}{{.}} {{/tags}}`.
    public static let fields = ["id", "kind", "value", "confidence", "severity", "tlp", "source", "description", "tags", "via", "origin", "playbook", "received_at"]

    public let text: String
    private let template: MustacheTemplate

    public init(_ text: String, output: Output) throws(ValueError) {
        ActionTemplate.registerContentTypes
        do {
            template = try MustacheTemplate(string: "{{% CONTENT_TYPE: \(output.rawValue)}}" + text)
        } catch {
            throw ValueError(.invalidField, "'\(text.preview)' is not a valid template: \(error)")
        }
        self.text = text
        let recorder = NameRecorder()
        _ = template.render(recorder)
        if let unknown = recorder.names.first(where: { !ActionTemplate.fields.contains($0) }) {
            var message = "the template names '\(unknown.preview)', which is not a field; it can use \(ActionTemplate.fields.joined(separator: ", "))"
            if let guess = YAMLReader.closest(unknown, in: ActionTemplate.fields) { message += " (did you mean '\(guess)'?)" }
            throw ValueError(.invalidField, message)
        }
    }

    /// Whether the template uses any field (a constant needs no rendering).
    public var isConstant: Bool { !text.contains("{{") }

    public func render(_ item: Item, playbook: String) -> String {
        isConstant ? text : template.render(ActionTemplate.context(item, playbook: playbook))
    }

    static func context(_ item: Item, playbook: String) -> [String: Any] {
        var context: [String: Any] = [
            "id": item.id, "via": item.via, "origin": item.origin, "playbook": playbook, "received_at": Timestamp.format(item.receivedAt),
        ]
        if let indicator = item.indicator {
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
    }()

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
