import Foundation
import GRDB
import RampartCore

/// A decision as the CrowdSec bouncer API reads it: only what a bouncer is told.
public struct BouncerDecision: Sendable, Hashable {
    /// The decision's number (`created_seq`): the `id` bouncers see.
    public var number: Int64
    /// Rampart's decision id (the `uuid` bouncers see).
    public var id: String
    public var target: IPNetwork
    public var expiresAt: Date
    /// The playbook that decided it, nil for a manual decision.
    public var playbook: String?
    /// The node where it originated.
    public var origin: String
    /// The number of its last change.
    public var change: Int64
    /// Created, or extended, and still in force at the time of the read.
    public var inForce: Bool
}

/// What changed in the decisions after a point: read in one snapshot, so that `head` is exactly
/// the last change the rows include.
public struct DecisionChanges: Sendable {
    /// The number of the last change in the store at the time of the read.
    public var head: Int64
    /// Oldest change first; simulated decisions are never included.
    public var decisions: [BouncerDecision]
}

extension Store {
    private static let bouncerColumns = "created_seq, id, value, expires_at, playbook, origin, change_seq, state"

    /// The number of the last change to any decision.
    public func decisionHead() async throws -> Int64 {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(change_seq) FROM decision") ?? 0 }
    }

    /// Decisions in force (not simulated) numbered after `after`, lowest number first, at most `limit`:
    /// one page of a bouncer's first pull.
    public func decisionsInForce(after: Int64, limit: Int, now: Date) async throws -> [BouncerDecision] {
        try await pool.read { db in
            try Store.bouncerDecisions(
                db,
                sql: """
                    SELECT \(Store.bouncerColumns) FROM decision
                    WHERE state = 'active' AND simulated = 0 AND expires_at > ?1 AND created_seq > ?2 ORDER BY created_seq LIMIT ?3
                    """, arguments: [now.milliseconds, after, limit], now: now
            )
        }
    }

    /// Decisions no longer in force that would have lasted until after `since`, for values with no
    /// decision in force now, ordered by (end, number) after `after`: one page of what a bouncer's
    /// first pull says to delete.
    public func decisionsEnded(since: Date, after: (expiresAt: Date, number: Int64), limit: Int, now: Date) async throws -> [BouncerDecision] {
        try await pool.read { db in
            try Store.bouncerDecisions(
                db,
                sql: """
                    SELECT \(Store.bouncerColumns) FROM decision
                    WHERE state != 'active' AND simulated = 0 AND expires_at > ?1 AND (expires_at, created_seq) > (?2, ?3)
                        AND NOT EXISTS (SELECT 1 FROM decision AS other WHERE other.value = decision.value
                            AND other.state = 'active' AND other.simulated = 0 AND other.expires_at > ?4)
                    ORDER BY expires_at, created_seq LIMIT ?5
                    """, arguments: [since.milliseconds, after.expiresAt.milliseconds, after.number, now.milliseconds, limit], now: now
            )
        }
    }

    /// Every change to a decision (not simulated) after change `after`, in one snapshot. A value
    /// has at most one decision in force, so one that ended was not replaced by one the reader
    /// already has: a newer one for the value is among the changes too.
    public func decisionChanges(after: Int64, now: Date) async throws -> DecisionChanges {
        try await pool.read { db in
            let head = try Int64.fetchOne(db, sql: "SELECT MAX(change_seq) FROM decision") ?? 0
            guard head > after else { return DecisionChanges(head: head, decisions: []) }
            let decisions = try Store.bouncerDecisions(
                db,
                sql: """
                    SELECT \(Store.bouncerColumns) FROM decision WHERE change_seq > ? AND simulated = 0 ORDER BY change_seq
                    """, arguments: [after], now: now
            )
            return DecisionChanges(head: head, decisions: decisions)
        }
    }

    /// Decisions in force (not simulated) for one value, or for any network containing an address
    /// (one index lookup per prefix length).
    public func decisionsInForce(containing address: IPAddress, now: Date) async throws -> [BouncerDecision] {
        let candidates = (0...address.family.bitWidth).map {
            IPNetwork(address: IPNetwork.mask(address, to: $0), prefixLength: $0).description
        }
        return try await decisionsInForce(values: candidates, now: now)
    }

    /// Decisions in force (not simulated) whose value is one of `values`.
    public func decisionsInForce(values: [String], now: Date) async throws -> [BouncerDecision] {
        var arguments: StatementArguments = []
        for value in values { arguments += [value] }
        arguments += [now.milliseconds]
        let marks = Array(repeating: "?", count: values.count).joined(separator: ",")
        let bound = arguments
        return try await pool.read { db in
            try Store.bouncerDecisions(
                db,
                sql: """
                    SELECT \(Store.bouncerColumns) FROM decision
                    WHERE value IN (\(marks)) AND state = 'active' AND simulated = 0 AND expires_at > ? ORDER BY created_seq
                    """, arguments: bound, now: now
            )
        }
    }

    private static func bouncerDecisions(_ db: Database, sql: String, arguments: StatementArguments, now: Date) throws -> [BouncerDecision] {
        // Cached: lookups by address run thousands of times a second.
        let rows = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
        var found: [BouncerDecision] = []
        while let row = try rows.next() {
            let value: String = row[2]
            guard let target = try? IPNetwork(parsing: value, allowBareAddress: true) else {
                throw StoreError(code: "corrupt", message: "decision \(row[1] as String? ?? "?") holds an invalid value '\(value)'")
            }
            let expiresAt = Date(milliseconds: row[3])
            found.append(
                BouncerDecision(
                    number: row[0], id: row[1], target: target, expiresAt: expiresAt, playbook: row[4], origin: row[5], change: row[6],
                    inForce: (row[7] as String) == Decision.State.active.rawValue && expiresAt > now
                )
            )
        }
        return found
    }
}
