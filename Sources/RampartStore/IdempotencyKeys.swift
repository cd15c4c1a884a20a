import Foundation
import GRDB
import RampartCore

/// Requests sent with an `Idempotency-Key`: their items' ids are derived from the key (see
/// `IDGenerator.derived`), so a retry stores only what the first attempt did not; the key's row
/// holds the digest of what was sent, so that the same key cannot stand for another body.
extension StoreTransaction {
    /// Records the key with the digest of its request; false (and nothing written) when the key
    /// was recorded before with another digest.
    public mutating func recordIdempotencyKey(_ key: String, via: String, digest: [UInt8], at now: Date) throws -> Bool {
        try execute(
            "INSERT OR IGNORE INTO idempotency_key(via, key, digest, created_at) VALUES (?, ?, ?, ?)",
            [via, key, Data(digest), now.milliseconds]
        )
        if db.changesCount == 1 { return true }
        let stored = try Data.fetchOne(cached("SELECT digest FROM idempotency_key WHERE via = ? AND key = ?"), arguments: [via, key])
        return stored.map(Array.init) == digest
    }

    /// Forgets keys recorded before `date`.
    public mutating func pruneIdempotencyKeys(before date: Date) throws {
        try execute("DELETE FROM idempotency_key WHERE created_at < ?", [date.milliseconds])
    }
}

extension Store {
    /// The digest recorded for a key, if any.
    public func idempotencyDigest(_ key: String, via: String) async throws -> [UInt8]? {
        try await pool.read { db in
            try Data.fetchOne(db, sql: "SELECT digest FROM idempotency_key WHERE via = ? AND key = ?", arguments: [via, key]).map(Array.init)
        }
    }
}
