import Foundation
import Yams

/// `notify: {url: "https://chat.example/hooks/soc", template: '{"text":"blocked {{value}}"}'}`:
/// POSTs a rendered JSON body to a chat or ticketing webhook, through the outbox.
public struct NotifyAction: PlaybookAction {
    public static let kind = "notify"
    public var url: String
    /// The request body: JSON, fields escaped as JSON strings.
    public var template: ActionTemplate

    public init(url: String, template: ActionTemplate) {
        self.url = url
        self.template = template
    }

    public static func parse(_ body: Node, action: Node, path: String, playbook: Playbook, peers: [String]?, reader: YAMLReader) -> NotifyAction? {
        guard let notify = reader.fields(body, allowed: ["url", "template"], what: "\(path).notify") else { return nil }
        let url = notify.required("url").flatMap { n in
            reader.word(n, "\(path).notify.url") { (text) throws(ValueError) -> String in
                guard Config.isHTTPURL(text) else {
                    throw ValueError(.invalidField, "expected an http:// or https:// URL without credentials, found '\(text.preview)'")
                }
                return text
            }
        }
        let template = notify.required("template").flatMap { n in
            reader.word(n, "\(path).notify.template") { (text) throws(ValueError) -> ActionTemplate in
                let template = try ActionTemplate(text, output: .json)
                // Field values are escaped as JSON strings; the rest must make a JSON document.
                let sample = Item(
                    id: "x", payload: .indicator(Indicator(kind: .ipv4, value: "192.0.2.1", source: "s", tags: ["t"], description: "d")),
                    via: "v", origin: "o", receivedAt: Date(timeIntervalSince1970: 0)
                )
                do {
                    _ = try JSONValue.parse(Array(template.render(sample, playbook: "p").utf8))
                } catch {
                    throw ValueError(
                        .invalidField,
                        "the template does not make a JSON document (\(error)); put fields inside JSON strings, such as '{\"text\": \"blocked {{value}}\"}'"
                    )
                }
                return template
            }
        }
        guard let url, let template else { return nil }
        return NotifyAction(url: url, template: template)
    }

    public func plan(_ item: Item, playbook: Playbook, in context: PlanContext) -> [Intent] {
        [.notify(url: url, body: template.render(item, playbook: playbook.name))]
    }

    public func explain(_ intent: Intent, item: Item, playbook: Playbook, in context: PlanContext) -> String {
        guard case .notify(let url, let body) = intent else { return "notify: \(Intent.why(intent))" }
        return "notify: \(playbook.verb("POST", simulated: "not sent")) \(body) to \(url)"
    }
}
