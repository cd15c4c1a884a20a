import Foundation
import GRDB
import RampartCore

extension StoreTransaction {
    /// Deletes, at most `limit` of each, decisions and allow entries that ended before `decisionsBefore`,
    /// and outbox entries delivered, refused or withheld before `outboxBefore` whose item has no
    /// decision in force (a revocation of that item must still reach the peers that got it).
    /// Pending and dead-lettered entries stay. Entries taken from peers are forgotten by the same
    /// rule (received before `outboxBefore`, no decision in force). The audit log keeps every event about them. Also
    /// the statuses of TAXII add-objects requests made before `taxiiStatusesBefore`.
    /// Returns how many rows went.
    public mutating func prune(decisionsBefore: Date, outboxBefore: Date, taxiiStatusesBefore: Date = .distantPast, limit: Int = 10_000) throws -> Int
    {
        try execute(
            """
            DELETE FROM decision WHERE id IN (
                SELECT id FROM decision WHERE state != 'active' AND expires_at < ? ORDER BY expires_at LIMIT ?)
            """, [decisionsBefore.milliseconds, limit])
        var pruned = db.changesCount
        try execute("DELETE FROM allow_entry WHERE state != 'active' AND expires_at < ?", [decisionsBefore.milliseconds])
        pruned += db.changesCount
        try execute(
            """
            DELETE FROM outbox WHERE seq IN (
                SELECT seq FROM outbox WHERE state IN ('delivered', 'refused', 'withheld') AND done_at < ?
                    AND NOT EXISTS (SELECT 1 FROM decision WHERE decision.item = outbox.item AND decision.state = 'active')
                LIMIT ?)
            """, [outboxBefore.milliseconds, limit])
        pruned += db.changesCount
        // What peers sent, kept as long as the senders keep their outbox entries.
        try execute(
            """
            DELETE FROM peer_received WHERE (peer, entry) IN (
                SELECT peer, entry FROM peer_received WHERE at < ?
                    AND NOT EXISTS (SELECT 1 FROM decision WHERE decision.item = peer_received.entry AND decision.state = 'active')
                LIMIT ?)
            """, [outboxBefore.milliseconds, limit])
        pruned += db.changesCount
        try execute(
            "DELETE FROM taxii_status WHERE id IN (SELECT id FROM taxii_status WHERE created_at < ? ORDER BY created_at LIMIT ?)",
            [taxiiStatusesBefore.milliseconds, limit])
        pruned += db.changesCount
        return pruned
    }
}
