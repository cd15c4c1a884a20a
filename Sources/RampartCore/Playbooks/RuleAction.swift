import Foundation
import Mustache

/// Detection-rule formats a `rule` action can write.
public enum RuleFormat: String, Sendable, CaseIterable {
    case sigma, suricata, snort, yara

    /// The file extension of installed rules.
    public var fileExtension: String {
        switch self {
        case .sigma: "yml"
        case .suricata, .snort: "rules"
        case .yara: "yar"
        }
    }

    /// How a field's text is escaped inside a template of this format.
    var templateOutput: ActionTemplate.Output {
        switch self {
        case .suricata, .snort: .ruleOption
        case .yara: .yaraString
        case .sigma: .json
        }
    }
}

/// `rule:` in a playbook. On indicator playbooks, `rule: {format: suricata, template: '...'}`
/// renders a detection rule from the item: a rule item of its own (the indicator its parent),
/// written to `state_dir/rules/FORMAT/NAME.EXT`, one file per playbook and value, replaced when the
/// same playbook renders for the same value again. On rule playbooks, `rule: {}` installs the
/// rule item itself there, replacing an older version of the same rule.
public enum RuleAction: Sendable {
    case render(format: RuleFormat, template: ActionTemplate)
    case install

    /// The file name (without extension) of a rule rendered by a playbook for a value.
    public static func fileName(playbook: String, value: String) -> String {
        Rule.fileName(playbook + "-" + value)
    }
}

extension RuleFormat {
    /// Where a rule of this format named `name` is installed, under the state directory.
    public func relativePath(name: String) -> String { "rules/\(rawValue)/\(name).\(fileExtension)" }
}
