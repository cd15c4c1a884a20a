import Foundation

/// A playbook's `match`, compiled: lists of networks and suffixes are already indexed, regexes
/// compiled, named lists resolved.
public indirect enum Condition: Sendable {
    case all([Condition])
    case any([Condition])
    case not(Condition)
    case kind(KindSet)
    /// `format: [sigma]`, in rule playbooks.
    case format(Set<RuleFormat>)
    case confidence(min: Int, max: Int)
    case severity(min: Severity, max: Severity)
    case tlp(Set<TLP>)
    case tags(any: Set<String>, all: Set<String>, none: Set<String>)
    case from(Set<String>)
    case suggested(Set<String>)
    /// `value: {cidr: [...]}` (or `not_in`, negated): the address or network lies inside one of them.
    case networks(NetworkSet)
    /// `value: {suffix: [...]}`: the domain (of a domain, URL or e-mail) is one of them or below one.
    case suffixes(SuffixSet)
    /// `value: {regex: ...}`: searched in the normalised value.
    case regex(CompiledRegex)
    /// `value: {in_list: NAME}`.
    case list(NamedList)

    /// Whether the item satisfies the condition. The hot path: no message is built.
    public func holds(for subject: Subject) -> Bool {
        switch self {
        case .all(let conditions): return conditions.allSatisfy { $0.holds(for: subject) }
        case .any(let conditions): return conditions.contains { $0.holds(for: subject) }
        case .not(let condition): return !condition.holds(for: subject)
        case .kind(let kinds): return subject.kind.map(kinds.contains) ?? false
        case .format(let formats): return subject.format.map(formats.contains) ?? false
        case .confidence(let min, let max): return subject.confidence >= min && subject.confidence <= max
        case .severity(let min, let max): return subject.severity >= min && subject.severity <= max
        case .tlp(let levels): return levels.contains(subject.tlp)
        case .tags(let any, let all, let none):
            return (any.isEmpty || !any.isDisjoint(with: subject.tags)) && all.isSubset(of: subject.tags) && none.isDisjoint(with: subject.tags)
        case .from(let sources): return sources.contains(subject.via)
        case .suggested(let actions): return !actions.isDisjoint(with: subject.suggested)
        case .networks(let set): return subject.network.map(set.contains) ?? false
        case .suffixes(let set): return subject.domain.map(set.matches) ?? false
        case .regex(let regex): return regex.matches(subject.value)
        case .list(let list): return list.contains(subject)
        }
    }

    /// Nil when the condition holds; otherwise the first part that does not, in words.
    public func failure(for subject: Subject) -> String? {
        switch self {
        case .all(let conditions):
            for condition in conditions {
                if let why = condition.failure(for: subject) { return why }
            }
            return nil
        case .any(let conditions):
            var reasons: [String] = []
            for condition in conditions {
                guard let why = condition.failure(for: subject) else { return nil }
                reasons.append(why)
            }
            return "none of any: \(reasons.joined(separator: "; "))"
        case .not(let condition):
            return condition.holds(for: subject) ? "not: \(condition.summary) holds" : nil
        case .kind(let kinds):
            guard let kind = subject.kind else { return "the item is a rule, not an indicator" }
            return kinds.contains(kind) ? nil : "kind is \(kind.rawValue), not \(Condition.list(kinds.map(\.rawValue)))"
        case .format(let formats):
            guard let format = subject.format else { return "the item is an indicator, not a rule" }
            return formats.contains(format) ? nil : "format is \(format.rawValue), not \(Condition.list(formats.map(\.rawValue)))"
        case .confidence(let min, let max):
            if subject.confidence < min { return "confidence \(subject.confidence) is below \(min)" }
            if subject.confidence > max { return "confidence \(subject.confidence) is above \(max)" }
            return nil
        case .severity(let min, let max):
            if subject.severity < min { return "severity \(subject.severity.rawValue) is below \(min.rawValue)" }
            if subject.severity > max { return "severity \(subject.severity.rawValue) is above \(max.rawValue)" }
            return nil
        case .tlp(let levels):
            return levels.contains(subject.tlp) ? nil : "tlp is \(subject.tlp.rawValue), not \(Condition.list(levels.map(\.rawValue)))"
        case .tags(let any, let all, let none):
            if !any.isEmpty, any.isDisjoint(with: subject.tags) { return "tags has none of \(Condition.list(any))" }
            if !all.isSubset(of: subject.tags) { return "tags lacks \(Condition.list(all.subtracting(subject.tags)))" }
            if let bad = none.intersection(subject.tags).sorted().first { return "tags has '\(bad)'" }
            return nil
        case .from(let sources):
            return sources.contains(subject.via) ? nil : "from is \(subject.via), not \(Condition.list(sources))"
        case .suggested(let actions):
            return actions.isDisjoint(with: subject.suggested) ? "suggested has none of \(Condition.list(actions))" : nil
        case .networks(let set):
            guard let network = subject.network else { return "value \(subject.value) is not an address or network" }
            return set.contains(network) ? nil : "value \(network) is not inside \(set.label)"
        case .suffixes(let set):
            guard let domain = subject.domain else { return "value \(subject.value) has no domain" }
            return set.matches(domain) ? nil : "value \(domain) is not under \(set.label)"
        case .regex(let regex):
            return regex.matches(subject.value) ? nil : "value does not match regex \(regex.pattern)"
        case .list(let list):
            return list.contains(subject) ? nil : "value \(subject.value) is not in list \(list.name)"
        }
    }

    /// A short form for messages.
    public var summary: String {
        switch self {
        case .all(let c): "all(\(c.map(\.summary).joined(separator: ", ")))"
        case .any(let c): "any(\(c.map(\.summary).joined(separator: ", ")))"
        case .not(let c): "not(\(c.summary))"
        case .kind(let k): "kind in \(Condition.list(k.map(\.rawValue)))"
        case .format(let f): "format in \(Condition.list(f.map(\.rawValue)))"
        case .confidence(let min, let max): "confidence \(min)-\(max)"
        case .severity(let min, let max): "severity \(min.rawValue)-\(max.rawValue)"
        case .tlp(let t): "tlp in \(Condition.list(t.map(\.rawValue)))"
        case .tags: "tags"
        case .from(let f): "from \(Condition.list(f))"
        case .suggested(let s): "suggested \(Condition.list(s))"
        case .networks(let set): "value in \(set.label)"
        case .suffixes(let set): "value under \(set.label)"
        case .regex(let r): "value ~ \(r.pattern)"
        case .list(let l): "value in list \(l.name)"
        }
    }

    static func list<S: Sequence<String>>(_ words: S) -> String {
        "[" + words.sorted().joined(separator: ", ") + "]"
    }
}

/// Networks with values attached, answering "which of them contain this address or network" with
/// one hash lookup per distinct prefix length present (at most 33 for IPv4, 129 for IPv6).
public struct PrefixIndex<Value: Sendable>: Sendable {
    /// Per family, one table per prefix length present, shortest first.
    private var v4: [(length: Int, table: [UInt32: [Value]])] = []
    private var v6: [(length: Int, table: [UInt128: [Value]])] = []

    public init() {}

    public var isEmpty: Bool { v4.isEmpty && v6.isEmpty }

    public mutating func insert(_ network: IPNetwork, _ value: Value) {
        switch network.address {
        case .v4(let bits): PrefixIndex.insert(bits, network.prefixLength, value, into: &v4)
        case .v6(let bits): PrefixIndex.insert(bits, network.prefixLength, value, into: &v6)
        }
    }

    private static func insert<K: FixedWidthInteger>(_ key: K, _ length: Int, _ value: Value, into tables: inout [(length: Int, table: [K: [Value]])])
    {
        if let slot = tables.firstIndex(where: { $0.length == length }) {
            tables[slot].table[key, default: []].append(value)
        } else {
            tables.append((length, [key: [value]]))
            tables.sort { $0.length < $1.length }
        }
    }

    /// Calls `body` with the value of every network that contains `network` (equal or wider).
    public func forEachContaining(_ network: IPNetwork, _ body: (Value) -> Void) {
        switch network.address {
        case .v4(let bits): PrefixIndex.lookup(bits, network.prefixLength, in: v4, body)
        case .v6(let bits): PrefixIndex.lookup(bits, network.prefixLength, in: v6, body)
        }
    }

    private static func lookup<K: FixedWidthInteger>(
        _ key: K, _ length: Int, in tables: [(length: Int, table: [K: [Value]])], _ body: (Value) -> Void
    ) {
        for (prefix, table) in tables {
            guard prefix <= length else { return }
            let masked = prefix == 0 ? 0 : key & ~K(0) << (K.bitWidth - prefix)
            if let values = table[masked] { values.forEach(body) }
        }
    }

    /// Whether any network contains `network`.
    public func hasContaining(_ network: IPNetwork) -> Bool {
        var found = false
        forEachContaining(network) { _ in found = true }
        return found
    }
}

/// The networks of a `value: {cidr: ...}` or `not_in` condition.
public struct NetworkSet: Sendable {
    public let networks: [IPNetwork]
    let index: PrefixIndex<Void>

    public init(_ networks: [IPNetwork]) {
        self.networks = networks
        var index = PrefixIndex<Void>()
        for network in networks { index.insert(network, ()) }
        self.index = index
    }

    public func contains(_ network: IPNetwork) -> Bool { index.hasContaining(network) }
    public var label: String { Condition.list(networks.map(\.cidrNotation)) }
}

/// Domain suffixes: `example.com` matches `example.com` and `a.b.example.com`, not `badexample.com`.
public struct SuffixSet: Sendable {
    public let suffixes: Set<String>
    private let lookup: Set<Substring>

    public init(_ suffixes: some Sequence<String>) {
        self.suffixes = Set(suffixes)
        lookup = Set(self.suffixes.map { Substring($0) })
    }

    public var label: String { Condition.list(suffixes) }

    public var isEmpty: Bool { suffixes.isEmpty }

    public func matches(_ domain: String) -> Bool {
        SuffixSet.forEachSuffix(of: domain) { lookup.contains($0) }
    }
}

/// A regular expression compiled once at load time, matched in linear time (`LinearRegex`).
public struct CompiledRegex: Sendable {
    private let regex: LinearRegex
    public let pattern: String

    public init(_ pattern: String) throws(ValueError) {
        regex = try LinearRegex(pattern)
        self.pattern = pattern
    }

    public func matches(_ text: String) -> Bool {
        regex.matches(text)
    }
}

/// A named list from the lists directory: one value a line, `#` comments. Addresses and networks
/// match what lies inside them; domains match themselves and their subdomains; other values match exactly.
public struct NamedList: Sendable {
    public let name: String
    public let networks: PrefixIndex<Void>
    public let domains: SuffixSet
    public let values: Set<String>
    public let count: Int

    public init(name: String, networks: PrefixIndex<Void>, domains: SuffixSet, values: Set<String>, count: Int) {
        self.name = name
        self.networks = networks
        self.domains = domains
        self.values = values
        self.count = count
    }

    public func contains(_ subject: Subject) -> Bool {
        if let network = subject.network, networks.hasContaining(network) { return true }
        if let domain = subject.domain, domains.matches(domain) { return true }
        return values.contains(subject.value)
    }
}
