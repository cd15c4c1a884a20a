import Foundation

/// The facts about an item that conditions look at.
public struct Subject: Sendable {
    /// The indicator's kind; nil for a rule.
    public var kind: IndicatorKind?
    /// The rule's format; nil for an indicator.
    public var format: RuleFormat?
    /// The indicator's value, or the rule's name.
    public var value: String
    public var confidence: Int
    public var severity: Severity
    public var tlp: TLP
    public var tags: Set<String>
    public var via: String
    public var suggested: Set<String>
    /// The address or network, for IP kinds.
    public var network: IPNetwork?
    /// The domain the value names, for domain, URL and e-mail kinds (lower-case, punycode).
    public var domain: String?

    public init(_ item: Item) {
        switch item.payload {
        case .indicator(let indicator): self.init(indicator, via: item.via, suggested: item.suggested)
        case .rule(let rule): self.init(rule, via: item.via, suggested: item.suggested)
        }
    }

    public init(_ rule: Rule, via: String, suggested: [String] = []) {
        format = rule.format
        value = rule.name
        confidence = rule.confidence
        severity = rule.severity
        tlp = rule.tlp
        tags = Set(rule.tags)
        self.via = via
        self.suggested = Set(suggested)
    }

    /// Which playbooks the item runs through.
    public var trigger: Playbook.Trigger { format == nil ? .indicator : .rule }

    public init(_ indicator: Indicator, via: String, suggested: [String] = []) {
        kind = indicator.kind
        value = indicator.value
        confidence = indicator.confidence
        severity = indicator.severity
        tlp = indicator.tlp
        tags = Set(indicator.tags)
        self.via = via
        self.suggested = Set(suggested)
        network = indicator.network
        domain = Subject.domain(of: indicator)
    }

    static func domain(of indicator: Indicator) -> String? {
        switch indicator.kind {
        case .domain: return indicator.value
        case .email: return indicator.value.split(separator: "@").last.map(String.init)
        case .url:
            // The normalised URL: scheme://host[:port][/...]; no credentials (they are refused).
            guard let start = indicator.value.range(of: "://")?.upperBound else { return nil }
            let authority = indicator.value[start...].prefix { !"/?#".contains($0) }
            guard !authority.hasPrefix("[") else { return nil }
            let host = authority.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
            guard !host.isEmpty, (try? IPAddress(parsing: host)) == nil else { return nil }
            return host.lowercased()
        default: return nil
        }
    }
}
