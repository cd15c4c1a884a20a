import Foundation
import Yams

/// Checks a detection rule's text before anything else sees it, and reads its identity from it.
/// The checks are structural (what an engine needs to load the rule, and what a mistake or a
/// hostile peer most likely gets wrong), reported all at once with line and column.
enum RuleSyntax {
    /// What a valid rule says about itself.
    struct Facts: Sendable, Equatable {
        var id: String?
        var version: String?
        var title: String
        /// The installed file's name when none is given (made safe by `Rule.fileName`).
        var defaultName: String
        /// Sigma's level, as a severity.
        var level: Severity?
    }

    static func check(_ format: RuleFormat, _ content: String, maxBytes: Int = Rule.defaultMaxBytes) throws(RuleError) -> Facts {
        if let bad = content.unicodeScalars.firstIndex(where: { ($0.value < 0x20 && !"\n\r\t".unicodeScalars.contains($0)) || $0.value == 0x7f }) {
            let (line, column) = position(of: bad, in: content)
            throw RuleError([
                .init(line, column, "control character U+\(String(content.unicodeScalars[bad].value, radix: 16, uppercase: true)) in the rule")
            ])
        }
        switch format {
        case .sigma: return try sigma(content, maxBytes: maxBytes)
        case .suricata, .snort: return try signature(content, format: format)
        case .yara: return try yara(content)
        }
    }

    static func position(of index: String.UnicodeScalarView.Index, in text: String) -> (Int, Int) {
        var (line, column) = (1, 1)
        for scalar in text.unicodeScalars[..<index] {
            if scalar == "\n" { (line, column) = (line + 1, 1) } else { column += 1 }
        }
        return (line, column)
    }

    // MARK: Sigma

    static let sigmaLevels: [String: Severity] = ["informational": .low, "low": .low, "medium": .medium, "high": .high, "critical": .critical]
    static let sigmaStatuses = ["stable", "test", "experimental", "deprecated", "unsupported"]

    /// One YAML document (read with the playbooks' safe loader: no aliases, bounded depth) with a
    /// `title`, a `logsource` naming a category, product or service, and a `detection` whose
    /// `condition` names only its search identifiers; `level`, `status`, `id`, `date`, `modified`
    /// and `tags` must be what the Sigma specification allows when present.
    static func sigma(_ content: String, maxBytes: Int) throws(RuleError) -> Facts {
        var limits = YAMLSource.Limits()
        limits.maxBytes = maxBytes
        let root: Node
        do {
            root = try YAMLSource.parse(content, file: "rule", limits: limits)
        } catch {
            throw RuleError(error.items.map { .init($0.line, $0.column, $0.message) })
        }
        var problems: [RuleError.Problem] = []
        func problem(_ node: Node?, _ message: String) {
            problems.append(.init(node?.mark?.line ?? 0, node?.mark?.column ?? 0, message))
        }
        guard case .mapping(let top) = root else {
            throw RuleError([.init(1, 1, "a Sigma rule is a mapping of keys (title, logsource, detection, ...)")])
        }
        func scalar(_ key: String, required: Bool = false) -> (String, Node)? {
            guard let node = top[key] else {
                if required { problem(root, "a Sigma rule needs '\(key)'") }
                return nil
            }
            guard case .scalar(let s) = node, !s.string.isEmpty else {
                problem(node, "'\(key)' must be a non-empty text")
                return nil
            }
            return (s.string, node)
        }
        let title = scalar("title", required: true)
        if let (text, node) = title, text.utf8.count > 256 { problem(node, "'title' is longer than 256 bytes") }
        let id = scalar("id")
        if let (text, node) = id, UUID(uuidString: text) == nil {
            problem(node, "'id' must be a UUID, such as 2975af79-28c4-4d2f-a951-9095f229df29; found '\(text.preview)'")
        }
        var level: Severity?
        if let (text, node) = scalar("level") {
            level = sigmaLevels[text]
            if level == nil { problem(node, "'level' must be one of informational, low, medium, high, critical; found '\(text.preview)'") }
        }
        if let (text, node) = scalar("status"), !sigmaStatuses.contains(text) {
            problem(node, "'status' must be one of \(sigmaStatuses.joined(separator: ", ")); found '\(text.preview)'")
        }
        var dates: [String: String] = [:]
        for key in ["date", "modified"] {
            guard let (text, node) = scalar(key) else { continue }
            let normal = text.replacingOccurrences(of: "/", with: "-")
            if normal.utf8.count == 10, (try? Timestamp.parse(normal + "T00:00:00Z")) != nil {
                dates[key] = normal
            } else {
                problem(node, "'\(key)' must be a date such as 2024-05-10; found '\(text.preview)'")
            }
        }
        if let node = top["tags"] {
            if case .sequence(let tags) = node, tags.allSatisfy({ if case .scalar = $0 { true } else { false } }) {
            } else {
                problem(node, "'tags' must be a list of texts, such as [attack.t1071.004]")
            }
        }
        if let node = top["logsource"] {
            if case .mapping(let source) = node {
                let named = ["category", "product", "service"].filter { source[$0] != nil }
                if named.isEmpty { problem(node, "'logsource' must name a category, a product or a service") }
                for key in named {
                    if case .scalar? = source[key] {} else { problem(source[key], "'logsource.\(key)' must be a text") }
                }
            } else {
                problem(node, "'logsource' must be a mapping, such as {category: dns}")
            }
        } else {
            problem(root, "a Sigma rule needs 'logsource'")
        }
        if let node = top["detection"] {
            if case .mapping(let detection) = node {
                sigmaDetection(detection, node: node, problem: problem)
            } else {
                problem(node, "'detection' must be a mapping of search identifiers and a condition")
            }
        } else {
            problem(root, "a Sigma rule needs 'detection'")
        }
        guard problems.isEmpty, let (titleText, _) = title else { throw RuleError(problems) }
        return Facts(id: id?.0.lowercased(), version: dates["modified"] ?? dates["date"], title: titleText, defaultName: titleText, level: level)
    }

    static let conditionWords: Set<String> = ["and", "or", "not", "of", "all", "them", "1", "any", "none"]

    static func sigmaDetection(_ detection: Node.Mapping, node: Node, problem: (Node?, String) -> Void) {
        let identifiers = detection.compactMap { key, _ -> String? in
            guard case .scalar(let s) = key, s.string != "condition", s.string != "timeframe" else { return nil }
            return s.string
        }
        if identifiers.isEmpty { problem(node, "'detection' holds no search identifier (such as selection: {...}) besides its condition") }
        guard let condition = detection["condition"] else {
            problem(node, "'detection' needs a 'condition', such as 'condition: selection'")
            return
        }
        let expressions: [(String, Node)]
        switch condition {
        case .scalar(let s): expressions = [(s.string, condition)]
        case .sequence(let list):
            expressions = list.compactMap { if case .scalar(let s) = $0 { (s.string, $0) } else { nil } }
            if expressions.count != list.count || list.isEmpty { problem(condition, "'detection.condition' must be a text or a list of texts") }
        default:
            problem(condition, "'detection.condition' must be a text or a list of texts")
            return
        }
        for (expression, at) in expressions {
            // The aggregation after '|' (deprecated Sigma 1 syntax) names fields, not identifiers.
            let search = expression.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            var depth = 0
            for c in search {
                if c == "(" { depth += 1 }
                if c == ")" { depth -= 1 }
                if depth < 0 { break }
            }
            if depth != 0 { problem(at, "'detection.condition' has unbalanced parentheses: '\(expression.preview)'") }
            let words = search.split(whereSeparator: { $0 == " " || $0 == "(" || $0 == ")" || $0 == "\t" }).map(String.init)
            if words.isEmpty { problem(at, "'detection.condition' is empty") }
            for word in words where !conditionWords.contains(word.lowercased()) && Int(word) == nil {
                let known = word.hasSuffix("*") ? identifiers.contains { $0.hasPrefix(word.dropLast()) } : identifiers.contains(word)
                if !known {
                    problem(
                        at,
                        "'detection.condition' names '\(word.preview)', which is not a search identifier of detection (it has \(identifiers.sorted().joined(separator: ", ")))"
                    )
                }
            }
        }
    }

    // MARK: Suricata and Snort

    static let suricataActions: Set<String> = ["alert", "pass", "drop", "reject", "rejectsrc", "rejectdst", "rejectboth", "config"]
    static let snortActions: Set<String> = ["alert", "log", "pass", "drop", "reject", "sdrop", "block", "react", "rewrite", "activate", "dynamic"]

    /// One rule on one line (blank and `#` lines aside): an action, a header (protocol, source,
    /// ports, direction, destination, ports; Snort 3's service rules may give the protocol alone),
    /// and options in parentheses, each ending with ';', with a quoted `msg` and a numeric `sid`.
    static func signature(_ content: String, format: RuleFormat) throws(RuleError) -> Facts {
        let lines = content.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { index, raw -> (Int, Substring)? in
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            return trimmed.isEmpty || trimmed.hasPrefix("#") ? nil : (index + 1, line)
        }
        guard let (lineNumber, line) = lines.first else { throw RuleError([.init(0, 0, "no rule found (only blank or comment lines)")]) }
        guard lines.count == 1 else {
            throw RuleError([
                .init(
                    lines[1].0, 1, "one rule per request: found \(lines.count) rules, on lines \(lines.map { String($0.0) }.joined(separator: ", "))")
            ])
        }
        let name = format == .snort ? "Snort" : "Suricata"
        var problems: [RuleError.Problem] = []
        func problem(_ column: Int, _ message: String) { problems.append(.init(lineNumber, column, message)) }
        let chars = Array(line)
        guard let open = chars.firstIndex(of: "(") else {
            throw RuleError([.init(lineNumber, 1, "a \(name) rule ends with options in parentheses, such as (msg:\"...\"; sid:1000001; rev:1;)")])
        }
        let header = String(chars[..<open]).split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        let actions = format == .snort ? snortActions : suricataActions
        if let action = header.first {
            if !actions.contains(action) {
                problem(1, "unknown action '\(action.preview)'; a \(name) rule starts with one of \(actions.sorted().joined(separator: ", "))")
            }
        } else {
            problem(1, "a \(name) rule starts with an action, such as alert")
        }
        let directions: Set<String> = format == .snort ? ["->", "<>"] : ["->", "<>", "=>"]
        if header.count == 7 {
            if !directions.contains(header[4]) {
                problem(1, "the header's direction must be \(directions.sorted().joined(separator: " or ")), found '\(header[4].preview)'")
            }
            for part in header[2...] where part.filter({ $0 == "[" }).count != part.filter({ $0 == "]" }).count {
                problem(1, "unbalanced brackets in the header: '\(part.preview)'")
            }
        } else if !(format == .snort && header.count == 2) {
            problem(
                1,
                "the header must be: action protocol source port direction destination port, such as 'alert ip any any -> any any'; found \(header.count) words"
            )
        }
        // Options: name or name:value, each ending with ';', values possibly quoted ("\" and \; escaped).
        var options: [(name: String, value: String, column: Int)] = []
        var index = open + 1
        var closed = false
        while index < chars.count {
            while index < chars.count, chars[index] == " " || chars[index] == "\t" { index += 1 }
            guard index < chars.count else { break }
            if chars[index] == ")" {
                closed = true
                if let extra = chars[(index + 1)...].firstIndex(where: { $0 != " " && $0 != "\t" }) {
                    problem(extra + 1, "text after the closing parenthesis of the options")
                }
                break
            }
            let start = index
            var text = ""
            var quoteStart: Int?
            var ended = false
            while index < chars.count {
                let c = chars[index]
                if quoteStart != nil {
                    if c == "\\", index + 1 < chars.count {
                        text.append(c)
                        text.append(chars[index + 1])
                        index += 2
                        continue
                    }
                    if c == "\"" { quoteStart = nil }
                } else if c == "\"" {
                    quoteStart = index
                } else if c == ";" {
                    ended = true
                    index += 1
                    break
                } else if c == ")" && text.trimmingCharacters(in: .whitespaces).isEmpty {
                    break
                }
                text.append(c)
                index += 1
            }
            if let quoteStart {
                problem(quoteStart + 1, "unterminated quoted text (a '\"' inside a value is written \\\")")
                break
            }
            guard ended else {
                var option = text.trimmingCharacters(in: .whitespaces)
                if option.hasSuffix(")") { option.removeLast() }
                problem(start + 1, "option '\(option.preview)' does not end with ';' before the closing parenthesis")
                break
            }
            let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let optionName = parts[0].trimmingCharacters(in: .whitespaces)
            if optionName.isEmpty
                || !optionName.utf8.allSatisfy({
                    $0.isASCIILetterOrDigit || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
                })
            {
                problem(start + 1, "'\(text.preview)' is not an option (name or name:value)")
            }
            options.append((optionName, parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "", start + 1))
        }
        if !closed && problems.isEmpty { problem(chars.count, "the options are not closed with ')'") }
        func option(_ name: String) -> (value: String, column: Int)? {
            options.first { $0.name == name }.map { ($0.value, $0.column) }
        }
        var msg = ""
        if let (value, column) = option("msg") {
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                msg = String(value.dropFirst().dropLast())
            } else {
                problem(column, "'msg' must be quoted text, such as msg:\"ET MALWARE beacon\"")
            }
        } else if problems.isEmpty {
            problem(open + 1, "a \(name) rule needs a msg option")
        }
        func number(_ key: String, required: Bool) -> String? {
            guard let (value, column) = option(key) else {
                if required && problems.isEmpty { problem(open + 1, "a \(name) rule needs a \(key) option, such as \(key):1000001") }
                return nil
            }
            guard let n = UInt32(value), n > 0 else {
                problem(column, "'\(key)' must be a positive whole number, found '\(value.preview)'")
                return nil
            }
            return String(n)
        }
        let sid = number("sid", required: true)
        let rev = number("rev", required: false)
        let gid = number("gid", required: false)
        guard problems.isEmpty, let sid else { throw RuleError(problems) }
        let id = gid.map { "gid:\($0):sid:\(sid)" } ?? "sid:\(sid)"
        return Facts(id: id, version: rev, title: msg, defaultName: gid.map { "sid-\($0)-\(sid)" } ?? "sid-\(sid)", level: nil)
    }

    // MARK: YARA

    static let yaraKeywords: Set<String> = [
        "all", "and", "any", "ascii", "at", "base64", "base64wide", "condition", "contains", "endswith", "entrypoint", "false", "filesize",
        "for", "fullword", "global", "import", "icontains", "iendswith", "iequals", "in", "include", "int16", "int32", "int8", "istartswith",
        "matches", "meta", "nocase", "none", "not", "of", "or", "private", "rule", "startswith", "strings", "them", "true", "uint16", "uint32",
        "uint8", "wide", "xor", "defined",
    ]

    /// One rule: `import`/`include` lines, then `[private] [global] rule NAME [: tags] { ... }` with
    /// a `condition:` section and balanced braces, strings, comments and regular expressions.
    static func yara(_ content: String) throws(RuleError) -> Facts {
        var scanner = YARAScanner(content)
        var problems: [RuleError.Problem] = []
        var names: [String] = []
        var hasCondition = false
        var tokens: [YARAScanner.Token] = []
        do {
            while let token = try scanner.next() { tokens.append(token) }
        } catch {
            throw RuleError([error])
        }
        var i = 0
        func at(_ k: Int) -> YARAScanner.Token? { k < tokens.count ? tokens[k] : nil }
        while let token = at(i) {
            switch token.text {
            case "import", "include":
                guard at(i + 1)?.isString == true else {
                    problems.append(.init(token.line, token.column, "'\(token.text)' must be followed by a quoted name, such as import \"pe\""))
                    i += 1
                    continue
                }
                i += 2
            case "private", "global":
                i += 1
            case "rule":
                guard let name = at(i + 1), name.isIdentifier, !yaraKeywords.contains(name.text), name.text.utf8.count <= 128 else {
                    problems.append(
                        .init(token.line, token.column, "'rule' must be followed by the rule's name (letters, digits, '_', not a keyword)"))
                    throw RuleError(problems)
                }
                names.append(name.text)
                i += 2
                if at(i)?.text == ":" {
                    i += 1
                    while let tag = at(i), tag.isIdentifier { i += 1 }
                }
                guard let open = at(i), open.text == "{" else {
                    problems.append(.init(name.line, name.column, "rule \(name.text) must continue with '{' (after its tags, if any)"))
                    throw RuleError(problems)
                }
                var depth = 0
                var close: YARAScanner.Token?
                while let t = at(i) {
                    if t.text == "{" { depth += 1 }
                    if t.text == "}" {
                        depth -= 1
                        if depth == 0 {
                            close = t
                            break
                        }
                    }
                    if depth == 1, t.text == "condition", at(i + 1)?.text == ":" { hasCondition = true }
                    i += 1
                }
                guard close != nil else {
                    problems.append(.init(open.line, open.column, "the '{' of rule \(name.text) is never closed"))
                    throw RuleError(problems)
                }
                i += 1
            default:
                problems.append(.init(token.line, token.column, "expected import, include or a rule, found '\(token.text.preview)'"))
                throw RuleError(problems)
            }
        }
        guard let name = names.first else {
            throw RuleError(problems + [.init(0, 0, "no rule found; a YARA rule reads rule NAME { condition: ... }")])
        }
        if names.count > 1 { problems.append(.init(0, 0, "one rule per request: found \(names.count) rules (\(names.joined(separator: ", ")))")) }
        if !hasCondition { problems.append(.init(0, 0, "rule \(name) has no 'condition:' section")) }
        guard problems.isEmpty else { throw RuleError(problems) }
        return Facts(id: name, version: nil, title: name, defaultName: name, level: nil)
    }
}

/// Splits YARA text into the tokens the structure check needs: identifiers, punctuation, and
/// strings, hex strings and regular expressions as single tokens; comments dropped.
struct YARAScanner {
    struct Token {
        var text: String
        var line: Int
        var column: Int
        var isString = false

        var isIdentifier: Bool {
            guard let first = text.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
            return text.utf8.allSatisfy { $0.isASCIILetterOrDigit || $0 == UInt8(ascii: "_") }
        }
    }

    private let chars: [Character]
    private var index = 0
    private var line = 1
    private var column = 1
    /// The previous token, to tell a regular expression (after `=` or `matches`) from division.
    private var previous = ""

    init(_ text: String) { chars = Array(text) }

    private mutating func advance() {
        if chars[index] == "\n" { (line, column) = (line + 1, 1) } else { column += 1 }
        index += 1
    }

    mutating func next() throws(RuleError.Problem) -> Token? {
        while index < chars.count {
            let c = chars[index]
            if c.isWhitespace {
                advance()
            } else if c == "/", index + 1 < chars.count, chars[index + 1] == "/" {
                while index < chars.count, chars[index] != "\n" { advance() }
            } else if c == "/", index + 1 < chars.count, chars[index + 1] == "*" {
                let (l, col) = (line, column)
                advance()
                advance()
                while index + 1 < chars.count, !(chars[index] == "*" && chars[index + 1] == "/") { advance() }
                guard index + 1 < chars.count else { throw .init(l, col, "unterminated comment") }
                advance()
                advance()
            } else {
                break
            }
        }
        guard index < chars.count else { return nil }
        let (l, col) = (line, column)
        let c = chars[index]
        var token: Token
        if c == "\"" || (c == "/" && (previous == "=" || previous == "matches")) {
            let quote = c
            var text = String(c)
            advance()
            while true {
                guard index < chars.count, chars[index] != "\n" else {
                    throw .init(l, col, quote == "\"" ? "unterminated string" : "unterminated regular expression")
                }
                let d = chars[index]
                text.append(d)
                advance()
                if d == "\\", index < chars.count {
                    text.append(chars[index])
                    advance()
                } else if d == quote {
                    break
                }
            }
            // Regular expression modifiers.
            while quote == "/", index < chars.count, chars[index] == "i" || chars[index] == "s" {
                text.append(chars[index])
                advance()
            }
            token = Token(text: text, line: l, column: col, isString: true)
        } else if c == "{" && previous == "=" {
            // A hex string: { 6A 40 ?? [2-4] (01 | 02) }.
            var text = ""
            while true {
                guard index < chars.count else { throw .init(l, col, "unterminated hex string") }
                let d = chars[index]
                text.append(d)
                advance()
                if d == "}" { break }
            }
            token = Token(text: text, line: l, column: col, isString: true)
        } else if c.isLetter || c.isNumber || c == "_" || c == "$" || c == "#" || c == "@" || c == "!" {
            var text = ""
            while index < chars.count,
                chars[index].isLetter || chars[index].isNumber || chars[index] == "_" || (text.isEmpty && "$#@!".contains(chars[index]))
                    || chars[index] == "*" && text.hasPrefix("$")
            {
                text.append(chars[index])
                advance()
            }
            token = Token(text: text, line: l, column: col)
        } else {
            advance()
            token = Token(text: String(c), line: l, column: col)
        }
        previous = token.text
        return token
    }
}
