import Foundation
import GRDB
import RampartCore

/// A temporary allow entry (OpenC2 `allow`): while it lasts, no block of an address or network
/// overlapping it is made, whoever asks (playbooks, peers, by hand). Its `number` comes from the
/// sequence that numbers decisions, so that one rule number names either.
public struct AllowEntry: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        case active, revoked, expired
    }

    public var number: Int64
    public var target: IPNetwork
    public var createdAt: Date
    public var expiresAt: Date
    public var reason: String
    /// Who made it: `api:KEY` or `openc2:KEY`.
    public var by: String
    public var state: State

    public func isActive(at now: Date) -> Bool { state == .active && expiresAt > now }

    public func write(to w: inout JSONWriter, now: Date) {
        w.beginObject()
        w.key("rule_number")
        w.value(number)
        w.field("value", target.description)
        w.field("created_at", createdAt)
        w.field("expires_at", expiresAt)
        w.field("reason", reason)
        w.field("by", by)
        w.field("active", isActive(at: now))
        w.field("state", state.rawValue)
        w.endObject()
    }
}

extension ErrorCode {
    /// A block refused because an allow entry covers its target.
    public static let allowed = ErrorCode("allowed")
}

extension StoreTransaction {
    // MARK: Allow entries

    /// Makes an allow entry for `target` until `expiresAt`, audited `allow.created`.
    public mutating func allow(_ target: IPNetwork, until expiresAt: Date, reason: String, by: String, now: Date) throws -> AllowEntry {
        let entry = AllowEntry(
            number: state.nextDecisionChange(), target: target, createdAt: now, expiresAt: expiresAt, reason: reason, by: by, state: .active)
        try execute(
            "INSERT INTO allow_entry(number, value, created_at, expires_at, reason, by, state) VALUES (?, ?, ?, ?, ?, ?, 'active')",
            [entry.number, target.description, now.milliseconds, expiresAt.milliseconds, reason, by]
        )
        state.allows.append(entry)
        try audit(.allowCreated, subject: String(entry.number), at: now) { w in
            w.field("value", target.description)
            w.field("expires_at", Timestamp.format(expiresAt))
            w.field("reason", reason)
            w.field("by", by)
        }
        return entry
    }

    /// Ends the allow entry numbered `number` if it is active; audited `allow.revoked`.
    public mutating func revokeAllow(number: Int64, by: String, now: Date) throws -> AllowEntry? {
        guard let index = state.allows.firstIndex(where: { $0.number == number }) else { return nil }
        var entry = state.allows.remove(at: index)
        entry.state = .revoked
        try execute("UPDATE allow_entry SET state = 'revoked', revoked_at = ? WHERE number = ?", [now.milliseconds, number])
        try audit(.allowRevoked, subject: String(number), at: now) { w in
            w.field("value", entry.target.description)
            w.field("by", by)
        }
        return entry
    }

    /// The allow entry in force that overlaps `target`, if any.
    func allowing(_ target: IPNetwork, at now: Date) -> AllowEntry? {
        state.allows.first { $0.expiresAt > now && $0.target.overlaps(target) }
    }

    /// Marks allow entries whose time is up as expired (`allow.expired`).
    mutating func expireAllows(now: Date) throws {
        for entry in state.allows where entry.expiresAt <= now {
            try execute("UPDATE allow_entry SET state = 'expired' WHERE number = ?", [entry.number])
            try audit(.allowExpired, subject: String(entry.number), at: now) { w in w.field("value", entry.target.description) }
        }
        state.allows.removeAll { $0.expiresAt <= now }
    }
}

extension Store {
    /// Allow entries, newest first: those in force, or all of them.
    public func allowEntries(activeOnly: Bool, now: Date, limit: Int = 1000) async throws -> [AllowEntry] {
        try await pool.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: activeOnly
                    ? "SELECT * FROM allow_entry WHERE state = 'active' AND expires_at > ? ORDER BY number DESC LIMIT ?"
                    : "SELECT * FROM allow_entry WHERE ? IS NOT NULL ORDER BY number DESC LIMIT ?",
                arguments: [now.milliseconds, limit])
            return try rows.map(AllowEntry.init(row:))
        }
    }

    /// The active allow entries, for the writer's state when the store opens.
    static func activeAllowEntries(_ db: Database) throws -> [AllowEntry] {
        try Row.fetchAll(db, sql: "SELECT * FROM allow_entry WHERE state = 'active' ORDER BY number").map(AllowEntry.init(row:))
    }

    /// The decision numbered `number` (its CrowdSec id, its OpenC2 rule number), if any.
    public func decision(number: Int64) async throws -> Decision? {
        try await pool.read { db in try Decision.fetchOne(db, sql: "SELECT * FROM decision WHERE created_seq = ?", arguments: [number]) }
    }

    /// A decision's number, from its id.
    public func decisionNumber(id: String) async throws -> Int64? {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT created_seq FROM decision WHERE id = ?", arguments: [id]) }
    }
}

extension AllowEntry {
    init(row: Row) throws {
        let value: String = row["value"]
        guard let target = try? IPNetwork(parsing: value, allowBareAddress: true) else {
            throw StoreError(code: "corrupt", message: "allow entry \(row["number"] as Int64? ?? 0) holds an invalid value '\(value)'")
        }
        self.init(
            number: row["number"], target: target, createdAt: Date(milliseconds: row["created_at"]),
            expiresAt: Date(milliseconds: row["expires_at"]), reason: row["reason"], by: row["by"],
            state: State(rawValue: row["state"]) ?? .active)
    }
}
