import Foundation
import GRDB
import RampartCore

/// The two sets that anti-entropy compares (`PeerSync`): what this node queued for a peer, and
/// what it took from a peer.
extension Store {
    /// The ids of the entries queued for `peer` that it should hold: items (unless withdrawn here
    /// since) and revocations, pending, delivered or dead-lettered; not those withheld or refused.
    public func queuedEntries(peer: String) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT CASE WHEN body IS NULL THEN outbox.item ELSE json_extract(CAST(body AS TEXT), '$.id') END FROM outbox
                    WHERE peer = ? AND state IN ('pending', 'delivered', 'dead')
                        AND (body IS NOT NULL OR NOT EXISTS (SELECT 1 FROM item WHERE item.id = outbox.item AND item.revoked_at IS NOT NULL))
                    """, arguments: [peer])
        }
    }

    /// The ids of the entries taken from `peer`, less items withdrawn here since.
    public func receivedEntries(from peer: String) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT entry FROM peer_received LEFT JOIN item ON item.id = peer_received.entry
                    WHERE peer_received.peer = ? AND item.revoked_at IS NULL
                    """, arguments: [peer])
        }
    }
}

extension StoreTransaction {
    /// Records the entries taken from `peer` in one of its requests (duplicates included).
    public mutating func recordReceived(from peer: String, entries: [String], at now: Date) throws {
        guard !entries.isEmpty else { return }
        // One statement for all of a request's entries.
        try execute(
            "INSERT OR IGNORE INTO peer_received(peer, entry, at) SELECT ?1, value, ?2 FROM json_each(?3)",
            [peer, now.milliseconds, Self.jsonArray(entries)])
    }

    /// A sync's list from `peer` of its entries in some buckets: which of `listed` this node
    /// lacks (neither recorded from the peer nor held as an item). Held items are recorded as
    /// taken from it, and what was recorded in those buckets but is no longer listed is
    /// forgotten (the peer lost it, restored from a backup), so that the digests agree again.
    public mutating func reconcileReceived(from peer: String, buckets: [Int], listed: [String], at now: Date) throws -> [String] {
        // A bucket is an id's last two hex digits (ids are lowercase UUIDs).
        let suffixes = Self.jsonArray(buckets.map { String(format: "%02x", $0) })
        let recorded = Set(
            try String.fetchAll(
                cached("SELECT entry FROM peer_received WHERE peer = ? AND substr(entry, 35, 2) IN (SELECT value FROM json_each(?))"),
                arguments: [peer, suffixes]))
        let listedSet = Set(listed)
        var missing: [String] = []
        var held: [String] = []
        let isItem = try cached("SELECT 1 FROM item WHERE id = ?")
        for id in listed where !recorded.contains(id) {
            if try Bool.fetchOne(isItem, arguments: [id]) == true { held.append(id) } else { missing.append(id) }
        }
        try recordReceived(from: peer, entries: held, at: now)
        let forget = recorded.subtracting(listedSet)
        if !forget.isEmpty {
            try execute(
                "DELETE FROM peer_received WHERE peer = ? AND entry IN (SELECT value FROM json_each(?))", [peer, Self.jsonArray(Array(forget))])
        }
        return missing
    }

    /// Queues again the delivered and dead-lettered entries for `peer` that a sync found it
    /// lacks (items withdrawn here since stay as they are). Returns how many.
    public mutating func requeue(peer: String, entries: [String]) throws -> Int {
        guard !entries.isEmpty else { return 0 }
        try execute(
            """
            UPDATE outbox SET state = 'pending', attempts = 0, done_at = NULL, error = NULL
            WHERE peer = ?1 AND state IN ('delivered', 'dead') AND (
                (body IS NULL AND item IN (SELECT value FROM json_each(?2))
                    AND NOT EXISTS (SELECT 1 FROM item WHERE item.id = outbox.item AND item.revoked_at IS NOT NULL))
                OR (body IS NOT NULL AND json_extract(CAST(body AS TEXT), '$.id') IN (SELECT value FROM json_each(?2))))
            """, [peer, Self.jsonArray(entries)])
        return db.changesCount
    }

    /// `ids` as one JSON array argument.
    static func jsonArray(_ ids: [String]) -> String { String(decoding: OutboxEntry.list(ids), as: UTF8.self) }
}
