import Foundation
import GRDB
import Logging
import RampartCore
import Synchronization

/// Rampart's durable state: one SQLite database in WAL mode under the state directory.
///
/// Writes go through `write(_:)`, which group-commits: it returns once the transaction holding the
/// work is durable on disk (the log synced after its commit). Reads run concurrently on WAL snapshots.
/// Opening a store only opens the database: its writer and sync threads run between `start()`
/// and `close()` (the daemon's `StoreService` owns both), and writes queued before wait for them.
public final class Store: Sendable {
    public let path: String
    let pool: DatabasePool
    private let committer: GroupCommitter
    /// A connection of its own for WAL checkpoints, so that they never run on the commit path.
    private let checkpointer: DatabaseQueue?
    private let memoryReleaseWanted = Atomic<Bool>(false)

    /// Opens (creating and migrating when needed) the database at `path`.
    public init(path: String, readOnly: Bool = false) throws {
        self.path = path
        var configuration = Configuration()
        configuration.readonly = readOnly
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // Checkpoints run apart (see `checkpoint()`), not after commits. The writer keeps 16 MiB
            // of pages; readers (API lists, reconciliation scans) 2 MiB each, the kernel's page
            // cache holds the rest without counting as the daemon's memory.
            let cacheKiB = db.configuration.readonly ? 2048 : 16384
            try db.execute(sql: "PRAGMA cache_size = -\(cacheKiB); PRAGMA wal_autocheckpoint = 0")
            // The writer's savepoints (one a job, one a decision insert) copy the pages they change
            // into a journal of their own; past 64 KiB SQLite spills it into a file under /var/tmp,
            // which cost a bulk ingest with block playbooks thousands of writes. It stays in memory:
            // a transaction's jobs are bounded (see `GroupCommitter`), and so is what they change.
            if !db.configuration.readonly { try db.execute(sql: "PRAGMA temp_store = MEMORY") }
        }
        if !readOnly {
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
        }
        do {
            // The writer runs in WAL mode with `synchronous = NORMAL` (SQLite syncs the log only at
            // checkpoints): the group committer syncs it after commits, before any caller hears
            // its write is done.
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw StoreError(code: "open_failed", message: "cannot open the database at \(path): \(error)")
        }
        if !readOnly { try Store.migrator.migrate(pool) }
        let state = try pool.read { db in
            let head = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            let active = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM decision WHERE state = 'active' AND simulated = 0") ?? 0
            return WriterState(
                auditSeq: head?["seq"] ?? 0,
                auditHash: (head?["hash"] as Data?).map { Array($0) } ?? AuditChain.genesis,
                activeBlocks: active,
                decisionChange: max(
                    try Int64.fetchOne(db, sql: "SELECT MAX(change_seq) FROM decision") ?? 0,
                    try Int64.fetchOne(db, sql: "SELECT MAX(number) FROM allow_entry") ?? 0),
                allows: try Store.activeAllowEntries(db),
                exportSeq: try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM stix_export") ?? 0
            )
        }
        committer = GroupCommitter(pool: pool, state: state)
        if readOnly {
            checkpointer = nil
        } else {
            var checkpointConfiguration = Configuration()
            checkpointConfiguration.busyMode = .timeout(10)
            checkpointConfiguration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864")
            }
            checkpointer = try DatabaseQueue(path: path, configuration: checkpointConfiguration)
        }
    }

    /// Copies committed pages from the write-ahead log into the database without blocking readers
    /// or the writer (`PASSIVE`); once the log is fully copied, new commits reuse it from the start.
    public func checkpoint() throws {
        try checkpointer?.writeWithoutTransaction { db in _ = try db.checkpoint(.passive) }
    }

    /// Checkpoints when writes have paused for `quiet`, or when the log has grown past `maxLogBytes`
    /// whatever the load: checkpoints cost I/O and CPU that a burst of ingest needs more.
    /// Returns whether it checkpointed.
    @discardableResult
    public func checkpointIfDue(quiet: Duration = .milliseconds(500), maxLogBytes: Int = 256 << 20) throws -> Bool {
        let logBytes = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
        guard logBytes > 0, committer.idleTime >= quiet || logBytes >= maxLogBytes else { return false }
        try checkpoint()
        return true
    }

    /// Runs `work` in a transaction shared with other concurrent writes and returns its result once
    /// that transaction is committed. If `work` throws, its writes are rolled back and nothing else is.
    public func write<T: Sendable>(_ work: @escaping @Sendable (inout StoreTransaction) throws -> T) async throws -> T {
        try await committer.enqueue(work).value()
    }

    /// Queues `work` without waiting, so that a caller can prepare the next piece of work while
    /// this one commits; await `value()` on the result for the outcome. `weight`: how many items
    /// `work` writes, roughly (a transaction takes a bounded amount of work).
    public func enqueue<T: Sendable>(weight: Int = 1, _ work: @escaping @Sendable (inout StoreTransaction) throws -> T) -> PendingWrite<T> {
        committer.enqueue(weight: weight, work)
    }

    /// Whether the last write failed because the disk is full (until a write succeeds again).
    public var isStorageFull: Bool { committer.isStorageFull }

    /// How many times the write-ahead log was synced since the store opened.
    var logSyncs: Int { committer.logSyncs }

    /// Asks for `releaseMemory` once writes pause (`releaseMemoryIfDue`), after a bulk request.
    public func releaseMemoryWhenQuiet() {
        memoryReleaseWanted.store(true, ordering: .relaxed)
    }

    /// Releases memory when it was asked for and writes have paused for `quiet` (the expiry sweep
    /// writes every second); returns whether it did.
    @discardableResult
    public func releaseMemoryIfDue(quiet: Duration = .milliseconds(500)) -> Bool {
        guard memoryReleaseWanted.load(ordering: .relaxed), committer.idleTime >= quiet else { return false }
        memoryReleaseWanted.store(false, ordering: .relaxed)
        // Every connection frees what it can (cached pages); they fill again as needed.
        pool.releaseMemory()
        return true
    }

    /// Starts the writer and sync threads (once; a read-only store has none). `observer` hears
    /// of the firewall changes each transaction commits, and of their reaching the disk.
    public func start(observer: (any CommitObserver)? = nil) {
        if checkpointer != nil { committer.start(observer: observer) }
    }

    /// Commits and syncs the writes already queued, then stops and joins the writer and sync
    /// threads and checkpoints the log.
    public func close() async {
        await committer.stop()
        try? checkpoint()
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    -- Items by id. The item itself (its JSON) is the detail of its item.accepted audit
                    -- entry, so the hash chain covers every item's content and nothing is stored twice.
                    CREATE TABLE item (
                        id TEXT PRIMARY KEY NOT NULL,
                        audit_seq INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE decision (
                        id TEXT PRIMARY KEY NOT NULL,
                        value TEXT NOT NULL,
                        direction TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        playbook TEXT,
                        item TEXT,
                        origin TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        simulated INTEGER NOT NULL,
                        state TEXT NOT NULL,
                        revoked_at INTEGER
                    ) WITHOUT ROWID;
                    CREATE INDEX decision_value ON decision(value);
                    CREATE INDEX decision_due ON decision(expires_at) WHERE state = 'active';
                    CREATE TABLE audit (
                        seq INTEGER PRIMARY KEY,
                        at INTEGER NOT NULL,
                        event TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        detail TEXT NOT NULL,
                        hash BLOB NOT NULL
                    );
                    """
            )
        }
        migrator.registerMigration("v2-rules") { db in
            try db.execute(
                sql: """
                    -- Detection rules rendered by rule actions: the files under state_dir/rules follow this table.
                    CREATE TABLE rule (
                        format TEXT NOT NULL,
                        name TEXT NOT NULL,
                        sid INTEGER NOT NULL UNIQUE,
                        playbook TEXT NOT NULL,
                        item TEXT NOT NULL,
                        value TEXT NOT NULL,
                        content TEXT NOT NULL,
                        updated_at INTEGER NOT NULL,
                        PRIMARY KEY (format, name)
                    ) WITHOUT ROWID;
                    """
            )
        }
        migrator.registerMigration("v3-sightings") { db in
            try db.execute(
                sql: """
                    -- Who saw which value when, for playbooks' sightings conditions; kept for the longest window in use.
                    CREATE TABLE sighting (
                        value TEXT NOT NULL,
                        at INTEGER NOT NULL,
                        source TEXT,
                        via TEXT NOT NULL,
                        origin TEXT NOT NULL
                    );
                    CREATE INDEX sighting_value ON sighting(value, at);
                    CREATE INDEX sighting_at ON sighting(at);
                    """
            )
        }
        migrator.registerMigration("v4-peers") { db in
            try db.execute(
                sql: """
                    -- Where each item came from (api:KEY or peer:NAME), for purging what a peer sent.
                    ALTER TABLE item ADD COLUMN via TEXT;
                    -- How many times a request other than the decision's own item merged into it: a
                    -- peer's revocation of that item leaves a decision that something else supports.
                    ALTER TABLE decision ADD COLUMN corroborations INTEGER NOT NULL DEFAULT 0;
                    -- What is to go, or went, to each peer (or notify URL, as peer 'notify:URL'): one row per
                    -- item (or revocation, or notification) and destination. Delivered rows stay: they say
                    -- which peers must hear of a revocation.
                    CREATE TABLE outbox (
                        seq INTEGER PRIMARY KEY,
                        peer TEXT NOT NULL,
                        item TEXT NOT NULL,           -- the item sent, or the item a revocation withdraws
                        body BLOB,                    -- made when queued: a revocation's JSON, a notification's request body; NULL for an item
                        path TEXT NOT NULL,           -- node ids, origin first, this node last (a JSON array since v8)
                        hops_left INTEGER NOT NULL,
                        suggest TEXT NOT NULL,        -- suggested actions (a JSON array since v8)
                        state TEXT NOT NULL,          -- pending | delivered | dead | withheld | refused (by the peer)
                        attempts INTEGER NOT NULL DEFAULT 0,
                        created_at INTEGER NOT NULL,
                        done_at INTEGER,
                        error TEXT
                    );
                    CREATE INDEX outbox_pending ON outbox(peer, seq) WHERE state = 'pending';
                    CREATE INDEX outbox_item ON outbox(item);
                    CREATE INDEX outbox_dead ON outbox(peer) WHERE state = 'dead';
                    CREATE TABLE peer_state (
                        name TEXT PRIMARY KEY NOT NULL,
                        disabled_at INTEGER,
                        disabled_reason TEXT
                    ) WITHOUT ROWID;
                    -- webhook-id of every request accepted from a peer in the last minutes: a replay is refused.
                    CREATE TABLE peer_message (
                        id TEXT PRIMARY KEY NOT NULL,
                        peer TEXT NOT NULL,
                        at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    """
            )
        }
        migrator.registerMigration("v5-installed-rules") { db in
            try db.execute(
                sql: """
                    -- Detection rules installed under state_dir/rules, one per format and rule id (a newer
                    -- version replaces an older one); the files follow this table. Rules rendered by
                    -- playbooks are here too; the rule table keeps their signature ids.
                    CREATE TABLE installed_rule (
                        format TEXT NOT NULL,
                        rule_id TEXT NOT NULL,
                        name TEXT NOT NULL,
                        version TEXT,
                        title TEXT NOT NULL,
                        item TEXT NOT NULL,           -- the rule item installed
                        parent TEXT,                  -- the item it was rendered from, if it was
                        origin TEXT NOT NULL,
                        via TEXT NOT NULL,
                        playbook TEXT NOT NULL,
                        content TEXT NOT NULL,
                        installed_at INTEGER NOT NULL,
                        PRIMARY KEY (format, rule_id)
                    ) WITHOUT ROWID;
                    CREATE UNIQUE INDEX installed_rule_name ON installed_rule(format, name);
                    CREATE INDEX installed_rule_item ON installed_rule(item);
                    CREATE INDEX installed_rule_parent ON installed_rule(parent);
                    INSERT INTO installed_rule
                        SELECT rule.format, CASE WHEN rule.format IN ('suricata', 'snort') THEN 'sid:' || rule.sid ELSE rule.name END,
                            rule.name, NULL, rule.name, rule.item, rule.item,
                            coalesce((SELECT json_extract(audit.detail, '$.origin') FROM item JOIN audit ON audit.seq = item.audit_seq WHERE item.id = rule.item), ''),
                            coalesce((SELECT item.via FROM item WHERE item.id = rule.item), ''), rule.playbook, rule.content, rule.updated_at
                        FROM rule;
                    """
            )
        }
        migrator.registerMigration("v6-outbox-refused") { db in
            // Outbox entries a peer took but refused (state 'refused'), counted for GET /v1/peers.
            try db.execute(sql: "CREATE INDEX outbox_refused ON outbox(peer) WHERE state = 'refused'")
        }
        migrator.registerMigration("v7-one-entry-per-item") { db in
            try db.execute(
                sql: """
                    -- An item's entry records what the item caused (matches, decisions, outbox entries,
                    -- rules) as a JSON array, covered by the entry's hash.
                    ALTER TABLE audit ADD COLUMN caused TEXT;
                    -- Entries of their own by subject (an item's entry is found through item.audit_seq).
                    CREATE INDEX audit_subject ON audit(subject) WHERE event != 'item.accepted';
                    -- The entries of items that merged into or extended a decision they did not create.
                    CREATE TABLE audit_ref (
                        ref TEXT NOT NULL,
                        seq INTEGER NOT NULL,
                        PRIMARY KEY (ref, seq)
                    ) WITHOUT ROWID;
                    """
            )
        }
        migrator.registerMigration("v8-outbox-lists") { db in
            // `path` and `suggest` were comma-joined; they are JSON arrays now.
            let rows = try Row.fetchAll(db, sql: "SELECT seq, path, suggest FROM outbox WHERE path NOT LIKE '[%'")
            for row in rows {
                func list(_ text: String) -> String {
                    String(decoding: OutboxEntry.list(text.split(separator: ",").map(String.init)), as: UTF8.self)
                }
                try db.execute(
                    sql: "UPDATE outbox SET path = ?, suggest = ? WHERE seq = ?",
                    arguments: [list(row["path"]), list(row["suggest"]), row["seq"] as Int64])
            }
        }
        migrator.registerMigration("v9-idempotency-keys") { db in
            try db.execute(
                sql: """
                    -- Requests sent with an Idempotency-Key: the digest of what was sent, so that the
                    -- same key with another body is refused. Forgotten after a day.
                    CREATE TABLE idempotency_key (
                        via TEXT NOT NULL,
                        key TEXT NOT NULL,
                        digest BLOB NOT NULL,
                        created_at INTEGER NOT NULL,
                        PRIMARY KEY (via, key)
                    ) WITHOUT ROWID;
                    CREATE INDEX idempotency_key_created ON idempotency_key(created_at);
                    """
            )
        }
        migrator.registerMigration("v10-decision-changes") { db in
            try db.execute(
                sql: """
                    -- created_seq: a decision's number (the `id` CrowdSec bouncers see); change_seq:
                    -- the number of its last change (created, extended, revoked, expired). One sequence
                    -- numbers both, so that the bouncer API reads what changed after a point through an index.
                    ALTER TABLE decision ADD COLUMN created_seq INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE decision ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
                    UPDATE decision SET created_seq = numbered.n, change_seq = numbered.n
                        FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM decision) AS numbered
                        WHERE decision.id = numbered.id;
                    CREATE INDEX decision_change ON decision(change_seq);
                    -- A bouncer's first pull pages through the decisions in force by number, and
                    -- through those no longer in force by when they would have ended.
                    CREATE INDEX decision_in_force ON decision(created_seq) WHERE state = 'active';
                    CREATE INDEX decision_ended ON decision(expires_at, created_seq) WHERE state != 'active';
                    """
            )
        }
        migrator.registerMigration("v11-allow-entries") { db in
            try db.execute(
                sql: """
                    -- Temporary allow entries (OpenC2 allow): no block overlapping one is made while it
                    -- lasts. Numbered from the sequence that numbers decisions (one rule number names either).
                    CREATE TABLE allow_entry (
                        number INTEGER PRIMARY KEY,
                        value TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        reason TEXT NOT NULL,
                        by TEXT NOT NULL,
                        state TEXT NOT NULL,          -- active | revoked | expired
                        revoked_at INTEGER
                    );
                    """
            )
        }
        migrator.registerMigration("v12-decision-item") { db in
            // Revoking what an item caused, and pruning the outbox entries of items with no
            // decision in force, look decisions up by item.
            try db.execute(sql: "CREATE INDEX decision_item ON decision(item) WHERE item IS NOT NULL")
        }
        migrator.registerMigration("v13-stix") { db in
            try db.execute(
                sql: """
                    -- When an item was withdrawn (revoked by its source, or replaced by a newer STIX
                    -- version): it no longer supports the decisions it created or merged into.
                    ALTER TABLE item ADD COLUMN revoked_at INTEGER;
                    -- The STIX objects ingested, by id: the version in force, who sent it, and the
                    -- items it became (a JSON array), which a newer version or a revocation withdraws.
                    -- key: the id's UUID as 16 bytes. STIX ids are random: the table grows at its end
                    -- and only the small unique index on key takes random inserts (a bulk bundle
                    -- dirtied a page an object when the rows themselves were keyed by id).
                    CREATE TABLE stix_object (
                        key BLOB NOT NULL UNIQUE,
                        id TEXT NOT NULL,
                        via TEXT NOT NULL,
                        version INTEGER NOT NULL,     -- modified, in milliseconds
                        modified TEXT NOT NULL,       -- as the object gave it
                        revoked INTEGER NOT NULL,
                        items TEXT NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    -- Every version of every item that may be shared, as a STIX object, in the order
                    -- added: what TAXII collections serve. seq is the time added in milliseconds times
                    -- 1024 plus a counter, so that it orders by time and names the time (date_added).
                    -- A withdrawn item gets a second row, its revoked version. TLP:RED items have none.
                    CREATE TABLE stix_export (
                        seq INTEGER PRIMARY KEY,
                        object TEXT NOT NULL,         -- the STIX id it is served under
                        object_key INTEGER NOT NULL,  -- StoreTransaction.exportKeys (v15): a small index
                        item TEXT NOT NULL,
                        kind TEXT NOT NULL,           -- the indicator's kind, or 'rule'
                        tlp INTEGER NOT NULL,         -- 0 clear, 1 green, 2 amber, 3 amber+strict
                        version INTEGER NOT NULL,     -- modified, in milliseconds
                        revoked INTEGER NOT NULL
                    );
                    CREATE INDEX stix_export_object ON stix_export(object_key, seq);
                    -- The status of each TAXII add-objects request, for GET .../status/{id}/ (kept 7 days).
                    CREATE TABLE taxii_status (
                        id TEXT PRIMARY KEY NOT NULL,
                        via TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        body TEXT NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX taxii_status_created ON taxii_status(created_at);
                    """
            )
        }
        migrator.registerMigration("v14-feeds") { db in
            try db.execute(
                sql: """
                    -- Each feed's state: its last good pull (and what a conditional GET sends), a TAXII
                    -- feed's cursor (the last date_added read), its last error and how many pulls failed since.
                    CREATE TABLE feed_state (
                        name TEXT PRIMARY KEY NOT NULL,
                        etag TEXT,
                        last_modified TEXT,
                        cursor TEXT,
                        last_success INTEGER,
                        last_attempt INTEGER,
                        last_error TEXT,
                        failures INTEGER NOT NULL DEFAULT 0,
                        items INTEGER NOT NULL DEFAULT 0,
                        duration_ms INTEGER NOT NULL DEFAULT 0,
                        values_listed INTEGER NOT NULL DEFAULT 0
                    ) WITHOUT ROWID;
                    -- The values a list feed (text, csv) holds now, each with the item it last became, a
                    -- line "value<TAB>item" each: a value seen again is not stored again, one that vanished
                    -- is revoked (sync). One text a feed, read and written whole, apart from feed_state
                    -- (which each pull updates, and SQLite rewrites a row whole).
                    CREATE TABLE feed_list (
                        name TEXT PRIMARY KEY NOT NULL,
                        listed TEXT NOT NULL
                    ) WITHOUT ROWID;
                    """
            )
        }
        migrator.registerMigration("v15-export-key") { db in
            // The exported versions of an object ingested as STIX are found by its stix_object row
            // (StoreTransaction.exportKeys), no longer by the first bytes of its random UUID.
            let objects = try Row.fetchAll(db, sql: "SELECT rowid, id FROM stix_object")
            for object in objects {
                let id: String = object[1]
                try db.execute(
                    sql: "UPDATE stix_export SET object_key = ? WHERE object_key = ? AND object = ?",
                    arguments: [object[0] as Int64, StoreTransaction.objectKey(id), id])
            }
        }
        migrator.registerMigration("v16-peer-received") { db in
            // What each peer's requests carried, for anti-entropy (`PeerSync`).
            try db.execute(
                sql: """
                    CREATE TABLE peer_received (
                        peer TEXT NOT NULL,
                        entry TEXT NOT NULL,
                        at INTEGER NOT NULL,
                        PRIMARY KEY (peer, entry)
                    ) WITHOUT ROWID;
                    """
            )
        }
        return migrator
    }
}

public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    public var description: String { message }

    /// The disk holding the database is full: nothing of the write was kept.
    public var isStorageFull: Bool { code == .storageFull }
}

extension ErrorCode {
    public static let storageFull = ErrorCode("storage_full")
}

// MARK: - Reading

extension Store {
    public struct DecisionFilter: Sendable {
        /// Decisions whose address or network contains this address.
        public var containing: IPAddress?
        public var playbook: String?
        public var origin: String?
        /// true: only those in force now; false: only those no longer in force; nil: all.
        public var active: Bool?
        /// Continue after this decision id (ids are time-ordered).
        public var after: String?
        public var limit = 100

        public init() {}
    }

    public func decisions(_ filter: DecisionFilter, now: Date) async throws -> [Decision] {
        var clauses: [String] = []
        var arguments: StatementArguments = []
        if let address = filter.containing {
            // Every network that could contain the address, one per prefix length: an index lookup each.
            let candidates = (0...address.family.bitWidth).map {
                IPNetwork(address: IPNetwork.mask(address, to: $0), prefixLength: $0).description
            }
            clauses.append("value IN (\(Array(repeating: "?", count: candidates.count).joined(separator: ",")))")
            for candidate in candidates { arguments += [candidate] }
        }
        if let playbook = filter.playbook {
            clauses.append("playbook = ?")
            arguments += [playbook]
        }
        if let origin = filter.origin {
            clauses.append("origin = ?")
            arguments += [origin]
        }
        if let active = filter.active {
            clauses.append(active ? "(state = 'active' AND expires_at > ?)" : "NOT (state = 'active' AND expires_at > ?)")
            arguments += [now.milliseconds]
        }
        if let after = filter.after {
            clauses.append("id > ?")
            arguments += [after]
        }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        let sql = "SELECT * FROM decision \(whereClause) ORDER BY id LIMIT \(max(1, filter.limit))"
        let bound = arguments
        return try await pool.read { db in try Decision.fetchAll(db, sql: sql, arguments: bound) }
    }

    public func decision(id: String) async throws -> Decision? {
        try await pool.read { db in try Decision.fetchOne(db, sql: "SELECT * FROM decision WHERE id = ?", arguments: [id]) }
    }

    /// How many decisions are in force (not simulated), for the metrics.
    public var activeDecisionCount: Int { committer.activeBlocks }

    /// What the firewall must hold: the decisions in force (not simulated), only the columns
    /// enforcement needs (a reconcile reads every one of them).
    public func enforcedBlocks(now: Date) async throws -> [FirewallBlock] {
        try await pool.read { db in
            let rows = try Row.fetchCursor(
                db, sql: "SELECT value, direction, expires_at FROM decision WHERE state = 'active' AND simulated = 0 AND expires_at > ?",
                arguments: [now.milliseconds]
            )
            var blocks: [FirewallBlock] = []
            while let row = try rows.next() {
                let value: String = row[0]
                guard let target = try? IPNetwork(parsing: value, allowBareAddress: true) else {
                    throw StoreError(code: "corrupt", message: "an active decision holds an invalid value '\(value)'")
                }
                blocks.append(FirewallBlock(target: target, direction: Direction(rawValue: row[1]) ?? .both, expiresAt: Date(milliseconds: row[2])))
            }
            return blocks
        }
    }

    /// Which audit entries to read: all of them, or those about one item or one decision.
    public enum AuditSelection: Sendable, Hashable {
        case all
        /// The item's own entry (the item and what it caused) and later entries about it (exec
        /// results, deliveries withheld or refused, revocations, rules removed).
        case item(String)
        /// The entry of the item that created the decision, those of items that merged into it or
        /// extended it, and its own entries (created by hand, extended, revoked, expired).
        case decision(String)
    }

    /// Entries after `seq`, oldest first. Each selection reads indexes only: an item's entry through
    /// the item's row, the entries of items that touched a decision through `audit_ref`, entries of
    /// their own through `audit_subject`.
    public func audit(_ selection: AuditSelection = .all, after seq: Int64, limit: Int) async throws -> [AuditEntry] {
        try await pool.read { db in try Store.audit(selection, after: seq, limit: limit, in: db) }
    }

    /// `audit(_:after:limit:)` on a read-only store (the command line's).
    public func auditEntries(_ selection: AuditSelection, after seq: Int64 = 0, limit: Int) throws -> [AuditEntry] {
        try pool.read { db in try Store.audit(selection, after: seq, limit: limit, in: db) }
    }

    private static func audit(_ selection: AuditSelection, after seq: Int64, limit: Int, in db: Database) throws -> [AuditEntry] {
        let own = "SELECT seq FROM audit WHERE subject = ?1 AND event != 'item.accepted'"
        let sql: String
        let arguments: StatementArguments
        switch selection {
        case .all:
            return try Row.fetchAll(db, sql: "SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", arguments: [seq, limit])
                .map(AuditEntry.init(row:))
        case .item(let id):
            sql = "SELECT audit_seq FROM item WHERE id = ?1 UNION \(own)"
            arguments = [id, seq, limit]
        case .decision(let id):
            sql = """
                SELECT item.audit_seq FROM decision JOIN item ON item.id = decision.item WHERE decision.id = ?1
                UNION SELECT seq FROM audit_ref WHERE ref = ?1 UNION \(own)
                """
            arguments = [id, seq, limit]
        }
        return try Row.fetchAll(
            db, sql: "SELECT * FROM audit WHERE seq IN (\(sql)) AND seq > ?2 ORDER BY seq LIMIT ?3", arguments: arguments
        ).map(AuditEntry.init(row:))
    }

    /// Walks the whole audit chain, recomputing every hash.
    public func verifyAudit() throws -> AuditVerification {
        try pool.read { db in
            var previous = AuditChain.genesis
            var expectedSeq: Int64 = 1
            var count: Int64 = 0
            let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM audit ORDER BY seq")
            while let row = try cursor.next() {
                let entry = AuditEntry(row: row)
                count += 1
                if entry.seq != expectedSeq {
                    return AuditVerification(
                        entries: count, firstBroken: expectedSeq,
                        problem: "entry \(expectedSeq) is missing (the next entry is \(entry.seq))"
                    )
                }
                let hash = AuditChain.hash(
                    previous: previous, seq: entry.seq, at: entry.at, event: entry.event, subject: entry.subject,
                    detailDigest: AuditChain.digest(Array(entry.detail.utf8)), causedDigest: entry.caused.map { AuditChain.digest(Array($0.utf8)) }
                )
                if hash != entry.hash {
                    return AuditVerification(
                        entries: count, firstBroken: entry.seq,
                        problem:
                            "entry \(entry.seq) (\(entry.event) \(entry.subject)) does not match its hash: it was altered, or an entry before it was"
                    )
                }
                previous = entry.hash
                expectedSeq += 1
            }
            return AuditVerification(entries: count, firstBroken: nil, problem: nil)
        }
    }

    /// Calls `body` with each audit entry after `seq`, in order, without loading them all.
    public func exportAudit(after seq: Int64, _ body: (AuditEntry) throws -> Void) throws {
        try pool.read { db in
            let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM audit WHERE seq > ? ORDER BY seq", arguments: [seq])
            while let row = try cursor.next() { try body(AuditEntry(row: row)) }
        }
    }

    public func itemCount() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM item") ?? 0 }
    }

    /// The stored JSON of an item (kept in its `item.accepted` audit entry).
    public func itemJSON(id: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(
                db, sql: "SELECT audit.detail FROM item JOIN audit ON audit.seq = item.audit_seq WHERE item.id = ?", arguments: [id]
            )
        }
    }
}

extension AuditEntry {
    init(row: Row) {
        self.init(
            seq: row["seq"], at: row["at"], event: row["event"], subject: row["subject"], detail: row["detail"], caused: row["caused"],
            hash: Array(row["hash"] as Data? ?? Data())
        )
    }
}

extension Decision: FetchableRecord {
    public init(row: Row) throws {
        let value: String = row["value"]
        let target: IPNetwork
        do {
            target = try IPNetwork(parsing: value, allowBareAddress: true)
        } catch {
            throw StoreError(code: "corrupt", message: "decision \(row["id"] as String? ?? "?") holds an invalid value '\(value)'")
        }
        self.init(
            id: row["id"], target: target, direction: Direction(rawValue: row["direction"]) ?? .both,
            createdAt: Date(milliseconds: row["created_at"]), expiresAt: Date(milliseconds: row["expires_at"]),
            playbook: row["playbook"], item: row["item"], origin: row["origin"], reason: row["reason"],
            simulated: row["simulated"], state: State(rawValue: row["state"]) ?? .active,
            revokedAt: (row["revoked_at"] as Int64?).map(Date.init(milliseconds:))
        )
    }
}
