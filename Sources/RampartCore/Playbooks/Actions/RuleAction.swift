import Foundation
import Yams

/// `rule:` in a playbook. On indicator playbooks, `rule: {format: suricata, template: '...'}`
/// renders a detection rule from the item: a rule item of its own (the indicator its parent),
/// written to `state_dir/rules/FORMAT/NAME.EXT`, one file per playbook and value, replaced when the
/// same playbook renders for the same value again. On rule playbooks, `rule: {}` installs the
/// rule item itself there, replacing an older version of the same rule.
public enum RuleAction: PlaybookAction {
    public static let kind = "rule"

    case render(format: RuleFormat, template: ActionTemplate)
    case install

    /// The file name (without extension) of a rule rendered by a playbook for a value.
    public static func fileName(playbook: String, value: String) -> String {
        Rule.fileName(playbook + "-" + value)
    }

    public static func parse(_ body: Node, action: Node, path: String, playbook: Playbook, peers: [String]?, reader: YAMLReader) -> RuleAction? {
        guard playbook.on == .indicator else {
            // On rules, it installs the rule as received: `rule: {}`.
            guard case .mapping(let keys) = body, keys.count == 0 else {
                reader.error(body, "on: rule, \(path).rule installs the rule as received and takes no keys: write rule: {}")
                return nil
            }
            return .install
        }
        guard let rule = reader.fields(body, allowed: ["format", "template"], what: "\(path).rule") else { return nil }
        let format = rule.required("format").flatMap { n in
            reader.word(n, "\(path).rule.format") { (text) throws(ValueError) in try PlaybookLoader.choice(text, RuleFormat.self) }
        }
        guard let body = rule.required("template"), let format else { return nil }
        let template = reader.word(body, "\(path).rule.template") { (text) throws(ValueError) in
            try ActionTemplate(text, output: format.templateOutput, fields: ActionTemplate.ruleFields)
        }
        return template.map { .render(format: format, template: $0) }
    }

    public func plan(_ item: Item, playbook: Playbook, in context: PlanContext) -> [Intent] {
        switch self {
        case .render(let format, let template):
            let name = RuleAction.fileName(playbook: playbook.name, value: item.indicator?.value ?? item.id)
            return [.renderRule(RuleRendering(format: format, template: template, item: item, playbook: playbook.name, name: name))]
        case .install:
            guard let rule = item.rule else { return [.nothing("nothing to install in \(item.label)")] }
            return [.installRule(path: rule.relativePath)]
        }
    }

    public func explain(_ intent: Intent, item: Item, playbook: Playbook, in context: PlanContext) -> String {
        switch intent {
        case .renderRule(let rendering):
            let file = rendering.format.relativePath(name: rendering.name)
            return
                "rule: \(playbook.verb("write", simulated: "not written")) \(file), as a rule item of its own: \(rendering.content(sid: 1_000_000))"
        case .installRule(let path):
            let rule = item.rule
            let version = rule?.version.map { ", version \($0)" } ?? ""
            return
                "rule: \(playbook.verb("install", simulated: "not installed")) \(path) (\(rule?.format.rawValue ?? "") rule \(rule?.ruleID ?? "")\(version))"
        default:
            return "rule: \(Intent.why(intent))"
        }
    }
}
