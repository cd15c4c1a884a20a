import Foundation

/// A compiled playbook: which items it matches and what it does about them.
public struct Playbook: Sendable {
    public enum Trigger: String, Sendable, CaseIterable {
        case indicator, rule
    }

    public enum Mode: String, Sendable, CaseIterable {
        case enforce, simulate
    }

    public var name: String
    public var description: String?
    /// The file it was loaded from, for messages.
    public var file: String
    public var on: Trigger = .indicator
    public var mode: Mode = .enforce
    /// Lower runs first.
    public var priority = 100
    /// Ends evaluation after this playbook when it matches.
    public var stop = false
    public var match: Condition = .all([])
    /// Corroboration before acting, counted in the store when the item is committed.
    public var sightings: Sightings?
    public var actions: [Action] = []

    public init(name: String, file: String) {
        self.name = name
        self.file = file
    }
}

/// `sightings: {min: 2, distinct: source, within: 1h}`: the value must have been seen at least
/// `min` times (counting this item), or by `min` distinct sources, API keys or peers (`via`), or
/// origin nodes, within the window.
public struct Sightings: Sendable, Equatable {
    public enum Distinct: String, Sendable, CaseIterable {
        case source, via, origin
    }

    public var min: Int
    public var distinct: Distinct?
    public var within: Duration

    public init(min: Int, distinct: Distinct?, within: Duration) {
        self.min = min
        self.distinct = distinct
        self.within = within
    }

    public var summary: String {
        "seen \(distinct.map { "by \(min) distinct \($0.rawValue)s" } ?? "\(min) times") within \(within.text)"
    }
}

/// What a playbook does when it matches.
public enum Action: Sendable {
    /// Block the item's address or network.
    case block(BlockAction)
    /// Run a local command (argv, never a shell) with the item as JSON on its standard input.
    case exec(ExecAction)
    /// Render a detection rule from the item into the rules directory.
    case rule(RuleAction)
    /// Send the item to peers, through the outbox.
    case propagate(PropagateAction)
    /// POST a rendered JSON body to a URL (a chat or ticketing webhook), through the outbox.
    case notify(NotifyAction)

    public var name: String {
        switch self {
        case .block: "block"
        case .exec: "exec"
        case .rule: "rule"
        case .propagate: "propagate"
        case .notify: "notify"
        }
    }
}

/// `notify: {url: "https://chat.example/hooks/soc", template: '{"text":"blocked {{value}}"}'}`.
public struct NotifyAction: Sendable {
    public var url: String
    /// The request body: JSON, fields escaped as JSON strings.
    public var template: ActionTemplate

    public init(url: String, template: ActionTemplate) {
        self.url = url
        self.template = template
    }

    /// Where its notifications queue: an outbox destination of its own (peer names have no ':').
    public var destination: String { "notify:\(url)" }
}

/// `propagate: {to: all, suggest: [block], relay: false, hops: 4}`.
public struct PropagateAction: Sendable, Equatable {
    /// Peer names; nil: every peer.
    public var to: [String]?
    /// What this node suggests the peers do (`block`, `rule`).
    public var suggest: [String]
    /// Re-share items that another node originated (by default only this node's own go out).
    public var relay: Bool
    /// How many nodes beyond this one the item may reach.
    public var hops: Int

    public init(to: [String]?, suggest: [String] = [], relay: Bool = false, hops: Int = PeerMessage.defaultHops) {
        self.to = to
        self.suggest = suggest
        self.relay = relay
        self.hops = hops
    }
}

public struct ExecAction: Sendable {
    /// argv[0] is an absolute path; the other entries may name fields (`{{value}}`).
    public var argv: [ActionTemplate]
    public var timeout: Duration

    public init(argv: [ActionTemplate], timeout: Duration) {
        self.argv = argv
        self.timeout = timeout
    }

    public func arguments(for item: Item, playbook: String) -> [String] {
        argv.map { $0.render(item, playbook: playbook) }
    }
}

public struct BlockAction: Sendable, Equatable {
    public var duration: Duration
    public var direction: Direction
    public var escalate: Escalation?

    public init(duration: Duration, direction: Direction, escalate: Escalation? = nil) {
        self.duration = duration
        self.direction = direction
        self.escalate = escalate
    }
}

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

extension Playbook {
    /// What the playbook's actions would do with the item, in words, for `rampart test` and
    /// `POST /v1/playbooks/test`.
    public func plan(for item: Item, policy: SafetyPolicy) -> [String] {
        let corroboration = sightings.map { ["only once the value is \($0.summary) (counted when the item is committed)"] } ?? []
        return corroboration + actions.map { action in
            switch action {
            case .block(let block):
                guard let target = item.indicator?.network else { return "block: nothing to block in \(item.label)" }
                if let refusal = policy.check(target) { return "block: refused by the safety rails: \(refusal.message)" }
                let verb = mode == .simulate ? "record (simulate, not enforced) a block of" : "block"
                let escalation = block.escalate.map { ", \($0.factor.formatted())x longer for each earlier block by this playbook, up to \($0.max.text)" } ?? ""
                return "block: \(verb) \(target) for \(block.duration.text)\(escalation), \(block.direction.rawValue)"
            case .exec(let exec):
                let argv = exec.arguments(for: item, playbook: name).map { $0.contains(" ") || $0.isEmpty ? "'\($0)'" : $0 }
                let verb = mode == .simulate ? "record (simulate, not run)" : "run"
                return "exec: \(verb) \(argv.joined(separator: " ")) with the item as JSON on stdin, timeout \(exec.timeout.text)"
            case .rule(.render(let format, let template)):
                let file = format.relativePath(name: RuleAction.fileName(playbook: name, value: item.indicator?.value ?? ""))
                let verb = mode == .simulate ? "record (simulate, not written)" : "write"
                return "rule: \(verb) \(file), as a rule item of its own: \(template.render(item, playbook: name, sid: 1_000_000))"
            case .rule(.install):
                guard let rule = item.rule else { return "rule: nothing to install in \(item.label)" }
                let verb = mode == .simulate ? "record (simulate, not installed)" : "install"
                return "rule: \(verb) \(rule.relativePath) (\(rule.format.rawValue) rule \(rule.ruleID)\(rule.version.map { ", version \($0)" } ?? ""))"
            case .propagate(let propagate):
                let verb = mode == .simulate ? "record (simulate, not sent)" : "send"
                let peers = propagate.to.map { "peers \($0.joined(separator: ", "))" } ?? "every peer"
                let suggestion = propagate.suggest.isEmpty ? "" : ", suggesting \(propagate.suggest.joined(separator: ", "))"
                return "propagate: \(verb) to \(peers)\(suggestion), as each one's sharing policy allows (items that came from elsewhere only with relay: true)"
            case .notify(let notify):
                let verb = mode == .simulate ? "record (simulate, not sent)" : "POST"
                return "notify: \(verb) \(notify.template.render(item, playbook: name)) to \(notify.url)"
            }
        }
    }
}
