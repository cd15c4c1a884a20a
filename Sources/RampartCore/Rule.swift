import Foundation

/// A detection rule as an item carries it: one Sigma, Suricata, Snort or YARA rule, checked by
/// `RuleSyntax` whenever one is made (posted, rendered, received, read back), so a rule that
/// exists has a valid content and the identity, version and title read from it.
public struct Rule: Sendable, Equatable {
    public static let defaultMaxBytes = 256 * 1024

    public let format: RuleFormat
    /// The installed file's name without its extension: `[A-Za-z0-9._-]`, no leading dot.
    public let name: String
    public let content: String
    public var tlp: TLP
    public var confidence: Int
    public var severity: Severity
    public var tags: [String]
    /// The item the rule was rendered from, when a playbook rendered it.
    public var parent: String?
    /// Read from the content: Sigma's `id` (else the name), `sid:N` (or `gid:N:sid:N`) for
    /// Suricata and Snort, YARA's rule name. A newer rule with the same id replaces an older one.
    public let ruleID: String
    /// Sigma's `modified` (else `date`), Suricata's and Snort's `rev`; nil for YARA.
    public let version: String?
    /// Sigma's `title`, the `msg` of Suricata and Snort, YARA's rule name.
    public let title: String

    /// Checks the content and makes the rule. `severity` nil: from Sigma's `level`, else medium.
    public init(
        format: RuleFormat, content: String, name: String? = nil, tlp: TLP = .amber, confidence: Int = 50, severity: Severity? = nil,
        tags: [String] = [], parent: String? = nil, maxBytes: Int = Rule.defaultMaxBytes
    ) throws(RuleError) {
        guard content.utf8.count <= maxBytes else {
            throw RuleError(code: .tooLong, [.init(0, 0, "the rule is \(content.utf8.count) bytes; at most \(maxBytes) are accepted")])
        }
        let facts = try RuleSyntax.check(format, content, maxBytes: maxBytes)
        if let name {
            guard Rule.isName(name) else {
                throw RuleError([.init(0, 0, "name '\(name.preview)' must be 1-128 letters, digits, '.', '-' or '_', not starting with '.'")])
            }
            self.name = name
        } else {
            self.name = Rule.fileName(facts.defaultName)
        }
        self.format = format
        self.content = content
        self.tlp = tlp
        self.confidence = confidence
        self.severity = severity ?? facts.level ?? .medium
        self.tags = tags
        self.parent = parent
        ruleID = facts.id ?? self.name
        version = facts.version
        title = facts.title
    }

    public static func isName(_ name: String) -> Bool {
        (1...128).contains(name.utf8.count) && !name.hasPrefix(".")
            && name.utf8.allSatisfy { $0.isASCIILetterOrDigit || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
    }

    /// A file name made of any text: lower-case, other characters as `_`, at most 128 bytes, so
    /// that no text can name a path outside the rules directory.
    public static func fileName(_ text: String) -> String {
        var name = String(
            text.lowercased().map { c -> Character in
                c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "-" || c == "_") ? c : "_"
            }.prefix(128)
        )
        while name.hasPrefix(".") { name.removeFirst() }
        return name.isEmpty ? "rule" : name
    }

    /// The path of the installed file under the state directory.
    public var relativePath: String { format.relativePath(name: name) }

    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.field("format", format.rawValue)
        w.field("name", name)
        w.field("content", content)
        w.field("tlp", tlp.rawValue)
        w.field("confidence", confidence)
        w.field("severity", severity.rawValue)
        if !tags.isEmpty { w.field("tags", tags) }
        if let parent { w.field("parent", parent) }
        w.endObject()
    }

    public static let fieldNames = ["format", "name", "content", "tlp", "confidence", "severity", "tags", "parent"]

    /// Reads a rule from an item's JSON (a peer's or the store's), checking it like a posted one.
    public init(json: JSONValue, maxBytes: Int = Rule.defaultMaxBytes) throws(ValueError) {
        guard case .object(let members) = json else { throw ValueError(.invalidField, "'rule' must be an object") }
        for (key, _) in members where !Rule.fieldNames.contains(key) {
            throw ValueError(.unknownField, "unknown field '\(key.preview)' in a rule; expected \(Rule.fieldNames.joined(separator: ", "))")
        }
        func text(_ key: String) throws(ValueError) -> String? {
            guard let value = json[key] else { return nil }
            return try Indicator.string(value, field: key)
        }
        guard let formatName = try text("format") else { throw ValueError(.missingField, "a rule needs 'format'") }
        let format = try RuleFormat(name: formatName)
        guard let content = try text("content") else { throw ValueError(.missingField, "a rule needs 'content'") }
        let tlp = try text("tlp").map { (name) throws(ValueError) in try TLP(name: name) } ?? .amber
        let confidence = try json["confidence"].map { (value) throws(ValueError) in try Indicator.confidence(value) } ?? 50
        let severity = try text("severity").map { (name) throws(ValueError) in try Severity(name: name) }
        var tags: [String] = []
        if let value = json["tags"] {
            guard case .array(let list) = value else { throw ValueError(.invalidField, "'tags' must be an array of strings") }
            tags = try Indicator.tags(list)
        }
        let parent = try text("parent")
        if let parent, !PeerMessage.isItemID(parent) { throw ValueError(.invalidField, "'parent' must be an item id") }
        let name = try text("name")
        do throws(RuleError) {
            try self.init(
                format: format, content: content, name: name, tlp: tlp, confidence: confidence, severity: severity, tags: tags, parent: parent,
                maxBytes: maxBytes
            )
        } catch {
            throw error.valueError
        }
    }
}

extension RuleFormat {
    /// The format a rule file's extension says: `.yml`/`.yaml`, `.rules` (Suricata), `.yar`/`.yara`.
    public init?(fileExtension: String) {
        switch fileExtension.lowercased() {
        case "yml", "yaml": self = .sigma
        case "rules": self = .suricata
        case "yar", "yara": self = .yara
        default: return nil
        }
    }

    public init(name: String) throws(ValueError) {
        guard let format = RuleFormat(rawValue: name.lowercased()) else {
            throw ValueError(.invalidField, "unknown rule format '\(name.preview)'; expected sigma, suricata, snort or yara")
        }
        self = format
    }
}

/// Why a rule's content was refused: every problem found, each with its line and column in the
/// content (1-based; 0 when it is about the rule as a whole).
public struct RuleError: Error, Sendable, CustomStringConvertible {
    public struct Problem: Error, Sendable, Equatable {
        public var line: Int
        public var column: Int
        public var message: String

        init(_ line: Int, _ column: Int, _ message: String) {
            self.line = line
            self.column = column
            self.message = message
        }

        public var description: String { line > 0 ? "\(line):\(column): \(message)" : message }
    }

    public var code: ValueError.Code
    public var problems: [Problem]

    init(code: ValueError.Code = .invalidRule, _ problems: [Problem]) {
        self.code = code
        self.problems = problems.sorted { ($0.line, $0.column) < ($1.line, $1.column) }
    }

    public var description: String { problems.map(\.description).joined(separator: "; ") }

    /// One error for item refusals and audit entries: the problems joined.
    public var valueError: ValueError { ValueError(code, description) }
}

extension ValueError.Code {
    public static let invalidRule = ErrorCode("invalid_rule")
}

extension UInt8 {
    var isASCIILetterOrDigit: Bool {
        (self >= 0x30 && self <= 0x39) || (self >= 0x41 && self <= 0x5a) || (self >= 0x61 && self <= 0x7a)
    }
}
