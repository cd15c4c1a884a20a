import Foundation
import Yams

/// One kind of playbook action (`block`, `rule`, `propagate`, `notify`, `exec`), in a file of its
/// own: its strict parse, its pure plan, and the words that explain that plan. `rampart test`
/// and `POST /v1/playbooks/test` explain the very intents the engine carries out, so what is
/// explained and what is done cannot drift.
public protocol PlaybookAction: Sendable {
    /// The key that names it in a playbook's `actions`.
    static var kind: String { get }

    /// Reads the value under the kind's key (`action` is the whole `{kind: ...}` entry, for
    /// messages), reporting every problem to `reader`; nil when it is invalid.
    static func parse(_ body: Node, action: Node, path: String, playbook: Playbook, peers: [String]?, reader: YAMLReader) -> Self?

    /// What it means to do with `item`: pure (no clock, no I/O). The engine carries the intents
    /// out in the item's transaction, or records them as simulated.
    func plan(_ item: Item, playbook: Playbook, in context: PlanContext) -> [Intent]

    /// One line for each of the intents its `plan` made.
    func explain(_ intent: Intent, item: Item, playbook: Playbook, in context: PlanContext) -> String
}

extension PlaybookAction {
    public var kind: String { Self.kind }
}

/// The action kinds, keyed by the name playbooks use.
public enum PlaybookActions {
    /// In the order messages list them.
    public static let kinds: [any PlaybookAction.Type] = [
        BlockAction.self, RuleAction.self, ExecAction.self, PropagateAction.self, NotifyAction.self,
    ]
    public static let names = kinds.map { $0.kind }
    public static let registry: [String: any PlaybookAction.Type] = Dictionary(uniqueKeysWithValues: kinds.map { ($0.kind, $0) })
}

/// What is fixed for every item of one request while it is planned: the node, its peers and
/// safety policy in force, the request's time, and the longest block its items may cause.
public struct PlanContext: Sendable {
    public var nodeID: String
    public var peers: [Peer]
    public var policy: SafetyPolicy
    public var at: Date
    /// A peer's `accept.max_duration`, for the items it sent.
    public var maxBlock: Duration?

    public init(nodeID: String, peers: [Peer], policy: SafetyPolicy, at: Date, maxBlock: Duration? = nil) {
        self.nodeID = nodeID
        self.peers = peers
        self.policy = policy
        self.at = at
        self.maxBlock = maxBlock
    }
}

extension Playbook {
    /// Every intent of the playbook's actions for `item`, each with the action that planned it.
    public func plan(_ item: Item, in context: PlanContext) -> [(action: any PlaybookAction, intent: Intent)] {
        actions.flatMap { action in action.plan(item, playbook: self, in: context).map { (action, $0) } }
    }

    /// What the playbook would do with the item, in words, from the same plan the engine carries
    /// out: for `rampart test` and `POST /v1/playbooks/test`.
    public func explain(_ item: Item, in context: PlanContext) -> [String] {
        let corroboration = sightings.map { ["only once the value is \($0.summary) (counted when the item is committed)"] } ?? []
        return corroboration + plan(item, in: context).map { $0.action.explain($0.intent, item: item, playbook: self, in: context) }
    }

    /// The verb of an explanation: what is done in `enforce` mode, what is recorded in `simulate`.
    func verb(_ enforced: String, simulated: String) -> String {
        mode == .simulate ? "record (simulate, \(simulated))" : enforced
    }
}
