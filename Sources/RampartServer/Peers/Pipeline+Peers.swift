import Foundation
import RampartCore
import RampartStore

extension ValueError.Code {
    static let notAccepted = ErrorCode("not_accepted")
    static let lowConfidence = ErrorCode("low_confidence")
    static let loop = ErrorCode("loop")
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
        var chunk: [Planned] = []
        var taken: [String] = []
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
                received.refused.append(Problem.ItemError(positionName: "index", position: index, code: error.code, message: error.message))
                counted.add(.peerItems, ["peer": peer.name, "outcome": "refused"])
            case .success(.item(let item)):
                if case .item(let sent)? = try? entry.get() { received.suggestionsDropped += sent.suggested.count - item.suggested.count }
                chunk.append(.accepted(item, inForce.playbooks, context.planning))
                taken.append(item.id)
            case .success(.revocation(let revocation)):
                chunk.append(.revocation(revocation, path: message.path))
                received.revocations += 1
                taken.append(revocation.id)
            }
        }
        let candidates = chunk.count { if case .accepted = $0 { true } else { false } }
        let (summary, entries, takenIDs) = (received, chunk, taken)
        let outcomes = try await store.write { tx in
            guard try tx.recordPeerMessage(id: webhookID, peer: peer.name, at: at) else { throw Replayed() }
            // What anti-entropy compares with what the peer queued (duplicates too: taken is taken).
            try tx.recordReceived(from: peer.name, entries: takenIDs, at: at)
            let outcomes = try tx.apply(entries, in: context)
            try tx.audit(.peerReceived, subject: peer.name, at: at) { w in
                w.field("webhook_id", webhookID)
                w.field("path", message.path)
                w.field("entries", message.entries.count)
                w.field("accepted", outcomes.stored)
                w.field("duplicates", candidates - outcomes.stored)
                w.field("revocations", summary.revocations)
                w.field("refused", summary.refused.count)
                w.field("suggestions_dropped", summary.suggestionsDropped)
            }
            return outcomes
        }
        received.accepted = outcomes.stored
        received.duplicates = candidates - outcomes.stored
        counted.add(.peerItems, ["peer": peer.name, "outcome": "accepted"], received.accepted)
        counted.add(.peerItems, ["peer": peer.name, "outcome": "duplicate"], received.duplicates)
        metrics.add(counted)
        await carryOut(outcomes)
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

    /// Revokes decisions (by id or value) and sends the revocation to every peer that got the
    /// items behind them. Returns the decisions revoked, once durable.
    func revoke(id: String?, value: String?, reason: String, by: String) async throws -> [Decision] {
        let (at, peers, nodeID) = (now(), peers, nodeID)
        let (revoked, outcomes) = try await store.write { tx in
            let revoked = try tx.revoke(id: id, value: value, reason: reason, by: by, now: at)
            return (revoked, try tx.forwardRevocations(of: revoked, reason: reason, nodeID: nodeID, peers: peers, at: at))
        }
        await carryOut(outcomes)
        return revoked
    }

    /// `rampart peers purge NAME`: revokes every decision that an item from the peer caused, and
    /// removes the rules its items installed.
    func purge(peer: Peer, by: String) async throws -> (revoked: [Decision], removed: [RuleFile]) {
        let (at, peers, nodeID) = (now(), peers, nodeID)
        let reason = "purge of what \(peer.name) sent, by \(by)"
        let (revoked, outcomes) = try await store.write { tx in
            let revoked = try tx.revokeDecisions(from: peer.via, reason: reason, by: by, now: at)
            var outcomes = try tx.forwardRevocations(of: revoked, reason: reason, nodeID: nodeID, peers: peers, at: at)
            outcomes.removedRules = try tx.uninstallRules(from: peer.via, reason: reason, by: by, now: at)
            try tx.audit(.peerPurged, subject: peer.name, at: at) { w in
                w.field("by", by)
                w.field("revoked", revoked.count)
                w.field("rules_removed", outcomes.removedRules.count)
            }
            return (revoked, outcomes)
        }
        await carryOut(outcomes)
        return (revoked, outcomes.removedRules)
    }

    /// Withdraws a rule item: removes what it installed here and sends the revocation to every
    /// peer that got it. Nil when no such rule item is stored.
    func revokeRule(item: String, reason: String, by: String) async throws -> [RuleFile]? {
        let (at, peers, nodeID) = (now(), peers, nodeID)
        guard
            let (removed, outcomes) = try await store.write({ tx -> ([RuleFile], Outcomes)? in
                guard try tx.itemType(of: item) == "rule" else { return nil }
                var outcomes = Outcomes()
                outcomes.removedRules = try tx.uninstallRules(ofItem: item, reason: reason, by: by, now: at)
                try tx.audit(.ruleRevoked, subject: item, at: at) { w in
                    w.field("by", by)
                    w.field("reason", reason)
                    w.field("removed", outcomes.removedRules.map(\.relativePath))
                }
                try tx.forwardRevocation(of: item, reason: reason, path: [nodeID], peers: peers, at: at, outcomes: &outcomes)
                return (outcomes.removedRules, outcomes)
            })
        else { return nil }
        await carryOut(outcomes)
        return removed
    }
}
