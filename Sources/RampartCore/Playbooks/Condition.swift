import Foundation

/// A playbook's `match`, compiled: lists of networks and suffixes are already indexed, regexes
/// compiled, named lists resolved.
public indirect enum Condition: Sendable {
    case all([Condition])
    case any([Condition])
    case not(Condition)
    case kind(Set<IndicatorKind>)
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

    /// Whether the item satisfies the condition.
    public func holds(for subject: Subject) -> Bool {
        failure(for: subject) == nil
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
            return kinds.contains(subject.kind) ? nil : "kind is \(subject.kind.rawValue), not \(Condition.list(kinds.map(\.rawValue)))"
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
    private struct Key: Hashable {
        var bits: UInt128
        var length: UInt8
        var v6: Bool
    }

    private var entries: [Key: [Value]] = [:]
    private var lengthsV4: [Int] = []
    private var lengthsV6: [Int] = []

    public init() {}

    public var isEmpty: Bool { entries.isEmpty }

    public mutating func insert(_ network: IPNetwork, _ value: Value) {
        let key = Key(bits: network.address.bits, length: UInt8(network.prefixLength), v6: network.family == .v6)
        entries[key, default: []].append(value)
        if key.v6 {
            if !lengthsV6.contains(network.prefixLength) { lengthsV6.append(network.prefixLength); lengthsV6.sort() }
        } else if !lengthsV4.contains(network.prefixLength) {
            lengthsV4.append(network.prefixLength)
            lengthsV4.sort()
        }
    }

    /// The values of every network that contains `network` (equal or wider).
    public func containing(_ network: IPNetwork) -> [Value] {
        var found: [Value] = []
        let v6 = network.family == .v6
        for length in v6 ? lengthsV6 : lengthsV4 {
            guard length <= network.prefixLength else { break }
            let masked = IPNetwork.mask(network.address, to: length)
            if let values = entries[Key(bits: masked.bits, length: UInt8(length), v6: v6)] { found += values }
        }
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

    public func contains(_ network: IPNetwork) -> Bool { !index.containing(network).isEmpty }
    public var label: String { Condition.list(networks.map(\.cidrNotation)) }
}

/// Domain suffixes: `example.com` matches `example.com` and `a.b.example.com`, not `badexample.com`.
public struct SuffixSet: Sendable {
    public let suffixes: Set<String>

    public init(_ suffixes: some Sequence<String>) {
        self.suffixes = Set(suffixes)
    }

    public var label: String { Condition.list(suffixes) }

    public var isEmpty: Bool { suffixes.isEmpty }

    public func matches(_ domain: String) -> Bool {
        SuffixSet.suffixes(of: domain).contains { suffixes.contains($0) }
    }
}

/// A regular expression compiled once at load time.
public struct CompiledRegex: @unchecked Sendable {
    // NSRegularExpression is immutable and documented as safe to use from several threads.
    private let regex: NSRegularExpression
    public let pattern: String

    public init(_ pattern: String) throws(ValueError) {
        do {
            regex = try NSRegularExpression(pattern: pattern)
        } catch {
            throw ValueError(.invalidField, "'\(pattern.preview)' is not a valid regular expression")
        }
        self.pattern = pattern
    }

    public func matches(_ text: String) -> Bool {
        regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
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
        if let network = subject.network, !networks.containing(network).isEmpty { return true }
        if let domain = subject.domain, domains.matches(domain) { return true }
        return values.contains(subject.value)
    }
}
