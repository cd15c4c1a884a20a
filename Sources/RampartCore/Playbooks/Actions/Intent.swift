import Foundation

/// What an action means to do with one item: a value planned without I/O. The engine applies a
/// playbook's intents in the item's transaction and hands what they caused to the firewall, the
/// exec runner, the rules directory and the outbox; in `mode: simulate` it records them instead.
public enum Intent: Sendable {
    /// Block the item's network: a decision, merged with those in force (simulated decisions in
    /// `simulate` mode, which never reach the firewall).
    case block(BlockRequest)
    /// Run a command after the commit, with the item as JSON on its standard input.
    case exec(argv: [String], timeout: Duration)
    /// Render a detection rule from the item, a rule item of its own.
    case renderRule(RuleRendering)
    /// Install the item's own rule into the rules directory.
    case installRule(path: String)
    /// Queue the item for peers.
    case propagate(Propagation)
    /// POST a rendered body to a webhook, through its outbox.
    case notify(url: String, body: String)
    /// Nothing can be done with this item, and why.
    case nothing(String)

    /// The action kind the intent belongs to, for audit events and metrics.
    public var kind: String {
        switch self {
        case .block: "block"
        case .exec: "exec"
        case .renderRule, .installRule: "rule"
        case .propagate: "propagate"
        case .notify: "notify"
        case .nothing: "none"
        }
    }

    public var isBlock: Bool {
        if case .block = self { true } else { false }
    }

    /// What the intent would do, as audit detail fields (for the entry a simulated one gets).
    public func describe(to w: inout JSONWriter) {
        switch self {
        case .block(let request):
            w.field("value", request.target.description)
            w.field("duration", request.duration.text)
        case .exec(let argv, _): w.field("argv", argv)
        case .renderRule(let rendering):
            w.field("format", rendering.format.rawValue)
            w.field("content", rendering.content(sid: nil))
        case .installRule(let path): w.field("install", path)
        case .propagate(let propagation):
            w.field("outcome", propagation.outcome.rawValue)
            w.field("queued", propagation.queued)
            if !propagation.withheld.isEmpty { w.field("withheld", propagation.withheld.map { "\($0.peer):\($0.code)" }) }
        case .notify(let url, let body):
            w.field("url", url)
            w.field("body", body)
        case .nothing(let why): w.field("reason", why)
        }
    }
}

/// A `rule` action's rendering of one item: the template, and the file it goes to.
public struct RuleRendering: Sendable {
    public var format: RuleFormat
    public var template: ActionTemplate
    public var item: Item
    public var playbook: String
    /// The rule's name: one file per playbook and value.
    public var name: String

    /// The rule text; `sid` is the signature id the store keeps for this playbook and value (nil
    /// before it is known: the template's default).
    public func content(sid: Int?) -> String {
        sid.map { template.render(item, playbook: playbook, sid: $0) } ?? template.render(item, playbook: playbook)
    }
}

/// Where a `propagate` action queues an item, and whom its sharing policies withhold it from.
public struct Propagation: Sendable {
    public enum Outcome: String, Sendable {
        /// Queued for at least one peer.
        case queued
        /// Every peer's sharing policy (or its expiry) stopped it.
        case withheld
        /// The item came from elsewhere and the action does not relay.
        case notOrigin = "not_origin"
        case noHopsLeft = "no_hops_left"
    }

    public var outcome: Outcome
    public var queued: [String] = []
    public var withheld: [(peer: String, code: ErrorCode)] = []
    /// The route the entries carry: node ids, origin first, this node last.
    public var path: [String]
    public var hopsLeft: Int
    public var suggest: [String]
}

extension Intent {
    /// The words for an intent its action has no sentence of its own for: `.nothing` says why.
    static func why(_ intent: Intent) -> String {
        if case .nothing(let why) = intent { return why }
        return "\(intent.kind) (not planned by this action)"
    }
}
