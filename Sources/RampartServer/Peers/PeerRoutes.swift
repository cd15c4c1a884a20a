import Foundation
import HTTPTypes
import Hummingbird
import RampartCore
import RampartStore
import Synchronization

/// `POST /v1/peer/events` (what peers send, authenticated by its signature, not an API key),
/// `GET /v1/peers`, and `POST /v1/peers/{name}/replay|purge`.
struct PeerRoutes {
    let pipeline: Pipeline
    let delivery: PeerDelivery
    let store: Store
    let bodies: BodyReceiver
    let maxItems: Int
    let now: @Sendable () -> Date
    let rates = RateLimiter()
    /// Peers whose sync request is being answered.
    let syncing = Exclusive()
    /// Bodies read but not yet verified: unauthenticated bodies of up to http.max_body each cost
    /// memory and a signature check per key, so there are at most `maxUnverifiedPerAddress` from
    /// one address (a slow sender holds up only its own) and `maxUnverified` in all.
    let unverified = Gate()
    static let maxUnverified = 16
    static let maxUnverifiedPerAddress = 2

    /// What is being verified, in all and by client address.
    final class Gate: Sendable {
        private let counts = Mutex<(total: Int, byAddress: [String: Int])>((0, [:]))

        /// Enters when both limits allow; `leave(address)` once done.
        func enter(_ address: String) -> Bool {
            counts.withLock { counts in
                guard counts.total < PeerRoutes.maxUnverified, counts.byAddress[address, default: 0] < PeerRoutes.maxUnverifiedPerAddress else {
                    return false
                }
                counts.total += 1
                counts.byAddress[address, default: 0] += 1
                return true
            }
        }

        func leave(_ address: String) {
            counts.withLock { counts in
                counts.total -= 1
                counts.byAddress[address, default: 1] -= 1
                if counts.byAddress[address] == 0 { counts.byAddress[address] = nil }
            }
        }
    }

    /// Names, each held by one task at a time.
    final class Exclusive: Sendable {
        private let held = Mutex<Set<String>>([])

        /// Whether `name` was free (it is now held until `leave`).
        func enter(_ name: String) -> Bool { held.withLock { $0.insert(name).inserted } }
        func leave(_ name: String) { _ = held.withLock { $0.remove(name) } }
    }

    func register(on router: Router<RampartRequestContext>) {
        router.post("/v1/peer/events") { request, context in try await receive(request, context) }
        router.get("/v1/peers") { request, context in try await list(request, context) }
        router.post("/v1/peers/:name/replay") { request, context in try await replay(request, context) }
        router.post("/v1/peers/:name/purge") { request, context in try await purge(request, context) }
    }

    func receive(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let at = now()
        let id = request.headers[HTTPField.Name("webhook-id")!]
        let (timestamp, signature) = (request.headers[HTTPField.Name("webhook-timestamp")!], request.headers[HTTPField.Name("webhook-signature")!])
        func refuse(_ error: WebhookSignature.Failure) -> Problem {
            let (code, detail) = PeerRoutes.explain(error)
            pipeline.metrics.count(.peerRequestsRefused, ["reason": code.rawValue])
            return Problem(.unauthorized, code: code, detail: detail)
        }
        // Headers first: a request they refuse costs no body.
        do throws(WebhookSignature.Failure) {
            try WebhookSignature.checkHeaders(id: id, timestamp: timestamp, signature: signature, now: at)
        } catch {
            throw refuse(error)
        }
        let address = context.remoteAddress?.ipAddress ?? ""
        guard unverified.enter(address) else {
            pipeline.metrics.count(.peerRequestsRefused, ["reason": "busy"])
            throw Problem(
                .serviceUnavailable, code: "busy", detail: "too many requests from this address (or in all) are being verified; retry in a second",
                headers: [.retryAfter: "1"])
        }
        let body: [UInt8]
        let peer: Peer
        do {
            defer { unverified.leave(address) }
            body = Array(try await bodies.receive(request, context).readableBytesView)
            do throws(WebhookSignature.Failure) {
                peer = try PeerRoutes.sender(of: body, id: id, timestamp: timestamp, signature: signature, peers: pipeline.peers, now: at)
            } catch {
                throw refuse(error)
            }
        }
        if peer.hasExpired(at: at) {
            pipeline.metrics.count(.peerRequestsRefused, ["reason": "peer_expired"])
            throw Problem(.forbidden, code: "peer_expired", detail: "this node's entry for \(peer.name) expired; nothing from it is accepted")
        }
        let json: JSONValue
        do throws(ValueError) {
            json = try JSONValue.parse(body, maxDepth: 16)
        } catch {
            pipeline.metrics.count(.peerRequestsRefused, ["reason": "invalid_body"])
            throw Problem.badRequest("invalid_body", error.message)
        }
        if case .string(PeerSync.type)? = json["type"] { return try await answerSync(json, from: peer, webhookID: id ?? "", at: at) }
        let message: PeerMessage
        do throws(ValueError) {
            message = try PeerMessage.decode(json: json, via: peer.via, maxItems: maxItems, maxRuleBytes: pipeline.limits.maxRuleBytes, now: at)
            guard message.sender == peer.nodeID else {
                throw ValueError(.invalidField, "'data.path' must end with the sender's node id, \(peer.nodeID)")
            }
        } catch {
            pipeline.metrics.count(.peerRequestsRefused, ["reason": "invalid_body"])
            throw Problem.badRequest("invalid_body", error.message)
        }
        if let rate = peer.accept.rate, let wait = rates.take(message.entries.count, from: peer.name, rate: rate, now: at) {
            pipeline.metrics.count(.peerRequestsRefused, ["reason": "rate_limited"])
            throw Problem(
                .tooManyRequests, code: "rate_limited", detail: "\(peer.name) may send \(rate.count) items per \(rate.per.text) (accept.rate)",
                headers: [.retryAfter: String(max(1, Int((wait + 0.999).rounded(.down))))]
            )
        }
        let received: Pipeline.Received
        do {
            received = try await pipeline.receive(message, webhookID: id ?? "", from: peer)
        } catch is Pipeline.Replayed {
            pipeline.metrics.count(.peerRequestsRefused, ["reason": "replayed"])
            throw Problem(.conflict, code: "replayed", detail: "a request with webhook-id \(id ?? "") was already accepted; nothing was applied")
        }
        delivery.noteReceived(from: peer.name, received)
        var w = JSONWriter(capacity: 128)
        w.beginObject()
        w.field("accepted", received.accepted)
        w.field("duplicates", received.duplicates)
        w.field("revocations", received.revocations)
        w.key("refused")
        w.beginArray()
        for error in received.refused { error.write(to: &w) }
        w.endArray()
        w.endObject()
        return Response.json(.ok, w)
    }

    /// A peer's sync request (`PeerSync`): the buckets whose digests differ from what this node
    /// took from it, or which of the entries it lists this node lacks. One at a time per peer.
    func answerSync(_ json: JSONValue, from peer: Peer, webhookID: String, at: Date) async throws -> Response {
        let request: PeerSync.Request
        do throws(ValueError) {
            request = try PeerSync.decode(json, node: peer.nodeID)
        } catch {
            pipeline.metrics.count(.peerRequestsRefused, ["reason": "invalid_body"])
            throw Problem.badRequest("invalid_body", error.message)
        }
        guard syncing.enter(peer.name) else {
            throw Problem(.serviceUnavailable, code: "busy", detail: "a sync from \(peer.name) is being answered", headers: [.retryAfter: "1"])
        }
        defer { syncing.leave(peer.name) }
        // A replayed sync request is refused as a replayed delivery is.
        @Sendable func record(_ tx: inout StoreTransaction) throws {
            guard try tx.recordPeerMessage(id: webhookID, peer: peer.name, at: at) else { throw Pipeline.Replayed() }
        }
        do {
            switch request {
            case .digests(let theirs, let reciprocate):
                try await store.write(record)
                if reciprocate { delivery.syncRequested(by: peer.name) }
                let mine = PeerSync.digests(try await store.receivedEntries(from: peer.name))
                return Response.json(.ok, PeerSync.answer(differing: PeerSync.differing(theirs, mine)))
            case .entries(let buckets, let ids):
                let missing = try await store.write { tx in
                    try record(&tx)
                    return try tx.reconcileReceived(from: peer.name, buckets: buckets, listed: ids, at: at)
                }
                return Response.json(.ok, PeerSync.answer(missing: missing))
            }
        } catch is Pipeline.Replayed {
            pipeline.metrics.count(.peerRequestsRefused, ["reason": "replayed"])
            throw Problem(.conflict, code: "replayed", detail: "a request with webhook-id \(webhookID) was already answered")
        }
    }

    /// The configured peer whose key or secret signed the request (signatures are checked with
    /// each peer's in turn; an unknown sender matches none).
    static func sender(
        of body: [UInt8], id: String?, timestamp: String?, signature: String?, peers: [Peer], now: Date
    ) throws(WebhookSignature.Failure) -> Peer {
        for peer in peers {
            do throws(WebhookSignature.Failure) {
                try WebhookSignature.verify(
                    id: id, timestamp: timestamp, signature: signature, body: body, now: now, publicKeys: peer.publicKeys,
                    secrets: peer.secret.map { [$0] } ?? []
                )
                return peer
            } catch .noValidSignature {
                continue
            }
        }
        // No peer matched: the headers' own problems first, then "nobody we know signed this".
        try WebhookSignature.verify(id: id, timestamp: timestamp, signature: signature, body: body, now: now, publicKeys: [], secrets: [])
        throw .noValidSignature
    }

    static func explain(_ failure: WebhookSignature.Failure) -> (ErrorCode, String) {
        switch failure {
        case .missingHeaders: ("missing_signature", "webhook-id, webhook-timestamp and webhook-signature headers are required")
        case .badTimestamp: ("bad_timestamp", "webhook-timestamp must be seconds since 1970")
        case .outsideTolerance: ("stale_timestamp", "webhook-timestamp is more than 5 minutes from this node's clock")
        case .noValidSignature: ("bad_signature", "no signature matches a configured peer's key or secret")
        case .tooManySignatures: ("bad_signature", "webhook-signature holds more than \(WebhookSignature.maxEntries) signatures")
        }
    }

    func list(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        _ = try context.require(.read)
        let at = now()
        let outboxes = try await store.outboxStatus()
        var w = JSONWriter(capacity: 1024)
        w.beginObject()
        w.key("peers")
        w.beginArray()
        for state in delivery.snapshot() {
            guard let peer = state.destination.peer else { continue }
            let outbox = outboxes[peer.name] ?? OutboxStatus()
            w.beginObject()
            w.field("name", peer.name)
            w.field("node_id", peer.nodeID)
            w.field("url", peer.url)
            if let expires = peer.expires { w.field("expires", expires) }
            w.field("expired", peer.hasExpired(at: at))
            // Reachable: the last attempt got a 2xx; null before any attempt.
            w.key("reachable")
            if let attempt = state.lastAttempt { w.value(state.lastSuccess == attempt) } else { w.null() }
            w.field("disabled", outbox.disabledAt != nil)
            if let reason = outbox.disabledReason { w.field("disabled_reason", reason) }
            w.field("queue_depth", outbox.pending)
            w.key("oldest_undelivered_seconds")
            if let oldest = outbox.oldestPending { w.value(Int(at.timeIntervalSince(oldest))) } else { w.null() }
            w.field("dead_letters", outbox.dead)
            if let success = state.lastSuccess { w.field("last_success", success) }
            if let attempt = state.lastAttempt { w.field("last_attempt", attempt) }
            if let error = state.lastError { w.field("last_error", error) }
            w.field("sent", state.sent)
            w.field("received", state.received)
            w.field("accepted", state.accepted)
            w.field("refused", state.refused)
            w.field("refused_by_peer", outbox.refused)
            // Anti-entropy: the last sync that completed, what it queued again, and any error since.
            if let sync = state.lastSync { w.field("last_sync", sync) }
            w.field("last_sync_repaired", state.lastSyncRepaired)
            if let error = state.lastSyncError { w.field("last_sync_error", error) }
            w.field("repaired", state.repaired)
            w.endObject()
        }
        w.endArray()
        w.endObject()
        return Response.json(.ok, w)
    }

    func replay(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let key = try context.require(.admin)
        let peer = try configuredPeer(context)
        let at = now()
        let delivery = delivery
        let requeued = try await store.write { tx in
            let requeued = try tx.replay(peer: peer.name, by: "api:\(key.name)", at: at)
            delivery.enable(peer.name)
            return requeued
        }
        var w = JSONWriter()
        w.beginObject()
        w.field("peer", peer.name)
        w.field("requeued", requeued)
        w.endObject()
        return Response.json(.ok, w)
    }

    func purge(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let key = try context.require(.admin)
        let peer = try configuredPeer(context)
        let (revoked, removed) = try await pipeline.purge(peer: peer, by: "api:\(key.name)")
        let at = now()
        var w = JSONWriter(capacity: 256 + revoked.count * 256)
        w.beginObject()
        w.field("peer", peer.name)
        w.key("revoked")
        w.beginArray()
        for decision in revoked { decision.write(to: &w, now: at) }
        w.endArray()
        w.field("rules_removed", removed.map(\.relativePath))
        w.endObject()
        return Response.json(.ok, w)
    }

    private func configuredPeer(_ context: RampartRequestContext) throws -> Peer {
        let name = try context.parameters.require("name")
        guard let peer = pipeline.peers.first(where: { $0.name == name }) else {
            throw Problem.notFound("no peer named \(name) in the configuration")
        }
        return peer
    }
}

/// Token buckets, one per peer, for `accept.rate`.
final class RateLimiter: Sendable {
    private let buckets = Mutex<[String: (tokens: Double, at: Date)]>([:])

    /// Takes `count` tokens; returns nil when allowed, or how many seconds to wait. A request larger
    /// than the whole bucket goes when the bucket is full, leaving it in debt.
    func take(_ count: Int, from peer: String, rate: (count: Int, per: Duration), now: Date) -> Double? {
        let capacity = Double(rate.count)
        let perSecond = capacity / (Double(rate.per.milliseconds) / 1000)
        return buckets.withLock { buckets in
            var bucket = buckets[peer] ?? (capacity, now)
            bucket.tokens = min(capacity, bucket.tokens + max(0, now.timeIntervalSince(bucket.at)) * perSecond)
            bucket.at = now
            let needed = min(Double(count), capacity)
            guard bucket.tokens >= needed else {
                buckets[peer] = bucket
                return (needed - bucket.tokens) / perSecond
            }
            bucket.tokens -= Double(count)
            buckets[peer] = bucket
            return nil
        }
    }
}
