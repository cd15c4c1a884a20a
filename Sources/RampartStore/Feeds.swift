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
            for row in try Row.fetchAll(db, sql: "SELECT * FROM feed_state") {
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
                INSERT OR REPLACE INTO feed_state(name, etag, last_modified, cursor, last_success, last_attempt, last_error, failures, items, duration_ms, values_listed)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    state.name, state.etag, state.lastModified, state.cursor, state.lastSuccess?.milliseconds, state.lastAttempt?.milliseconds,
                    state.lastError, state.failures, state.items, state.duration.milliseconds, state.values,
                ])
        }
    }

    /// The values a list feed holds, with the item each last became.
    public func feedValues(_ feed: String) async throws -> [String: String] {
        try await pool.read { db in
            var values: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT value, item FROM feed_value WHERE feed = ?", arguments: [feed]) {
                values[row["value"]] = row["item"]
            }
            return values
        }
    }

    /// Records the values a list feed holds now: `set` added or moved to a new item, `removed` gone.
    public func updateFeedValues(_ feed: String, set: [(String, String)], removed: [String]) async throws {
        guard !set.isEmpty || !removed.isEmpty else { return }
        try await write { tx in
            for (value, item) in set { try tx.execute("INSERT OR REPLACE INTO feed_value(feed, value, item) VALUES (?, ?, ?)", [feed, value, item]) }
            for value in removed { try tx.execute("DELETE FROM feed_value WHERE feed = ? AND value = ?", [feed, value]) }
        }
    }
}
