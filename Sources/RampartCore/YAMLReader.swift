import Yams

/// Reads a YAML tree strictly into typed values, collecting every problem with its location
/// instead of stopping at the first.
///
/// Scalars are read from their text, never through YAML 1.1's implicit typing, so `on`, `no`
/// and `0777` mean what they say.
public final class YAMLReader {
    public let file: String
    public private(set) var diagnostics: [Diagnostic] = []

    public init(file: String) {
        self.file = file
    }

    public var hasErrors: Bool { !diagnostics.isEmpty }

    public func error(_ node: Node?, _ message: String) {
        let mark = node?.mark
        diagnostics.append(Diagnostic(file: file, line: mark?.line ?? 0, column: mark?.column ?? 0, message: message))
    }

    public func throwIfErrors() throws(Diagnostics) {
        if !diagnostics.isEmpty { throw Diagnostics(diagnostics) }
    }

    // MARK: Mappings

    /// A mapping's entries, with unknown keys reported against `allowed`.
    public struct Fields {
        public let node: Node
        let entries: [(key: String, keyNode: Node, value: Node)]
        let reader: YAMLReader
        let what: String

        public subscript(_ key: String) -> Node? {
            entries.first(where: { $0.key == key })?.value
        }

        public var keys: [String] { entries.map(\.key) }

        /// The value of a key that must be present; reports it when missing.
        public func required(_ key: String) -> Node? {
            guard let value = self[key] else {
                reader.error(node, "\(what) is missing the required key '\(key)'")
                return nil
            }
            return value
        }

        /// The key node itself, for locations.
        public func keyNode(_ key: String) -> Node? {
            entries.first(where: { $0.key == key })?.keyNode
        }
    }

    /// Reads a mapping whose keys must be among `allowed`; `what` names it in messages ("playbook", "match").
    /// A mapping read through its key type: only those keys are allowed (others are reported),
    /// and only those can be asked for.
    public func section<Key: ConfigKey>(_ node: Node, _ keys: Key.Type, what: String) -> Section<Key>? {
        fields(node, allowed: Key.names, what: what).map(Section.init)
    }

    public struct Section<Key: ConfigKey> {
        public let fields: Fields

        public var node: Node { fields.node }

        public subscript(_ key: Key) -> Node? { fields[key.rawValue] }

        /// The value of a key that must be present; reports it when missing.
        public func required(_ key: Key) -> Node? { fields.required(key.rawValue) }
    }

    public func fields(_ node: Node, allowed: [String], what: String) -> Fields? {
        guard case .mapping(let mapping) = node else {
            error(node, "\(what) must be a mapping of keys to values, found \(describe(node))")
            return nil
        }
        var entries: [(key: String, keyNode: Node, value: Node)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                error(keyNode, "keys in \(what) must be plain words")
                continue
            }
            let key = scalar.string
            if !allowed.contains(key) {
                var message = "unknown key '\(key.preview)' in \(what); expected one of: \(allowed.joined(separator: ", "))"
                if let guess = YAMLReader.closest(key, in: allowed) {
                    message =
                        "unknown key '\(key.preview)' in \(what) (did you mean '\(guess)'?); expected one of: \(allowed.joined(separator: ", "))"
                }
                error(keyNode, message)
                continue
            }
            entries.append((key, keyNode, value))
        }
        return Fields(node: node, entries: entries, reader: self, what: what)
    }

    // MARK: Scalars

    public func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    public func string(_ node: Node, _ what: String) -> String? {
        guard case .scalar(let scalar) = node, !isNull(node) else {
            error(node, "\(what) must be a string, found \(describe(node))")
            return nil
        }
        return scalar.string
    }

    public func int(_ node: Node, _ what: String, in range: ClosedRange<Int>) -> Int? {
        guard case .scalar(let scalar) = node, let value = Int(scalar.string), scalar.style == .plain else {
            error(node, "\(what) must be a whole number from \(range.lowerBound) to \(range.upperBound), found \(describe(node))")
            return nil
        }
        guard range.contains(value) else {
            error(node, "\(what) must be from \(range.lowerBound) to \(range.upperBound), found \(value)")
            return nil
        }
        return value
    }

    public func bool(_ node: Node, _ what: String) -> Bool? {
        guard case .scalar(let scalar) = node, scalar.style == .plain, scalar.string == "true" || scalar.string == "false" else {
            error(node, "\(what) must be true or false, found \(describe(node))")
            return nil
        }
        return scalar.string == "true"
    }

    public func duration(_ node: Node, _ what: String) -> Duration? {
        guard let text = string(node, what) else { return nil }
        do {
            let duration = try Duration(parsing: text)
            guard duration > .zero else {
                error(node, "\(what) must be longer than zero")
                return nil
            }
            return duration
        } catch {
            self.error(node, "\(what): \(error.message)")
            return nil
        }
    }

    /// A value from a closed set of words.
    public func word<T>(_ node: Node, _ what: String, _ parse: (String) throws(ValueError) -> T) -> T? {
        guard let text = string(node, what) else { return nil }
        do {
            return try parse(text)
        } catch {
            self.error(node, "\(what): \(error.message)")
            return nil
        }
    }

    /// A list, or a single value taken as a list of one (`kind: ipv4` or `kind: [ipv4, ipv6]`).
    public func list(_ node: Node, _ what: String, allowSingle: Bool = true) -> [Node]? {
        switch node {
        case .sequence(let sequence):
            return Array(sequence)
        case .scalar where allowSingle && !isNull(node):
            return [node]
        default:
            error(node, "\(what) must be a list\(allowSingle ? " or a single value" : ""), found \(describe(node))")
            return nil
        }
    }

    public func strings(_ node: Node, _ what: String, allowSingle: Bool = true) -> [String]? {
        guard let items = list(node, what, allowSingle: allowSingle) else { return nil }
        let values = items.compactMap { string($0, "each entry of \(what)") }
        return values.count == items.count ? values : nil
    }

    public func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar):
            if isNull(node) { return "nothing (null)" }
            return "'\(scalar.string.preview)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// The allowed word nearest to a misspelt one, if it is near enough to be a likely typo.
    static func closest(_ word: String, in candidates: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var previous = Array(0...b.count)
            for (i, ca) in a.enumerated() {
                var current = [i + 1]
                for (j, cb) in b.enumerated() {
                    current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
                }
                previous = current
            }
            return previous[b.count]
        }
        let scored = candidates.map { ($0, distance(Array(word.lowercased()), Array($0))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(1, min(2, word.count / 3)) else { return nil }
        return best.0
    }
}

/// The keys of one section of a YAML document, such as `Config.FirewallKey`.
public protocol ConfigKey: RawRepresentable, CaseIterable, Sendable where RawValue == String {}

extension ConfigKey {
    public static var names: [String] { allCases.map(\.rawValue) }
}
