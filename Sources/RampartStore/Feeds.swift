import Foundation
import GRDB
import RampartCore

/// A feed's state as `GET /v1/feeds` reports it and its next pull needs it.
public struct FeedState: Sendable {
    public var name: String
    public var etag: String?
    public var lastModified: String?
    /// A TAXII feed's `added_after`: the last `date_added` read.
    public var cursor: String?
    public var lastSuccess: Date?
    public var lastAttempt: Date?
    public var lastError: String?
    /// Pulls failed in a row since the last good one.
    public var failures = 0
    /// Items the last good pull stored.
    public var items = 0
    public var duration: Duration = .zero
    /// Values a list feed holds now.
    public var values = 0

    public init(name: String) { self.name = name }
}

extension Store {
    public func feedStates() async throws -> [String: FeedState] {
        try await pool.read { db in
            var states: [String: FeedState] = [:]
            for row in try Row.fetchAll(
                db,
                sql:
                    "SELECT name, etag, last_modified, cursor, last_success, last_attempt, last_error, failures, items, duration_ms, values_listed FROM feed_state"
            ) {
                var state = FeedState(name: row["name"])
                state.etag = row["etag"]
                state.lastModified = row["last_modified"]
                state.cursor = row["cursor"]
                state.lastSuccess = (row["last_success"] as Int64?).map { Date(milliseconds: $0) }
                state.lastAttempt = (row["last_attempt"] as Int64?).map { Date(milliseconds: $0) }
                state.lastError = row["last_error"]
                state.failures = row["failures"]
                state.items = row["items"]
                state.duration = .milliseconds(row["duration_ms"] as Int64)
                state.values = row["values_listed"]
                states[state.name] = state
            }
            return states
        }
    }

    public func saveFeedState(_ state: FeedState) async throws {
        try await write { tx in
            try tx.execute(
                """
                INSERT INTO feed_state(name, etag, last_modified, cursor, last_success, last_attempt, last_error, failures, items, duration_ms, values_listed)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                ON CONFLICT(name) DO UPDATE SET etag = ?2, last_modified = ?3, cursor = ?4, last_success = ?5, last_attempt = ?6,
                    last_error = ?7, failures = ?8, items = ?9, duration_ms = ?10, values_listed = ?11
                """,
                [
                    state.name, state.etag, state.lastModified, state.cursor, state.lastSuccess?.milliseconds, state.lastAttempt?.milliseconds,
                    state.lastError, state.failures, state.items, state.duration.milliseconds, state.values,
                ])
        }
    }

    /// The values a list feed holds, with the item each last became.
    public func feedValues(_ feed: String) async throws -> [String: String] {
        let text = try await pool.read { db in try String.fetchOne(db, sql: "SELECT listed FROM feed_list WHERE name = ?", arguments: [feed]) }
        var values: [String: String] = [:]
        for line in (text ?? "").split(separator: "\n") {
            guard let tab = line.firstIndex(of: "\t") else { continue }
            values[String(line[..<tab])] = String(line[line.index(after: tab)...])
        }
        return values
    }

    /// Records the values a list feed holds now, with their items.
    public func setFeedValues(_ feed: String, _ values: [String: String]) async throws {
        var text = ""
        text.reserveCapacity(values.count * 56)
        for (value, item) in values {
            text += value
            text += "\t"
            text += item
            text += "\n"
        }
        let listed = text
        try await write { tx in
            try tx.execute("INSERT OR REPLACE INTO feed_list(name, listed) VALUES (?, ?)", [feed, listed])
        }
    }
}
