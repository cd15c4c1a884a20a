import Foundation
import Yams

/// `propagate: {to: all, suggest: [block], relay: false, hops: 4}`: sends the item to peers,
/// through the outbox, as each peer's sharing policy allows.
public struct PropagateAction: PlaybookAction, Equatable {
    public static let kind = "propagate"
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

    public static func parse(_ body: Node, action: Node, path: String, playbook: Playbook, peers: [String]?, reader: YAMLReader) -> PropagateAction? {
        guard let propagate = reader.fields(body, allowed: ["to", "suggest", "relay", "hops"], what: "\(path).propagate") else { return nil }
        var parsed = PropagateAction(to: nil)
        if let n = propagate.required("to"), let names = reader.strings(n, "\(path).propagate.to") {
            if names != ["all"] {
                parsed.to = names
                for name in names where peers.map({ !$0.contains(name) }) ?? false {
                    let known = peers.map { $0.isEmpty ? "none is configured" : "the configuration has \($0.joined(separator: ", "))" } ?? ""
                    reader.error(n, "\(path).propagate.to: unknown peer '\(name.preview)'; \(known) (or say to: all)")
                }
            }
        }
        if let n = propagate["suggest"], let names = reader.strings(n, "\(path).propagate.suggest") {
            for name in names where !PeerMessage.suggestible.contains(name) {
                reader.error(
                    n, "\(path).propagate.suggest: unknown action '\(name.preview)'; expected \(PeerMessage.suggestible.joined(separator: ", "))")
            }
            parsed.suggest = names
        }
        if let n = propagate["relay"], let relay = reader.bool(n, "\(path).propagate.relay") { parsed.relay = relay }
        if let n = propagate["hops"], let hops = reader.int(n, "\(path).propagate.hops", in: 1...16) { parsed.hops = hops }
        return parsed
    }

    /// The peers the item is queued for: those named (or all), never one it has been through or
    /// came from, and only as each one's sharing policy and expiry allow.
    public func plan(_ item: Item, playbook: Playbook, in context: PlanContext) -> [Intent] {
        let fromHere = item.path.isEmpty
        let suggest = fromHere ? suggest : item.suggested
        var propagation = Propagation(
            outcome: .queued, path: item.path + [context.nodeID], hopsLeft: fromHere ? hops - 1 : (item.hopsLeft ?? 0) - 1, suggest: suggest
        )
        if !fromHere && !relay {
            propagation.outcome = .notOrigin
        } else if propagation.hopsLeft < 0 {
            propagation.outcome = .noHopsLeft
        } else {
            var shared = item
            shared.suggested = suggest
            for peer in context.peers where to?.contains(peer.name) ?? true {
                // Never back where the item has been.
                if propagation.path.contains(peer.nodeID) || peer.nodeID == item.origin { continue }
                if peer.hasExpired(at: context.at) {
                    propagation.withheld.append((peer.name, "expired"))
                    continue
                }
                switch peer.share.share(shared) {
                case .failure(let reason): propagation.withheld.append((peer.name, reason.code))
                case .success: propagation.queued.append(peer.name)
                }
            }
            if propagation.queued.isEmpty { propagation.outcome = .withheld }
        }
        return [.propagate(propagation)]
    }

    public func explain(_ intent: Intent, item: Item, playbook: Playbook, in context: PlanContext) -> String {
        guard case .propagate(let propagation) = intent else { return "propagate: \(Intent.why(intent))" }
        let suggestion = propagation.suggest.isEmpty ? "" : ", suggesting \(propagation.suggest.joined(separator: ", "))"
        let withheld =
            propagation.withheld.isEmpty ? "" : "; withheld from \(propagation.withheld.map { "\($0.peer) (\($0.code))" }.joined(separator: ", "))"
        switch propagation.outcome {
        case .notOrigin: return "propagate: nothing: the item came from another node and relay is false"
        case .noHopsLeft: return "propagate: nothing: the item has no hops left"
        case .withheld, .queued:
            let peers = propagation.queued.isEmpty ? "no peer" : propagation.queued.joined(separator: ", ")
            return "propagate: \(playbook.verb("send", simulated: "not sent")) to \(peers)\(suggestion)\(withheld)"
        }
    }
}
