import Foundation
import GRDB
import RampartCore

/// STIX versioning: one row per STIX object id, holding the version in force and the items it
/// became. A newer version replaces them, an older or the same one changes nothing, and a
/// revocation withdraws them; only the source that first sent an object may change it.
extension StoreTransaction {
    mutating func apply(
        _ version: STIX.Version, at position: Int, revoked: Bool, items: [Planned], context: EngineContext, outcomes: inout Outcomes
    ) throws {
        let incoming = version.date.milliseconds
        let key = Self.key(version.id)
        defer { stixObject = nil }
        // A new object (the common case) takes its row at once; one seen before is read first.
        if !revoked, items.count == 1, case .accepted(let encoded, let matched, let recordSighting) = items[0] {
            var binder = Binder(statements.insertSTIXObject)
            binder.bind(blob: Array(key))
            binder.bind(version.id)
            binder.bind(context.via)
            binder.bind(incoming)
            binder.bind(version.modified)
            binder.bind("[\"\(encoded.item.id)\"]")
            binder.bind(context.at.milliseconds)
            if try binder.step(db) == 1 {
                stixObject = (version.id, db.lastInsertedRowID)
                try accept(encoded, matched, recordSighting: recordSighting, context: context, outcomes: &outcomes)
                outcomes.stixItems.append(encoded.item.id)
                return
            }
        }
        let stored = try Row.fetchOne(cached("SELECT rowid, via, version, modified, revoked, items FROM stix_object WHERE key = ?"), arguments: [key])
        if let stored {
            stixObject = (version.id, stored["rowid"])
            let via: String = stored["via"]
            let modified: String = stored["modified"]
            let reason: String? =
                if via != context.via {
                    "\(version.id) came from \(via); only its source may change or revoke it"
                } else if stored["revoked"] as Bool {
                    "\(version.id) was revoked (version \(modified)); later versions are ignored"
                } else if incoming < stored["version"] as Int64 {
                    "a newer version (\(modified)) of \(version.id) is stored"
                } else if incoming == stored["version"] as Int64 {
                    "this version of \(version.id) is stored already"
                } else {
                    nil
                }
            if let reason {
                outcomes.stixSkipped.append((position, reason))
                return
            }
        }
        var ids: [String] = []
        for case .accepted(let encoded, let matched, let recordSighting) in items {
            // An item stored before (a retried request's) is the version's all the same.
            try accept(encoded, matched, recordSighting: recordSighting, context: context, outcomes: &outcomes)
            ids.append(encoded.item.id)
        }
        // The new version's items are in before the old ones go, so that a block both name stays.
        if let stored {
            let previous = try JSONValue.parse(Array((stored["items"] as String).utf8)).stringArray
            let reason = revoked ? "\(version.id) was revoked by its source" : "\(version.id) was replaced by version \(version.modified)"
            // A one-item version is served under the object's own id: a newer one-item version
            // takes its place there, rather than a revoked version of it.
            let replacedInPlace =
                !revoked && previous.count == 1 && items.count == 1
                && items.allSatisfy { entry in
                    if case .accepted(let encoded, _, _) = entry { encoded.item.tlp != .red } else { false }
                }
            for item in previous where !ids.contains(item) {
                try retract(item, reason: reason, path: [], context: context, outcomes: &outcomes, exported: !replacedInPlace)
            }
        }
        try execute(
            """
            INSERT INTO stix_object(key, id, via, version, modified, revoked, items, updated_at) VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
            ON CONFLICT(key) DO UPDATE SET version = ?3, modified = ?4, revoked = ?5, items = ?6, updated_at = ?7
            """,
            [
                version.id, context.via, incoming, version.modified, revoked, String(decoding: OutboxEntry.list(ids), as: UTF8.self),
                context.at.milliseconds, key,
            ])
        if revoked { outcomes.stixRevoked.append(version.id) } else { outcomes.stixItems += ids }
    }
}

extension StoreTransaction {
    /// The keys under which `stix_export` may hold the versions of the object `id` (its
    /// `object_key`, a small index, so that TAXII finds an object's versions): the first 8 bytes
    /// of its UUID and, for an object ingested as STIX, the rowid of its `stix_object` row, last.
    /// An item of our own gets the first (its id, and so its UUID, grows with time), one from STIX
    /// the second: its UUID is random, and a bulk bundle's export rows would each dirty a page of
    /// the index (a third of the log a 100,000-object bundle wrote), where rowids grow at its end.
    static func exportKeys(_ db: Database, object id: String) throws -> [Int64] {
        let row = try Int64.fetchOne(db.cachedStatement(sql: "SELECT rowid FROM stix_object WHERE key = ?"), arguments: [key(id)])
        return [objectKey(id)] + (row.map { [$0] } ?? [])
    }

    /// The first 8 bytes of a STIX id's UUID, as an integer.
    static func objectKey(_ id: String) -> Int64 {
        var key: UInt64 = 0
        _ = uuidBytes(id) { index, byte in
            if index < 8 { key = key << 8 | UInt64(byte) }
        }
        return Int64(bitPattern: key)
    }

    /// A STIX id's UUID as 16 bytes (the id as text if it holds none).
    static func key(_ id: String) -> Data {
        var bytes = [UInt8](repeating: 0, count: 16)
        guard uuidBytes(id, { index, byte in bytes[index] = byte }) else { return Data(id.utf8) }
        return Data(bytes)
    }

    /// Calls `body` with each byte of the UUID that ends `id` (`type--UUID`), in order; false when
    /// there is none.
    private static func uuidBytes(_ id: String, _ body: (Int, UInt8) -> Void) -> Bool {
        let utf8 = id.utf8
        guard utf8.count >= 36 else { return false }
        var index = 0
        var high: UInt8?
        for c in utf8.suffix(36) {
            let nibble: UInt8
            switch c {
            case 0x30...0x39: nibble = c - 0x30
            case 0x61...0x66: nibble = c - 0x61 + 10
            case 0x41...0x46: nibble = c - 0x41 + 10
            case UInt8(ascii: "-"): continue
            default: return false
            }
            if let h = high {
                guard index < 16 else { return false }
                body(index, h << 4 | nibble)
                index += 1
                high = nil
            } else {
                high = nibble
            }
        }
        return index == 16
    }
}

extension JSONValue {
    /// The strings of an array (nothing for anything else).
    var stringArray: [String] {
        guard case .array(let list) = self else { return [] }
        return list.compactMap { if case .string(let s) = $0 { s } else { nil } }
    }
}

/// One version of an item as TAXII collections serve it.
public struct ExportedObject: Sendable {
    /// Its place in the order added; `seq >> 10` is when, in milliseconds (`date_added`).
    public let seq: Int64
    public let object: String
    public let item: Item
    /// The version (`modified`).
    public let version: Date
    public let revoked: Bool

    public var dateAdded: Date { Date(milliseconds: seq >> 10) }
}

/// Which versions of each object a read returns (TAXII's `match[version]`).
public enum VersionMatch: Sendable, Hashable {
    case last, first, all
    case at([Int64])
}

/// What a read of the exported objects selects: a sharing policy's TLP and kinds (the rest of the
/// policy is applied to each item afterwards), objects, versions, and a place to start after.
public struct ExportQuery: Sendable {
    public var after: Int64 = 0
    public var maxTLP: TLP = .amberStrict
    /// Indicator kinds and `rule`; nil: all.
    public var kinds: Set<String>?
    public var objects: [String]?
    public var versions: VersionMatch = .last
    public var limit = 100

    public init() {}

    /// Only what was added after `date` (TAXII's `added_after`, to the millisecond).
    public mutating func added(after date: Date) {
        // The millisecond the time falls in, robust to a decimal time (…594000Z) read as a hair less.
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000 + 0.0005).rounded(.down))
        after = max(after, ((milliseconds + 1) << 10) - 1)
    }
}

extension Store {
    /// One page of exported objects in the order added, at most `query.limit`, each passed
    /// through `share` (nil: left out, read past); `more` when others follow.
    public func exportedObjects(_ query: ExportQuery, share: @Sendable (Item) -> Item?) async throws -> (objects: [ExportedObject], more: Bool) {
        try await pool.read { db in
            var clauses = ["e.seq > ?", "e.tlp <= ?"]
            // After the first (where to start), which moves from batch to batch.
            var arguments: [any DatabaseValueConvertible] = [Int64(TLP.allCases.firstIndex(of: query.maxTLP) ?? 0)]
            if let kinds = query.kinds {
                clauses.append("e.kind IN (\(kinds.map { _ in "?" }.joined(separator: ",")))")
                arguments += kinds.sorted() as [any DatabaseValueConvertible]
            }
            if let objects = query.objects {
                let keys = try objects.flatMap { try StoreTransaction.exportKeys(db, object: $0) }
                clauses.append(
                    "e.object_key IN (\(keys.map { _ in "?" }.joined(separator: ","))) AND e.object IN (\(objects.map { _ in "?" }.joined(separator: ",")))"
                )
                arguments += keys as [any DatabaseValueConvertible]
                arguments += objects as [any DatabaseValueConvertible]
            }
            switch query.versions {
            case .last:
                clauses.append("NOT EXISTS (SELECT 1 FROM stix_export b WHERE b.object_key = e.object_key AND b.object = e.object AND b.seq > e.seq)")
            case .first:
                clauses.append("NOT EXISTS (SELECT 1 FROM stix_export b WHERE b.object_key = e.object_key AND b.object = e.object AND b.seq < e.seq)")
            case .all: break
            case .at(let versions):
                clauses.append("e.version IN (\(versions.map { _ in "?" }.joined(separator: ",")))")
                arguments += versions as [any DatabaseValueConvertible]
            }
            let sql = """
                SELECT e.seq, e.object, e.version, e.revoked, a.detail FROM stix_export e
                JOIN item i ON i.id = e.item JOIN audit a ON a.seq = i.audit_seq
                WHERE \(clauses.joined(separator: " AND ")) ORDER BY e.seq LIMIT ?
                """
            var found: [ExportedObject] = []
            var after = query.after
            // Items the policy's other rules (regions) withhold are read past, a batch at a time.
            while true {
                let rows = try Row.fetchAll(db, sql: sql, arguments: StatementArguments([after] + arguments + [query.limit + 1]))
                for row in rows {
                    after = row[0]
                    guard found.count < query.limit else { return (found, true) }
                    let detail: String = row[4]
                    guard let item = try? Item(stored: JSONValue.parse(Array(detail.utf8)), now: .distantPast), let shared = share(item) else {
                        continue
                    }
                    found.append(
                        ExportedObject(seq: row[0], object: row[1], item: shared, version: Date(milliseconds: row[2]), revoked: row[3]))
                }
                if rows.count <= query.limit { return (found, false) }
            }
        }
    }

    /// Decisions in force (not simulated), with the TLP of the item behind each (amber for a
    /// decision made by hand), for `rampart export stix`.
    public func decisionsToExport(now: Date, since: Date?) throws -> [(Decision, TLP)] {
        try pool.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT d.*, coalesce(json_extract(a.detail, '$.indicator.tlp'), json_extract(a.detail, '$.rule.tlp')) AS item_tlp
                    FROM decision d LEFT JOIN item i ON i.id = d.item LEFT JOIN audit a ON a.seq = i.audit_seq
                    WHERE d.state = 'active' AND d.simulated = 0 AND d.expires_at > ? AND d.created_at >= ? ORDER BY d.created_at
                    """, arguments: [now.milliseconds, since?.milliseconds ?? 0])
            return try rows.map { row in
                (try Decision(row: row), (row["item_tlp"] as String?).flatMap { try? TLP(name: $0) } ?? .amber)
            }
        }
    }
}

extension Store {
    /// Keeps the status resource of a TAXII add-objects request (its JSON), until `retention.taxii_status` has passed.
    public func saveTAXIIStatus(id: String, via: String, body: [UInt8], at now: Date) async throws {
        try await write { tx in
            try tx.execute(
                "INSERT INTO taxii_status(id, via, created_at, body) VALUES (?, ?, ?, ?)",
                [id, via, now.milliseconds, String(decoding: body, as: UTF8.self)])
        }
    }

    /// A TAXII status resource and who made the request, or nil.
    public func taxiiStatus(id: String) async throws -> (via: String, body: String)? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT via, body FROM taxii_status WHERE id = ?", arguments: [id]).map { ($0["via"], $0["body"]) }
        }
    }
}
