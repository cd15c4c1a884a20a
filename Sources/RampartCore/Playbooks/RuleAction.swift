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

/// `rule: {format: suricata, template: '...'}`: renders a detection rule from the item into
/// `state_dir/rules/FORMAT/NAME.EXT`, one file per playbook and value, replaced when the same
/// playbook renders for the same value again.
public struct RuleAction: Sendable {
    public var format: RuleFormat
    public var template: ActionTemplate

    public init(format: RuleFormat, template: ActionTemplate) {
        self.format = format
        self.template = template
    }

    /// The file name (without extension) for a playbook and a value: only `[a-z0-9._-]`, so no
    /// value can name a path outside the rules directory.
    public static func fileName(playbook: String, value: String) -> String {
        let safe = (playbook + "-" + value).lowercased().map { c -> Character in
            c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "-" || c == "_") ? c : "_"
        }
        var name = String(safe.prefix(180))
        while name.hasPrefix(".") { name.removeFirst() }
        return name.isEmpty ? "rule" : name
    }
}
