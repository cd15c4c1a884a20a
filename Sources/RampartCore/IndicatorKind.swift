/// What an indicator's value is.
public enum IndicatorKind: String, CaseIterable, Sendable, Hashable, Codable {
    case ipv4, ipv6, cidr, domain, url, md5, sha1, sha256, email

    /// The position in `allCases`, for tables indexed by kind.
    public var ordinal: Int {
        switch self {
        case .ipv4: 0
        case .ipv6: 1
        case .cidr: 2
        case .domain: 3
        case .url: 4
        case .md5: 5
        case .sha1: 6
        case .sha256: 7
        case .email: 8
        }
    }

    /// Kinds whose values are addresses or networks, the only ones a firewall can block.
    public var isNetwork: Bool {
        switch self {
        case .ipv4, .ipv6, .cidr: true
        default: false
        }
    }

    public var isHash: Bool {
        switch self {
        case .md5, .sha1, .sha256: true
        default: false
        }
    }

    public static let names = allCases.map(\.rawValue).joined(separator: ", ")

    public init(name: String) throws(ValueError) {
        guard let kind = IndicatorKind(rawValue: name) else {
            throw ValueError(.unknownKind, "unknown kind '\(name.preview)'; expected one of \(IndicatorKind.names)")
        }
        self = kind
    }
}

/// How serious an indicator is, ordered.
public enum Severity: String, CaseIterable, Sendable, Hashable, Codable, Comparable {
    case low, medium, high, critical

    public static func < (lhs: Severity, rhs: Severity) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    public init(name: String) throws(ValueError) {
        guard let value = Severity(rawValue: name) else {
            throw ValueError(.invalidField, "unknown severity '\(name.preview)'; expected low, medium, high or critical")
        }
        self = value
    }
}

/// Traffic Light Protocol 2.0 marking, ordered from most to least shareable.
public enum TLP: String, CaseIterable, Sendable, Hashable, Codable, Comparable {
    case clear
    case green
    case amber
    case amberStrict = "amber+strict"
    case red

    public static func < (lhs: TLP, rhs: TLP) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// Accepts TLP 2.0 names, case-insensitively, with or without a `tlp:` prefix; `white` is TLP 1.0's `clear`.
    public init(name: String) throws(ValueError) {
        var lower = name.lowercased()
        if lower.hasPrefix("tlp:") { lower.removeFirst(4) }
        if lower == "white" { lower = "clear" }
        guard let value = TLP(rawValue: lower) else {
            throw ValueError(.invalidField, "unknown TLP '\(name.preview)'; expected clear, green, amber, amber+strict or red")
        }
        self = value
    }
}

/// A set of kinds as a bit mask: membership is one AND, on the matcher's hot path.
public struct KindSet: Sendable, Hashable, Sequence, ExpressibleByArrayLiteral {
    private var bits: UInt16

    public static let all = KindSet(IndicatorKind.allCases)

    public init<S: Sequence<IndicatorKind>>(_ kinds: S) {
        bits = kinds.reduce(0) { $0 | KindSet.bit($1) }
    }

    public init(arrayLiteral kinds: IndicatorKind...) {
        self.init(kinds)
    }

    private static func bit(_ kind: IndicatorKind) -> UInt16 { 1 << UInt16(kind.ordinal) }

    public func contains(_ kind: IndicatorKind) -> Bool { bits & KindSet.bit(kind) != 0 }
    public func intersection(_ other: KindSet) -> KindSet { var s = self; s.bits &= other.bits; return s }
    public func union(_ other: KindSet) -> KindSet { var s = self; s.bits |= other.bits; return s }
    public var isEmpty: Bool { bits == 0 }

    public func makeIterator() -> IndexingIterator<[IndicatorKind]> {
        IndicatorKind.allCases.filter(contains).makeIterator()
    }
}
