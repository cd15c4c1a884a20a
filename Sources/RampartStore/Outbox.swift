import Foundation
import GRDB
import RampartCore

/// One row of an outbox: an item (or a revocation, or a notification) waiting to go, with its route.
public struct OutboxEntry: Sendable {
    public let seq: Int64
    /// The item sent, or the item a revocation withdraws.
    public let item: String
    /// What was made when the entry was queued, sent as it is: a revocation's JSON, or a
    /// notification's whole request body; nil for an item.
    public let body: [UInt8]?
    /// The item's stored JSON (nil for a revocation).
    public let storedItem: [UInt8]?
    /// Origin first, this node last.
    public let path: [String]
    public let hopsLeft: Int
    public let suggest: [String]
    public let createdAt: Date

    public init(
        seq: Int64, item: String, body: [UInt8]?, storedItem: [UInt8]?, path: [String], hopsLeft: Int, suggest: [String], createdAt: Date
    ) {
        self.seq = seq
        self.item = item
        self.body = body
        self.storedItem = storedItem
        self.path = path
        self.hopsLeft = hopsLeft
        self.suggest = suggest
        self.createdAt = createdAt
    }

    /// A list column (`path`, `suggest`): a JSON array of strings.
    static func list(_ values: [String]) -> [UInt8] {
        var w = JSONWriter(capacity: 16 * values.count + 2)
        w.beginArray()
        for value in values { w.value(value) }
        w.endArray()
        return w.bytes
    }

    static func list(_ text: String) -> [String] {
        guard case .array(let values)? = try? JSONValue.parse(Array(text.utf8)) else { return [] }
        return values.compactMap { if case .string(let s) = $0 { s } else { nil } }
    }
}

/// What the store knows of a peer's outbox, for `GET /v1/peers`.
public struct OutboxStatus: Sendable {
    public var pending = 0
    public var oldestPending: Date?
    public var dead = 0
    /// Entries the peer took but refused.
    public var refused = 0
    public var disabledAt: Date?
    public var disabledReason: String?

    public init() {}
}

extension StoreTransaction {
    /// Queues an item (or a revocation, or a notification) for a peer (or a notify URL).
    public mutating func enqueue(
        peer: String, item: String, body: [UInt8]? = nil, path: [String], hopsLeft: Int, suggest: [String], at now: Date
    ) throws {
        // Bound through the C API: a propagating feed queues one row per item and peer.
        let statement = try cached(
            "INSERT INTO outbox(peer, item, body, path, hops_left, suggest, state, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)"
        )
        var binder = Binder(statement)
        binder.bind(peer)
        binder.bind(item)
        if let body { binder.bind(blob: body) } else { binder.bind(nil as String?) }
        binder.bind(text: OutboxEntry.list(path))
        binder.bind(Int64(hopsLeft))
        binder.bind(text: OutboxEntry.list(suggest))
        binder.bind(now.milliseconds)
        try binder.step(db)
    }

    /// The peers an item was queued for or sent to (not withheld or refused): those that must
    /// hear of its revocation. Dead-lettered ones too: the peer may have taken the item although
    /// no answer said so, and anti-entropy may send the item again.
    public func recipients(of item: String) throws -> [String] {
        try String.fetchAll(
            cached("SELECT DISTINCT peer FROM outbox WHERE item = ? AND body IS NULL AND state IN ('pending', 'delivered', 'dead')"),
            arguments: [item]
        )
    }

    /// A stored item's type (`indicator`, `rule`), or nil when no such item is stored.
    public func itemType(of id: String) throws -> String? {
        try String.fetchOne(
            cached("SELECT json_extract(audit.detail, '$.type') FROM item JOIN audit ON audit.seq = item.audit_seq WHERE item.id = ?"),
            arguments: [id]
        )
    }

    /// Where a stored item came from (`api:KEY`, `peer:NAME`), or nil when no such item is stored.
    public func via(ofItem id: String) throws -> String? {
        try String.fetchOne(cached("SELECT via FROM item WHERE id = ?"), arguments: [id])
    }

    /// Records a request's `webhook-id`; false when it was seen before (a replay).
    public mutating func recordPeerMessage(id: String, peer: String, at now: Date) throws -> Bool {
        try execute("INSERT OR IGNORE INTO peer_message(id, peer, at) VALUES (?, ?, ?)", [id, peer, now.milliseconds])
        return db.changesCount == 1
    }

    /// Forgets request ids older than `date` (a replay that old is refused for its timestamp).
    public mutating func prunePeerMessages(before date: Date) throws {
        try execute("DELETE FROM peer_message WHERE at < ?", [date.milliseconds])
    }

    /// Withdraws an item: it no longer supports the decisions it created or merged into, and those
    /// that nothing else supports any more are revoked. What supports a decision: the item that
    /// created it, each item that merged into it, and requests without an item (a manual block)
    /// that merged into it; a decision no item created (a manual or OpenC2 block) stays.
    /// TAXII collections then serve the item's revoked version, unless `exported` is false (a newer
    /// version of the same STIX object takes its place). Returns the decisions revoked, and the
    /// ids of those kept.
    public mutating func withdraw(
        item: String, reason: String, by: String, now: Date, exported: Bool = true
    ) throws -> (revoked: [Decision], kept: [String]) {
        guard let row = try Row.fetchOne(cached("SELECT audit_seq, revoked_at FROM item WHERE id = ?"), arguments: [item]) else { return ([], []) }
        let seq: Int64 = row[0]
        if row[1] == nil {
            try execute("UPDATE item SET revoked_at = ? WHERE id = ?", [now.milliseconds, item])
            if exported, let json = try String.fetchOne(cached("SELECT detail FROM audit WHERE seq = ?"), arguments: [seq]),
                let stored = try? Item(stored: JSONValue.parse(Array(json.utf8)), now: .distantPast)
            {
                try export(stored, revoked: true, at: now)
            }
        }
        let candidates = try String.fetchAll(
            cached("SELECT id FROM decision WHERE state = 'active' AND (item = ?1 OR id IN (SELECT ref FROM audit_ref WHERE seq = ?2))"),
            arguments: [item, seq])
        var revoked: [Decision] = []
        var kept: [String] = []
        for id in candidates {
            let supported =
                try Bool.fetchOne(
                    cached(
                        """
                        SELECT d.item IS NULL OR EXISTS (SELECT 1 FROM item WHERE item.id = d.item AND item.revoked_at IS NULL)
                            OR EXISTS (SELECT 1 FROM audit_ref r JOIN audit a ON a.seq = r.seq JOIN item i ON i.id = a.subject
                                       WHERE r.ref = d.id AND i.revoked_at IS NULL)
                            OR d.corroborations > (SELECT count(*) FROM audit_ref r WHERE r.ref = d.id)
                        FROM decision d WHERE d.id = ?
                        """), arguments: [id]) ?? false
            if supported { kept.append(id) } else { revoked += try revoke(id: id, reason: reason, by: by, now: now) }
        }
        return (revoked, kept)
    }

    /// Revokes every active decision caused by an item that came from `via` (`peer:NAME`).
    public mutating func revokeDecisions(from via: String, reason: String, by: String, now: Date) throws -> [Decision] {
        var revoked: [Decision] = []
        let ids = try String.fetchAll(
            cached("SELECT decision.id FROM decision JOIN item ON item.id = decision.item WHERE decision.state = 'active' AND item.via = ?"),
            arguments: [via]
        )
        for id in ids { revoked += try revoke(id: id, reason: reason, by: by, now: now) }
        return revoked
    }

    // MARK: Delivery

    /// The entries a peer acknowledged.
    public mutating func markDelivered(peer: String, seqs: [Int64], webhookID: String, at now: Date) throws {
        guard !seqs.isEmpty else { return }
        try execute(
            "UPDATE outbox SET state = 'delivered', done_at = ?, attempts = attempts + 1 WHERE seq IN (SELECT value FROM json_each(?))",
            [now.milliseconds, Self.jsonArray(seqs)]
        )
        try audit(.peerDelivered, subject: peer, at: now) { w in
            w.field("webhook_id", webhookID)
            w.field("entries", seqs.count)
            w.key("first_seq")
            w.value(seqs[0])
            w.key("last_seq")
            w.value(seqs[seqs.count - 1])
        }
    }

    /// `seqs` as one JSON array argument: a statement whose text held the list would be prepared and
    /// cached anew for every batch, and the statement cache would grow without bound.
    static func jsonArray(_ seqs: [Int64]) -> String {
        "[" + seqs.map(String.init).joined(separator: ",") + "]"
    }

    /// A failed attempt: entries created before `deadBefore` go to the dead-letter state, the
    /// others stay pending. Returns how many were dead-lettered.
    @discardableResult
    public mutating func markFailed(peer: String, seqs: [Int64], error: String, deadBefore: Date, at now: Date) throws -> Int {
        guard !seqs.isEmpty else { return 0 }
        let list = Self.jsonArray(seqs)
        try execute("UPDATE outbox SET attempts = attempts + 1, error = ? WHERE seq IN (SELECT value FROM json_each(?))", [error, list])
        try execute(
            "UPDATE outbox SET state = 'dead', done_at = ? WHERE seq IN (SELECT value FROM json_each(?)) AND created_at < ?",
            [now.milliseconds, list, deadBefore.milliseconds]
        )
        let dead = db.changesCount
        try audit(.peerDeliveryFailed, subject: peer, at: now) { w in
            w.field("error", error)
            w.field("entries", seqs.count)
            w.field("dead_lettered", dead)
        }
        return dead
    }

    /// An entry the sharing policy (or the peer's expiry) no longer lets go.
    public mutating func markWithheld(peer: String, seq: Int64, item: String, code: String, reason: String, at now: Date) throws {
        try execute("UPDATE outbox SET state = 'withheld', done_at = ?, error = ? WHERE seq = ?", [now.milliseconds, reason, seq])
        try audit(.peerWithheld, subject: item, at: now) { w in
            w.field("peer", peer)
            w.field("code", code)
            w.field("reason", reason)
        }
    }

    /// The peer took the request but refused this entry (its answer's `refused` list): the entry
    /// is done, and the refusal is recorded rather than passed off as a delivery.
    public mutating func markRefused(peer: String, seq: Int64, item: String, code: String, message: String, at now: Date) throws {
        try execute(
            "UPDATE outbox SET state = 'refused', done_at = ?, attempts = attempts + 1, error = ? WHERE seq = ?",
            [now.milliseconds, "\(code): \(message)", seq])
        try audit(.peerRefused, subject: item, at: now) { w in
            w.field("peer", peer)
            w.field("code", code)
            w.field("error", message)
        }
    }

    /// The peer answered 410 Gone: nothing more is sent until a replay.
    public mutating func disablePeer(_ peer: String, reason: String, at now: Date) throws {
        try execute(
            "INSERT OR REPLACE INTO peer_state(name, disabled_at, disabled_reason) VALUES (?, ?, ?)", [peer, now.milliseconds, reason]
        )
        try audit(.peerDisabled, subject: peer, at: now) { $0.field("reason", reason) }
    }

    /// Dead-lettered entries go back to pending, and a disabled peer is enabled. Returns how many
    /// entries were requeued.
    public mutating func replay(peer: String, by: String, at now: Date) throws -> Int {
        try execute("UPDATE outbox SET state = 'pending', attempts = 0, done_at = NULL WHERE peer = ? AND state = 'dead'", [peer])
        let requeued = db.changesCount
        try execute("DELETE FROM peer_state WHERE name = ?", [peer])
        try audit(.peerReplayed, subject: peer, at: now) { w in
            w.field("by", by)
            w.field("requeued", requeued)
        }
        return requeued
    }
}

extension Store {
    /// The oldest pending entries of a peer's outbox (after `after`, when given), with the items' stored JSON.
    public func pendingOutbox(peer: String, after: Int64? = nil, limit: Int) async throws -> [OutboxEntry] {
        try await pool.read { db in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT outbox.seq, outbox.item, outbox.body, outbox.path, outbox.hops_left, outbox.suggest, outbox.created_at, audit.detail
                    FROM outbox LEFT JOIN item ON outbox.body IS NULL AND item.id = outbox.item LEFT JOIN audit ON audit.seq = item.audit_seq
                    WHERE outbox.peer = ? AND outbox.state = 'pending' AND outbox.seq > ? ORDER BY outbox.seq LIMIT ?
                    """,
                arguments: [peer, after ?? 0, limit]
            )
            var entries: [OutboxEntry] = []
            while let row = try rows.next() {
                let (path, suggest) = (OutboxEntry.list(row[3] as String), OutboxEntry.list(row[5] as String))
                let body = row[2] as Data?
                let detail = row[7] as String?
                entries.append(
                    OutboxEntry(
                        seq: row[0], item: row[1], body: body.map { Array($0) }, storedItem: detail.map { Array($0.utf8) },
                        path: path, hopsLeft: row[4], suggest: suggest, createdAt: Date(milliseconds: row[6])
                    )
                )
            }
            return entries
        }
    }

    /// Each peer's outbox (pending and dead-lettered entries) and whether it is disabled.
    public func outboxStatus() async throws -> [String: OutboxStatus] {
        try await pool.read { db in
            var status: [String: OutboxStatus] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT peer, COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending' GROUP BY peer") {
                status[row[0], default: OutboxStatus()].pending = row[1]
                status[row[0], default: OutboxStatus()].oldestPending = (row[2] as Int64?).map(Date.init(milliseconds:))
            }
            for row in try Row.fetchAll(db, sql: "SELECT peer, COUNT(*) FROM outbox WHERE state = 'dead' GROUP BY peer") {
                status[row[0], default: OutboxStatus()].dead = row[1]
            }
            for row in try Row.fetchAll(db, sql: "SELECT peer, COUNT(*) FROM outbox WHERE state = 'refused' GROUP BY peer") {
                status[row[0], default: OutboxStatus()].refused = row[1]
            }
            for row in try Row.fetchAll(db, sql: "SELECT name, disabled_at, disabled_reason FROM peer_state") {
                status[row[0], default: OutboxStatus()].disabledAt = (row[1] as Int64?).map(Date.init(milliseconds:))
                status[row[0], default: OutboxStatus()].disabledReason = row[2]
            }
            return status
        }
    }
}
