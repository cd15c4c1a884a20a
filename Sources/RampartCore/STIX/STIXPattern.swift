/// A STIX 2.1 pattern (`[ipv4-addr:value = '198.51.100.7'] OR [domain-name:value = 'evil.example']`),
/// parsed in full by the grammar of STIX 2.1 §9, and the indicator values it names when it is
/// one of the forms a firewall can act on: single comparisons, `OR` of them, `IN`, `ISSUBSET`,
/// and a comparison `AND` on one object (MISP's `network-traffic:dst_ref.value` form) whose other
/// conjuncts only narrow it. Anything else (`FOLLOWEDBY`, qualifiers, observations joined by
/// `AND`, `NOT`, `!=`, `LIKE`, `MATCHES`, ranges) is a valid pattern that names nothing to block.
public struct STIXPattern: Sendable {
    indirect enum Observation: Sendable {
        case comparison(Comparison)
        case qualified(Observation)
        case and([Observation])
        case or([Observation])
        case followedBy([Observation])
    }

    indirect enum Comparison: Sendable {
        case test(path: [String], negated: Bool, op: String, values: [Literal])
        case exists([String])
        case and([Comparison])
        case or([Comparison])
    }

    enum Literal: Sendable, Equatable {
        case string(String)
        case other
    }

    let root: Observation

    /// The longest pattern read; a longer one is refused before parsing.
    public static let maxLength = 64 * 1024

    /// Parses `text`; a syntax error says what was expected and where (a 1-based character offset).
    public init(_ text: String) throws(ValueError) {
        guard text.utf8.count <= STIXPattern.maxLength else {
            throw ValueError(.tooLong, "the pattern is longer than \(STIXPattern.maxLength) bytes")
        }
        var parser = Parser(tokens: try Lexer.tokens(text))
        root = try parser.observations(depth: 0)
        guard parser.peek == .end else { throw parser.error("expected OR, AND or FOLLOWEDBY") }
    }

    /// What the pattern names that a block or a rule can act on: (kind, raw value) pairs, the kind
    /// nil when the value says it (an address or a network); or why it names nothing.
    public func values() -> Result<[(IndicatorKind?, String)], NotActionable> {
        STIXPattern.values(of: root)
    }

    /// The value of the commonest pattern, one comparison with `=` and a plain string
    /// (`[ipv4-addr:value = '198.51.100.7']`), read without the parser (it is most of a bulk
    /// bundle's time otherwise); nil for any other pattern, which `init` and `values` then read.
    public static func singleValue(_ text: String) -> (IndicatorKind?, String)? {
        var text = text
        return text.withUTF8 { bytes -> (IndicatorKind?, String)? in
            for (prefix, kind) in singlePrefixes where bytes.count > prefix.count + 2 && bytes.starts(with: prefix) {
                let value = UnsafeBufferPointer(rebasing: bytes[prefix.count..<bytes.count - 2])
                guard bytes[bytes.count - 2] == UInt8(ascii: "'"), bytes[bytes.count - 1] == UInt8(ascii: "]"),
                    !value.contains(where: { $0 == UInt8(ascii: "'") || $0 == UInt8(ascii: "\\") })
                else { return nil }
                return (kind, String(decoding: value, as: UTF8.self))
            }
            return nil
        }
    }

    static let singlePrefixes: [([UInt8], IndicatorKind?)] = [
        ("ipv4-addr:value", nil), ("ipv6-addr:value", nil), ("domain-name:value", .domain), ("url:value", .url), ("email-addr:value", .email),
    ].map { (Array("[\($0.0) = '".utf8), $0.1) }

    public struct NotActionable: Error, Sendable, Equatable {
        public let reason: String
    }

    static func values(of observation: Observation) -> Result<[(IndicatorKind?, String)], NotActionable> {
        switch observation {
        case .comparison(let comparison):
            return values(of: comparison)
        case .qualified:
            return .failure(NotActionable(reason: "observations with WITHIN, REPEATS or START/STOP qualifiers describe behaviour over time"))
        case .and:
            return .failure(NotActionable(reason: "observations joined by AND must all be seen; none of them alone is the indicator"))
        case .followedBy:
            return .failure(NotActionable(reason: "FOLLOWEDBY describes a sequence of observations"))
        case .or(let alternatives):
            return union(alternatives.map(values(of:)))
        }
    }

    static func values(of comparison: Comparison) -> Result<[(IndicatorKind?, String)], NotActionable> {
        switch comparison {
        case .exists:
            return .failure(NotActionable(reason: "EXISTS names no value"))
        case .or(let alternatives):
            return union(alternatives.map(values(of:)))
        case .and(let conjuncts):
            // One conjunct names the value; the others (the reference's type, a port) only narrow it.
            let named = conjuncts.map(values(of:)).compactMap { try? $0.get() }
            guard named.count == 1 else {
                return .failure(
                    NotActionable(reason: named.isEmpty ? "no comparison in the AND names a value" : "the AND names more than one value"))
            }
            return .success(named[0])
        case .test(let path, let negated, let op, let literals):
            guard let kind = actionableKind(path) else {
                return .failure(NotActionable(reason: "\(pathText(path)) is not an address, network, domain, URL, e-mail address or hash"))
            }
            guard !negated else { return .failure(NotActionable(reason: "a negated comparison names what is not the indicator")) }
            let strings = literals.compactMap { if case .string(let s) = $0 { s } else { nil } }
            guard strings.count == literals.count else { return .failure(NotActionable(reason: "the value is not a string")) }
            switch op {
            case "=", "==", "IN": return .success(strings.map { (kind, $0) })
            case "ISSUBSET" where kind == nil: return .success(strings.map { (IndicatorKind.cidr, $0) })
            default: return .failure(NotActionable(reason: "\(op) does not name one value"))
            }
        }
    }

    /// Each alternative on its own names an indicator: those that name values are taken.
    static func union(_ results: [Result<[(IndicatorKind?, String)], NotActionable>]) -> Result<[(IndicatorKind?, String)], NotActionable> {
        var values: [(IndicatorKind?, String)] = []
        var firstFailure: NotActionable?
        for result in results {
            switch result {
            case .success(let found): values += found
            case .failure(let reason): firstFailure = firstFailure ?? reason
            }
        }
        if values.isEmpty, let firstFailure { return .failure(firstFailure) }
        return .success(values)
    }

    /// The kind of value an object path holds when it is one Rampart acts on (`.some(nil)`: an
    /// address or network, the value says which).
    static func actionableKind(_ path: [String]) -> IndicatorKind?? {
        switch path {
        case ["ipv4-addr", "value"], ["ipv6-addr", "value"], ["network-traffic", "dst_ref", "value"], ["network-traffic", "src_ref", "value"]:
            return .some(nil)
        case ["domain-name", "value"]: return .domain
        case ["url", "value"]: return .url
        case ["email-addr", "value"]: return .email
        case let hash where hash.count == 3 && hash[0] == "file" && hash[1] == "hashes":
            switch hashKey(hash[2]) {
            case "MD5": return .md5
            case "SHA1": return .sha1
            case "SHA256": return .sha256
            default: return nil
            }
        default: return nil
        }
    }

    /// A hash algorithm's name as the validator compares them: upper case, without `-`.
    static func hashKey(_ name: String) -> String {
        name.uppercased().replacingOccurrences(of: "-", with: "")
    }

    static func pathText(_ path: [String]) -> String {
        guard let type = path.first else { return "" }
        return type + ":" + path.dropFirst().joined(separator: ".")
    }

    // MARK: - Lexing

    enum Token: Equatable {
        case word(String)  // identifiers and keywords
        case string(String)
        case number
        case typed  // t'…', b'…', h'…'
        case punct(String)
        case end
    }

    struct Lexer {
        static func tokens(_ text: String) throws(ValueError) -> [(Token, Int)] {
            let bytes = Array(text.utf8)
            var tokens: [(Token, Int)] = []
            var i = 0
            func fail(_ message: String) -> ValueError { ValueError(.invalidField, "pattern: \(message) at character \(i + 1)") }
            func quoted(from start: Int) throws(ValueError) -> (String, Int) {
                var j = start + 1
                var out: [UInt8] = []
                while j < bytes.count, bytes[j] != UInt8(ascii: "'") {
                    if bytes[j] == UInt8(ascii: "\\") {
                        guard j + 1 < bytes.count, bytes[j + 1] == UInt8(ascii: "'") || bytes[j + 1] == UInt8(ascii: "\\") else {
                            i = j
                            throw fail("only \\' and \\\\ may be escaped in a string")
                        }
                        j += 1
                    }
                    out.append(bytes[j])
                    j += 1
                }
                guard j < bytes.count else {
                    i = start
                    throw fail("unterminated string")
                }
                return (String(decoding: out, as: UTF8.self), j + 1)
            }
            while i < bytes.count {
                let c = bytes[i]
                if c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d {
                    i += 1
                    continue
                }
                let start = i
                if c == UInt8(ascii: "'") {
                    let (s, next) = try quoted(from: i)
                    tokens.append((.string(s), start))
                    i = next
                } else if (c == UInt8(ascii: "t") || c == UInt8(ascii: "b") || c == UInt8(ascii: "h")), i + 1 < bytes.count,
                    bytes[i + 1] == UInt8(ascii: "'")
                {
                    let (s, next) = try quoted(from: i + 1)
                    if c == UInt8(ascii: "t") {
                        guard (try? Timestamp.parse(s)) != nil else { throw fail("'\(s.preview)' is not a timestamp") }
                    }
                    tokens.append((.typed, start))
                    i = next
                } else if c.isASCIILetterOrDigit && !(c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "_") {
                    var j = i
                    while j < bytes.count, bytes[j].isASCIILetterOrDigit || bytes[j] == UInt8(ascii: "_") || bytes[j] == UInt8(ascii: "-") {
                        j += 1
                    }
                    tokens.append((.word(String(decoding: bytes[i..<j], as: UTF8.self)), start))
                    i = j
                } else if (c >= 0x30 && c <= 0x39)
                    || ((c == UInt8(ascii: "-") || c == UInt8(ascii: "+")) && i + 1 < bytes.count && bytes[i + 1] >= 0x30 && bytes[i + 1] <= 0x39)
                {
                    var j = i + 1
                    while j < bytes.count, (bytes[j] >= 0x30 && bytes[j] <= 0x39) || bytes[j] == UInt8(ascii: ".") { j += 1 }
                    tokens.append((.number, start))
                    i = j
                } else {
                    let two = i + 1 < bytes.count ? String(decoding: bytes[i...i + 1], as: UTF8.self) : ""
                    if ["==", "!=", "<>", "<=", ">="].contains(two) {
                        tokens.append((.punct(two), start))
                        i += 2
                    } else if "[](),:.=<>*".utf8.contains(c) {
                        tokens.append((.punct(String(UnicodeScalar(c))), start))
                        i += 1
                    } else {
                        throw fail("unexpected '\(String(decoding: [c], as: UTF8.self).preview)'")
                    }
                }
            }
            tokens.append((.end, bytes.count))
            return tokens
        }
    }

    // MARK: - Parsing

    struct Parser {
        let tokens: [(Token, Int)]
        var index = 0
        static let maxDepth = 64

        var peek: Token { tokens[index].0 }

        func error(_ expected: String) -> ValueError {
            ValueError(.invalidField, "pattern: \(expected) at character \(tokens[index].1 + 1)")
        }

        mutating func take(_ token: Token) -> Bool {
            guard peek == token else { return false }
            index += 1
            return true
        }

        mutating func expect(_ token: Token, _ what: String) throws(ValueError) {
            guard take(token) else { throw error("expected \(what)") }
        }

        /// `observation (FOLLOWEDBY|OR|AND observation)*` with AND binding tighter than OR, OR than FOLLOWEDBY.
        mutating func observations(depth: Int) throws(ValueError) -> Observation {
            guard depth < Parser.maxDepth else { throw error("nesting deeper than \(Parser.maxDepth)") }
            var sequence = [try observationOr(depth: depth)]
            while take(.word("FOLLOWEDBY")) { sequence.append(try observationOr(depth: depth)) }
            return sequence.count == 1 ? sequence[0] : .followedBy(sequence)
        }

        mutating func observationOr(depth: Int) throws(ValueError) -> Observation {
            var alternatives = [try observationAnd(depth: depth)]
            while take(.word("OR")) { alternatives.append(try observationAnd(depth: depth)) }
            return alternatives.count == 1 ? alternatives[0] : .or(alternatives)
        }

        mutating func observationAnd(depth: Int) throws(ValueError) -> Observation {
            var conjuncts = [try qualified(depth: depth)]
            while take(.word("AND")) { conjuncts.append(try qualified(depth: depth)) }
            return conjuncts.count == 1 ? conjuncts[0] : .and(conjuncts)
        }

        mutating func qualified(depth: Int) throws(ValueError) -> Observation {
            var observation: Observation
            if take(.punct("[")) {
                observation = .comparison(try comparisonOr(depth: depth + 1))
                try expect(.punct("]"), "']' or a comparison joined by AND or OR")
            } else if take(.punct("(")) {
                observation = try observations(depth: depth + 1)
                try expect(.punct(")"), "')'")
            } else {
                throw error("expected '[' or '('")
            }
            var seen: Set<String> = []
            while case .word(let word) = peek, ["WITHIN", "REPEATS", "START"].contains(word) {
                index += 1
                guard seen.insert(word).inserted else { throw error("a second \(word) qualifier on one observation") }
                switch word {
                case "WITHIN":
                    try expect(.number, "a number of seconds")
                    try expect(.word("SECONDS"), "SECONDS")
                case "REPEATS":
                    try expect(.number, "a number of times")
                    try expect(.word("TIMES"), "TIMES")
                default:
                    try expect(.typed, "a timestamp t'…'")
                    try expect(.word("STOP"), "STOP")
                    try expect(.typed, "a timestamp t'…'")
                }
                observation = .qualified(observation)
            }
            return observation
        }

        mutating func comparisonOr(depth: Int) throws(ValueError) -> Comparison {
            guard depth < Parser.maxDepth else { throw error("nesting deeper than \(Parser.maxDepth)") }
            var alternatives = [try comparisonAnd(depth: depth)]
            while take(.word("OR")) { alternatives.append(try comparisonAnd(depth: depth)) }
            return alternatives.count == 1 ? alternatives[0] : .or(alternatives)
        }

        mutating func comparisonAnd(depth: Int) throws(ValueError) -> Comparison {
            var conjuncts = [try test(depth: depth)]
            while take(.word("AND")) { conjuncts.append(try test(depth: depth)) }
            return conjuncts.count == 1 ? conjuncts[0] : .and(conjuncts)
        }

        mutating func test(depth: Int) throws(ValueError) -> Comparison {
            if take(.punct("(")) {
                let inner = try comparisonOr(depth: depth + 1)
                try expect(.punct(")"), "')'")
                return inner
            }
            if take(.word("EXISTS")) { return .exists(try objectPath()) }
            let path = try objectPath()
            let negated = take(.word("NOT"))
            let opToken = peek
            index += 1
            switch opToken {
            case .punct(let op) where ["=", "==", "!=", "<>", "<", "<=", ">", ">="].contains(op):
                return .test(path: path, negated: negated, op: op, values: [try literal()])
            case .word("IN"):
                try expect(.punct("("), "'(' to open the set")
                var values = [try literal()]
                while take(.punct(",")) { values.append(try literal()) }
                try expect(.punct(")"), "')' or ',' in the set")
                return .test(path: path, negated: negated, op: "IN", values: values)
            case .word(let op) where ["LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"].contains(op):
                guard case .string(let s) = peek else { throw error("expected a string after \(op)") }
                index += 1
                return .test(path: path, negated: negated, op: op, values: [.string(s)])
            default:
                index -= 1
                throw error("expected a comparison operator (=, !=, <, >, IN, LIKE, MATCHES, ISSUBSET, ISSUPERSET)")
            }
        }

        mutating func literal() throws(ValueError) -> Literal {
            switch peek {
            case .string(let s):
                index += 1
                return .string(s)
            case .number, .typed, .word("true"), .word("false"):
                index += 1
                return .other
            default:
                throw error("expected a string, number, boolean or t'…', b'…', h'…' literal")
            }
        }

        /// `type:property(.key|[n]|[*])*`; keys holding `-` must be quoted.
        mutating func objectPath() throws(ValueError) -> [String] {
            guard case .word(let type) = peek, isObjectType(type) else { throw error("expected an object type such as ipv4-addr") }
            index += 1
            try expect(.punct(":"), "':' after the object type")
            var path = [type, try key()]
            while true {
                if take(.punct(".")) {
                    path.append(try key())
                } else if take(.punct("[")) {
                    guard take(.number) || take(.punct("*")) else { throw error("expected an index or '*'") }
                    try expect(.punct("]"), "']'")
                } else {
                    return path
                }
            }
        }

        mutating func key() throws(ValueError) -> String {
            switch peek {
            case .word(let word) where !word.contains("-"):
                index += 1
                return word
            case .word:
                throw error("expected a property name; one holding '-' must be quoted, as in hashes.'SHA-256'")
            case .string(let s):
                index += 1
                return s
            default:
                throw error("expected a property name")
            }
        }

        func isObjectType(_ word: String) -> Bool {
            let bytes = Array(word.utf8)
            return bytes.count >= 3 && bytes.count <= 250 && (bytes[0] >= 0x61 && bytes[0] <= 0x7a)
                && bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: "-") }
                && bytes.last != UInt8(ascii: "-")
        }
    }
}
