import Foundation
import RampartCore
import RampartStore

extension ValueError.Code {
    static let notAccepted = ValueError.Code(rawValue: "not_accepted")
    static let lowConfidence = ValueError.Code(rawValue: "low_confidence")
    static let loop = ValueError.Code(rawValue: "loop")
}

/// Items between peers: what a peer sends runs through its trust policy and the local playbooks;
/// `propagate` queues items for peers, and revocations follow the items they withdraw.
extension Pipeline {
    /// What a peer's request did.
    public struct Received: Sendable {
        /// Items stored and run through the playbooks.
        public var accepted = 0
        /// Items stored before (a redelivery): no second effect.
        public var duplicates = 0
        public var revocations = 0
        public var refused: [Problem.ItemError] = []
        public var suggestionsDropped = 0
    }

    /// The request's `webhook-id` was seen before.
    public struct Replayed: Error {}

    /// Checks a peer's entries against its trust policy, runs the accepted items through the
    /// playbooks, and commits them with the request's id (a replay of that id is refused with
    /// nothing applied). Returns once all of it is durable.
    func receive(_ message: PeerMessage, webhookID: String, from peer: Peer) async throws -> Received {
        let at = now()
        let inForce = current
        let context = context(via: peer.via, positionName: "index", inForce: inForce, at: at, maxBlock: peer.accept.maxDuration)
        var received = Received()
        var chunk: [Prepared] = []
        var counted = Tally()
        let loop = message.path.contains(nodeID)
        for (index, entry) in message.entries.enumerated() {
            let checked = entry.flatMap { entry in
                loop
                    ? .failure(ValueError(.loop, "this node (\(nodeID)) is already in the path \(message.path.joined(separator: " > "))"))
                    : trust(entry, from: peer)
            }
            switch checked {
            case .failure(let error):
                chunk.append(.refused(position: index, error, raw: (try? entry.get())?.id))
                received.refused.append(Problem.ItemError(positionName: "index", position: index, code: error.code.rawValue, message: error.message))
                counted.add(.peerItems, ["peer": peer.name, "outcome": "refused"])
            case .success(.item(let item)):
                if case .item(let sent)? = try? entry.get() { received.suggestionsDropped += sent.suggested.count - item.suggested.count }
                chunk.append(.accepted(item, inForce.playbooks, context.planning))
            case .success(.revocation(let revocation)):
                chunk.append(.revocation(revocation, path: message.path))
                received.revocations += 1
            }
        }
        let candidates = chunk.count { if case .accepted = $0 { true } else { false } }
        let (summary, entries) = (received, chunk)
        let effects = try await store.write { tx in
            guard try tx.recordPeerMessage(id: webhookID, peer: peer.name, at: at) else { throw Replayed() }
            let effects = try Pipeline.commit(entries, context: context, in: &tx)
            try tx.audit(.peerReceived, subject: peer.name, at: at) { w in
                w.field("webhook_id", webhookID)
                w.field("path", message.path)
                w.field("entries", message.entries.count)
                w.field("accepted", effects.stored)
                w.field("duplicates", candidates - effects.stored)
                w.field("revocations", summary.revocations)
                w.field("refused", summary.refused.count)
                w.field("suggestions_dropped", summary.suggestionsDropped)
            }
            return effects
        }
        received.accepted = effects.stored
        received.duplicates = candidates - effects.stored
        counted.add(.peerItems, ["peer": peer.name, "outcome": "accepted"], received.accepted)
        counted.add(.peerItems, ["peer": peer.name, "outcome": "duplicate"], received.duplicates)
        metrics.add(counted)
        carryOut(effects)
        return received
    }

    /// The peer's trust policy (`accept`) applied to one entry: refused, or kept with only the
    /// suggestions the policy accepts.
    func trust(_ entry: PeerMessage.Entry, from peer: Peer) -> Result<PeerMessage.Entry, ValueError> {
        let accept = peer.accept
        switch entry {
        case .item(var item):
            let (type, confidence): (TrustPolicy.ItemType, Int) =
                switch item.payload {
                case .indicator(let indicator): (.indicator, indicator.confidence)
                case .rule(let rule): (.rule, rule.confidence)
                }
            guard accept.items.contains(type) else {
                return .failure(ValueError(.notAccepted, "\(type.rawValue)s from \(peer.name) are not accepted (accept.items)"))
            }
            if confidence < accept.minConfidence {
                return .failure(
                    ValueError(.lowConfidence, "confidence \(confidence) is below \(peer.name)'s accept.min_confidence \(accept.minConfidence)"))
            }
            item.suggested = item.suggested.filter(accept.suggested.contains)
            return .success(.item(item))
        case .revocation:
            guard accept.items.contains(.revoke) else {
                return .failure(ValueError(.notAccepted, "revocations from \(peer.name) are not accepted (accept.items)"))
            }
            return .success(entry)
        }
    }

    /// Queues an item for the peers its `propagate` intent planned, and records what went where.
    static func propagate(
        _ item: Item, _ propagation: Propagation, playbook: String, at: Date, in tx: inout StoreTransaction, effects: inout Effects
    ) throws {
        for peer in propagation.queued {
            try tx.enqueue(peer: peer, item: item.id, path: propagation.path, hopsLeft: propagation.hopsLeft, suggest: propagation.suggest, at: at)
        }
        try tx.audit(.actionPropagate, subject: item.id, at: at) { w in
            w.field("playbook", playbook)
            Intent.propagate(propagation).describe(to: &w)
        }
        effects.peers.formUnion(propagation.queued)
        effects.tally.add(.actions, ["action": "propagate", "outcome": propagation.outcome.rawValue])
    }

    /// A peer withdraws an item it sent: the decisions that item caused are revoked, and the
    /// peers this node passed the item to hear of it. Only the peer an item came from may withdraw it.
    static func applyRevocation(
        _ revocation: PeerMessage.Revocation, path: [String], context: Context, in tx: inout StoreTransaction, effects: inout Effects
    ) throws {
        let via = try tx.via(ofItem: revocation.item)
        guard via == context.via else {
            try tx.audit(.revocationRefused, subject: revocation.item, at: context.at) { w in
                w.field("via", context.via)
                w.field("reason", via == nil ? "no such item here" : "the item did not come from this peer")
            }
            effects.tally.add(.revocations, ["outcome": "refused"])
            return
        }
        let (_, kept) = try tx.revokeDecisions(causedBy: revocation.item, reason: revocation.reason, by: context.via, now: context.at)
        effects.removedRules += try tx.uninstallRules(ofItem: revocation.item, reason: revocation.reason, by: context.via, now: context.at)
        if !kept.isEmpty {
            try tx.audit(.revocationKept, subject: revocation.item, at: context.at) { w in
                w.field("via", context.via)
                w.field("decisions", kept)
                w.field("reason", "other items or requests support these decisions too")
            }
        }
        effects.tally.add(.revocations, ["outcome": "applied"])
        try forwardRevocation(
            of: revocation.item, reason: revocation.reason, path: path + [context.nodeID], peers: context.peers,
            at: context.at, in: &tx, effects: &effects
        )
    }

    /// Queues a revocation of `item` for every peer it was queued for or sent to, except those in `path`.
    static func forwardRevocation(
        of item: String, reason: String, path: [String], peers: [Peer], at: Date, in tx: inout StoreTransaction,
        effects: inout Effects
    ) throws {
        for name in try tx.recipients(of: item) {
            if let peer = peers.first(where: { $0.name == name }), path.contains(peer.nodeID) { continue }
            let revocation = PeerMessage.Revocation(id: IDGenerator.shared.next(), item: item, reason: reason)
            try tx.enqueue(peer: name, item: item, body: revocation.json, path: path, hopsLeft: 0, suggest: [], at: at)
            effects.peers.insert(name)
        }
    }

    /// What decisions revoked here cause besides their elements leaving the firewall (which the
    /// store hands to the enforcer): the peers that got the items behind them hear of it.
    static func revoked(
        _ decisions: [Decision], reason: String, nodeID: String, peers: [Peer], at: Date, in tx: inout StoreTransaction
    ) throws -> Effects {
        var effects = Effects()
        for decision in decisions {
            guard let item = decision.item else { continue }
            try forwardRevocation(of: item, reason: reason, path: [nodeID], peers: peers, at: at, in: &tx, effects: &effects)
        }
        return effects
    }

    /// Revokes decisions (by id or value) and sends the revocation to every peer that got the
    /// items behind them. Returns the decisions revoked, once durable.
    func revoke(id: String?, value: String?, reason: String, by: String) async throws -> [Decision] {
        let (at, peers, nodeID) = (now(), peers, nodeID)
        let (revoked, effects) = try await store.write { tx in
            let revoked = try tx.revoke(id: id, value: value, reason: reason, by: by, now: at)
            return (revoked, try Pipeline.revoked(revoked, reason: reason, nodeID: nodeID, peers: peers, at: at, in: &tx))
        }
        carryOut(effects)
        return revoked
    }

    /// `rampart peers purge NAME`: revokes every decision that an item from the peer caused, and
    /// removes the rules its items installed.
    func purge(peer: Peer, by: String) async throws -> (revoked: [Decision], removed: [RuleFile]) {
        let (at, peers, nodeID) = (now(), peers, nodeID)
        let reason = "purge of what \(peer.name) sent, by \(by)"
        let (revoked, effects) = try await store.write { tx in
            let revoked = try tx.revokeDecisions(from: peer.via, reason: reason, by: by, now: at)
            var effects = try Pipeline.revoked(revoked, reason: reason, nodeID: nodeID, peers: peers, at: at, in: &tx)
            effects.removedRules = try tx.uninstallRules(from: peer.via, reason: reason, by: by, now: at)
            try tx.audit(.peerPurged, subject: peer.name, at: at) { w in
                w.field("by", by)
                w.field("revoked", revoked.count)
                w.field("rules_removed", effects.removedRules.count)
            }
            return (revoked, effects)
        }
        carryOut(effects)
        return (revoked, effects.removedRules)
    }

    /// Withdraws a rule item: removes what it installed here and sends the revocation to every
    /// peer that got it. Nil when no such rule item is stored.
    func revokeRule(item: String, reason: String, by: String) async throws -> [RuleFile]? {
        let (at, peers, nodeID) = (now(), peers, nodeID)
        guard
            let (removed, effects) = try await store.write({ tx -> ([RuleFile], Effects)? in
                guard try tx.itemType(of: item) == "rule" else { return nil }
                var effects = Effects()
                effects.removedRules = try tx.uninstallRules(ofItem: item, reason: reason, by: by, now: at)
                try tx.audit(.ruleRevoked, subject: item, at: at) { w in
                    w.field("by", by)
                    w.field("reason", reason)
                    w.field("removed", effects.removedRules.map(\.relativePath))
                }
                try Pipeline.forwardRevocation(of: item, reason: reason, path: [nodeID], peers: peers, at: at, in: &tx, effects: &effects)
                return (effects.removedRules, effects)
            })
        else { return nil }
        carryOut(effects)
        return removed
    }
}
