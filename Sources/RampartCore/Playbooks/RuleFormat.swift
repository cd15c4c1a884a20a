import Foundation

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

    /// Where a rule of this format named `name` is installed, under the state directory.
    public func relativePath(name: String) -> String { "rules/\(rawValue)/\(name).\(fileExtension)" }
}
