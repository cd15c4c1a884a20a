import Foundation
import GRDB
import GRDBSQLite
import RampartCore
import RampartTesting
import Testing

@testable import RampartStore

struct StoreTests {
    let directory: String
    let store: Store
    let now = Date(milliseconds: 1_800_000_000_000)

    init() throws {
        directory = Scratch.directory("rampart-store").path
        store = try Store(path: directory + "/rampart.sqlite")
        store.start()
    }

    func item(_ value: String, via: String = "api:test") throws -> Item {
        let (kind, normalised) = try IndicatorValue.normalise(value)
        return Item(
            id: IDGenerator.shared.next(), payload: .indicator(Indicator(kind: kind, value: normalised)), via: via,
            origin: "node-a", receivedAt: now
        )
    }

    func block(_ value: String, _ duration: Duration = .seconds(3600), direction: Direction = .both, simulated: Bool = false) -> BlockRequest {
        BlockRequest(
            target: try! IPNetwork(parsing: value, allowBareAddress: true), direction: direction, duration: duration,
            origin: "node-a", reason: "test", simulated: simulated
        )
    }

    /// A request id is refused while a replay of it could pass the timestamp check, then forgotten.
    @Test func peerRequestIdsAreRememberedThenPruned() async throws {
        let at = now
        let seen = try await store.write { tx in
            [try tx.recordPeerMessage(id: "msg_1", peer: "b", at: at), try tx.recordPeerMessage(id: "msg_1", peer: "b", at: at)]
        }
        #expect(seen == [true, false])
        let again = try await store.write { tx in
            try tx.prunePeerMessages(before: at)
            let kept = try tx.recordPeerMessage(id: "msg_1", peer: "b", at: at)
            try tx.prunePeerMessages(before: at.addingTimeInterval(1))
            return [kept, try tx.recordPeerMessage(id: "msg_1", peer: "b", at: at)]
        }
        #expect(again == [false, true])
    }

    /// A 2xx means durable: a write returns only once the log was synced after its commit (SQLite
    /// itself, at `synchronous = NORMAL`, syncs only at checkpoints).
    @Test func writesReturnOnceTheLogIsSynced() async throws {
        let level = try await store.write { tx in try Int.fetchOne(tx.db, sql: "PRAGMA synchronous") }
        #expect(level == 1, "the writer leaves syncing to the group committer")
        let before = store.logSyncs
        for _ in 0..<5 {
            let synced = store.logSyncs
            _ = try await store.write { tx in try tx.recordPeerMessage(id: UUID().uuidString, peer: "b", at: now) }
            #expect(store.logSyncs > synced)
        }
        #expect(store.logSyncs >= before + 5)
    }

    @Test func itemsAreStoredOnceAndAudited() async throws {
        let first = try item("198.51.100.7")
        let inserted = try await store.write { tx in
            [try tx.insert(first), try tx.insert(first)]
        }
        #expect(inserted == [true, false])
        #expect(try await store.itemCount() == 1)
        let entries = try await store.audit(after: 0, limit: 10)
        #expect(entries.map(\.event) == ["item.accepted"])
        #expect(entries[0].subject == first.id)
        #expect(try store.verifyAudit().isIntact)
    }

    @Test func aFailingJobRollsBackAloneAndKeepsTheChainWhole() async throws {
        struct Boom: Error {}
        let good = try item("198.51.100.7")
        let bad = try item("198.51.100.8")
        let store = store
        let a = Task { try await store.write { tx in try tx.insert(good) } }
        let b = Task {
            try await store.write { tx in
                try tx.insert(bad)
                throw Boom()
            }
        }
        #expect(try await a.value)
        await #expect(throws: Boom.self) { try await b.value }
        let later = try item("198.51.100.9")
        _ = try await store.write { tx in try tx.insert(later) }
        #expect(try await store.itemCount() == 2)
        let verification = try store.verifyAudit()
        #expect(verification.isIntact)
        #expect(verification.entries == 2)
    }

    @Test func concurrentWritesShareCommitsAndAllLand() async throws {
        let items = try (0..<500).map { try item("203.0.\($0 / 250).\($0 % 250 + 1)") }
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for item in items {
                group.addTask { try await store.write { tx in try tx.insert(item) } }
            }
            for try await inserted in group { #expect(inserted) }
        }
        #expect(try await store.itemCount() == 500)
        #expect(try store.verifyAudit().entries == 500)
    }

    @Test func blocksMergeOnOneValueAndTheLongestExpiryWins() async throws {
        let policy = SafetyPolicy()
        let outcomes = try await store.write { [now] tx in
            [
                try tx.block(block("77.90.185.20", .seconds(3600), direction: .inbound), policy: policy, now: now),
                try tx.block(block("77.90.185.20", .seconds(600), direction: .inbound), policy: policy, now: now),
                try tx.block(block("77.90.185.20", .seconds(7200), direction: .outbound), policy: policy, now: now),
            ]
        }
        guard case .created(let created) = outcomes[0], case .unchanged(let same) = outcomes[1],
            case .extended(let extended, _) = outcomes[2]
        else {
            Issue.record("unexpected outcomes \(outcomes)")
            return
        }
        #expect(same.id == created.id)
        #expect(extended.id == created.id)
        #expect(extended.expiresAt == now.adding(.seconds(7200)))
        #expect(extended.direction == .both)
        let active = try await store.decisions(Store.DecisionFilter(), now: now)
        #expect(active.count == 1)
    }

    /// Blocks in a row for one network (one item's playbooks) share what the first read of its
    /// decisions and what each left: merges, extensions, simulated decisions and expiries come out
    /// as the store has them, and a block for another network reads the store.
    @Test func blocksInARowForOneNetworkShareTheirReadOfItsDecisions() async throws {
        let policy = SafetyPolicy()
        let later = now.adding(.seconds(3))
        let outcomes = try await store.write { [now] tx in
            var known: StoreTransaction.ActiveDecisions?
            return try [
                (block("77.90.185.20", .seconds(2)), now),
                (block("77.90.185.20", .seconds(2), simulated: true), now),
                (block("77.90.185.20", .seconds(1)), now),
                (block("77.90.185.21"), now),
                (block("77.90.185.20", .seconds(60)), later),
                (block("77.90.185.20", .seconds(120), direction: .inbound), later),
                (block("77.90.185.20", .seconds(30)), later),
            ].map { request, at in
                switch try tx.block(request, policy: policy, now: at, known: &known) {
                case .created: "created"
                case .extended: "extended"
                case .unchanged: "unchanged"
                case .refused: "refused"
                }
            }
        }
        #expect(outcomes == ["created", "created", "unchanged", "created", "created", "extended", "unchanged"])
        // Both decisions whose time ran out are closed once, the enforced and the simulated one.
        let events = try await store.audit(after: 0, limit: 20).map(\.event)
        #expect(
            events == [
                "decision.created", "decision.created", "decision.merged", "decision.created", "decision.expired", "decision.expired",
                "decision.created", "decision.extended", "decision.merged",
            ])
        let active = try await store.decisions(Store.DecisionFilter(), now: later).filter { $0.isActive(at: later) }
        #expect(active.map(\.value).sorted() == ["77.90.185.20", "77.90.185.21"])
        #expect(active.first { $0.value == "77.90.185.20" }?.expiresAt == later.adding(.seconds(120)))
    }

    @Test func simulatedDecisionsAreSeparateFromEnforcedOnes() async throws {
        let policy = SafetyPolicy()
        _ = try await store.write { [now] tx in
            _ = try tx.block(block("77.90.185.20", simulated: true), policy: policy, now: now)
            _ = try tx.block(block("77.90.185.20"), policy: policy, now: now)
        }
        #expect(try await store.decisions(Store.DecisionFilter(), now: now).count == 2)
        #expect(try await store.enforcedBlocks(now: now).map(\.target.description) == ["77.90.185.20"])
    }

    @Test func refusedBlocksAreAuditedNotStored() async throws {
        let outcome = try await store.write { [now] tx in
            try tx.block(block("127.0.0.1"), policy: SafetyPolicy(), now: now)
        }
        guard case .refused(let refusal) = outcome else {
            Issue.record("expected a refusal, got \(outcome)")
            return
        }
        #expect(refusal.code == "protected")
        #expect(try await store.decisions(Store.DecisionFilter(), now: now).isEmpty)
        let entries = try await store.audit(after: 0, limit: 10)
        #expect(entries.map(\.event) == ["decision.refused"])
        #expect(entries[0].detail.contains("loopback"))
    }

    @Test func theActiveBlockCapHolds() async throws {
        let policy = SafetyPolicy(maxActiveBlocks: 2)
        let outcomes = try await store.write { [now] tx in
            try ["77.90.185.20", "77.90.185.21", "77.90.185.22"].map { try tx.block(block($0), policy: policy, now: now) }
        }
        #expect(outcomes.compactMap(\.decision).count == 2)
        guard case .refused(let refusal) = outcomes[2] else {
            Issue.record("expected the third block to be refused")
            return
        }
        #expect(refusal.code == "too_many_blocks")
    }

    @Test func revokeAndExpire() async throws {
        let policy = SafetyPolicy()
        let (a, _) = try await store.write { [now] tx in
            (
                try tx.block(block("77.90.185.20", .seconds(60)), policy: policy, now: now).decision!,
                try tx.block(block("77.90.185.21", .seconds(2)), policy: policy, now: now).decision!
            )
        }
        let revoked = try await store.write { [now] tx in try tx.revoke(id: a.id, reason: "false positive", by: "api:admin", now: now) }
        #expect(revoked.map(\.id) == [a.id])
        let later = now.adding(.seconds(3))
        #expect(try await store.decisions(Store.DecisionFilter(), now: later).allSatisfy { !$0.isActive(at: later) })
        let expired = try await store.write { tx in try tx.expire(now: later) }
        #expect(expired.map(\.value) == ["77.90.185.21"])
        let events = try await store.audit(after: 0, limit: 10).map(\.event)
        #expect(events == ["decision.created", "decision.created", "decision.revoked", "decision.expired"])
        #expect(try store.verifyAudit().isIntact)
    }

    @Test func containsFilterFindsNetworksHoldingTheAddress() async throws {
        let policy = SafetyPolicy()
        _ = try await store.write { [now] tx in
            for value in ["77.90.185.20", "77.90.185.0/24", "77.90.0.0/16", "77.91.0.0/16"] {
                _ = try tx.block(block(value), policy: policy, now: now)
            }
        }
        var filter = Store.DecisionFilter()
        filter.containing = try IPAddress(parsing: "77.90.185.20")
        let values = try await store.decisions(filter, now: now).map(\.value).sorted()
        #expect(values == ["77.90.0.0/16", "77.90.185.0/24", "77.90.185.20"])
    }

    @Test func verifyNamesTheFirstAlteredEntry() async throws {
        _ = try await store.write { tx in
            for i in 1...5 { try tx.insert(try item("203.0.113.\(i)")) }
        }
        #expect(try store.verifyAudit().isIntact)
        try await store.pool.write { db in
            try db.execute(sql: "UPDATE audit SET detail = replace(detail, '203.0.113.3', '203.0.113.99') WHERE seq = 3")
        }
        let verification = try store.verifyAudit()
        #expect(verification.firstBroken == 3)
        try await store.pool.write { db in try db.execute(sql: "DELETE FROM audit WHERE seq = 3") }
        #expect(try store.verifyAudit().firstBroken == 3)
    }

    @Test func theChainContinuesAcrossReopen() async throws {
        _ = try await store.write { tx in try tx.insert(try item("203.0.113.1")) }
        await store.close()
        let reopened = try Store(path: store.path)
        reopened.start()
        _ = try await reopened.write { tx in try tx.insert(try item("203.0.113.2")) }
        let verification = try reopened.verifyAudit()
        #expect(verification.isIntact)
        #expect(verification.entries == 2)
        await reopened.close()
    }

    /// Opening a store starts no thread: one never started holds nothing once released, and its
    /// queued writes fail when it is closed rather than wait forever.
    @Test func aStoreThatNeverStartedIsReleasedAndRefusesItsQueuedWrites() async throws {
        weak var released: Store?
        do {
            let unstarted = try Store(path: directory + "/other.sqlite")
            released = unstarted
            let queued = unstarted.enqueue { tx in try tx.insert(try item("203.0.113.1")) }
            await unstarted.close()
            await #expect(throws: StoreError.self) { try await queued.value() }
        }
        #expect(released == nil)
    }

    /// Outbox rows written when `path` and `suggest` were comma-joined read back as the same lists
    /// once the store is opened (migration `v8-outbox-lists`); new rows are JSON arrays.
    @Test func commaJoinedOutboxListsAreMigrated() async throws {
        let path = directory + "/v7.sqlite"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let old = try DatabaseQueue(path: path)
        try Store.migrator.migrate(old, upTo: "v7-one-entry-per-item")
        try await old.write { db in
            try db.execute(
                sql: """
                    INSERT INTO outbox(peer, item, body, path, hops_left, suggest, state, created_at)
                    VALUES ('b', 'i1', x'7B7D', 'node-a,node-b', 1, 'block,rule', 'pending', 1), ('b', 'i2', x'7B7D', 'node-a', 0, '', 'pending', 2)
                    """)
        }
        try old.close()
        let migrated = try Store(path: path)
        migrated.start()
        let at = now
        _ = try await migrated.write { tx in
            try tx.enqueue(peer: "b", item: "i3", body: [0x7B, 0x7D], path: ["x,y"], hopsLeft: 0, suggest: [], at: at)
        }
        let entries = try await migrated.pendingOutbox(peer: "b", limit: 10)
        #expect(entries.map(\.path) == [["node-a", "node-b"], ["node-a"], ["x,y"]])
        #expect(entries.map(\.suggest) == [["block", "rule"], [], []])
        let stored = try await migrated.pool.read { db in try String.fetchAll(db, sql: "SELECT path FROM outbox ORDER BY seq") }
        #expect(stored == [#"["node-a","node-b"]"#, #"["node-a"]"#, #"["x,y"]"#])
        await migrated.close()
    }

    /// Export rows of objects ingested as STIX move to their `stix_object` row's key (migration
    /// `v15-export-key`); those of items of our own keep theirs.
    @Test func exportKeysAreMigrated() async throws {
        let path = directory + "/v14.sqlite"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let old = try DatabaseQueue(path: path)
        try Store.migrator.migrate(old, upTo: "v14-feeds")
        let stix = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
        let own = STIX.objectID(ofItem: "01a232f5-94cf-701c-85cb-59c81ef064f9")
        try await old.write { db in
            try db.execute(
                sql:
                    "INSERT INTO stix_object(rowid, key, id, via, version, modified, revoked, items, updated_at) VALUES (7, ?, ?, 'api:x', 1, 'm', 0, '[]', 1)",
                arguments: [StoreTransaction.key(stix), stix])
            for (seq, object) in [(1, stix), (2, own), (3, stix)] {
                try db.execute(
                    sql: "INSERT INTO stix_export(seq, object, object_key, item, kind, tlp, version, revoked) VALUES (?, ?, ?, 'i', 'ipv4', 1, 1, 0)",
                    arguments: [seq, object, StoreTransaction.objectKey(object)])
            }
        }
        try old.close()
        let migrated = try Store(path: path)
        let keys = try await migrated.pool.read { db in try Int64.fetchAll(db, sql: "SELECT object_key FROM stix_export ORDER BY seq") }
        #expect(keys == [7, StoreTransaction.objectKey(own), 7])
        let found = try await migrated.pool.read { db in
            (try StoreTransaction.exportKeys(db, object: stix), try StoreTransaction.exportKeys(db, object: own))
        }
        #expect(found.0 == [StoreTransaction.objectKey(stix), 7] && found.1 == [StoreTransaction.objectKey(own)])
        await migrated.close()
    }

    /// Every batch a peer acknowledges or fails names other entries; the statements that mark them
    /// must not be prepared (and cached on the writer's connection) once per batch. The soak found
    /// the writer's statement cache growing by about 5 GB an hour at 500 items/s to 10 peers.
    @Test func markingBatchesDoesNotGrowTheStatementCache() async throws {
        _ = try await store.write { [now] tx in
            for n in 0..<400 { try tx.enqueue(peer: "b", item: "i\(n)", body: nil, path: ["node-a"], hopsLeft: 0, suggest: [], at: now) }
        }
        let seqs = try await store.pendingOutbox(peer: "b", limit: 400).map(\.seq)
        #expect(seqs.count == 400)
        @Sendable func preparedStatements(_ tx: StoreTransaction) -> Int {
            var count = 0
            var statement = sqlite3_next_stmt(tx.db.sqliteConnection, nil)
            while statement != nil {
                count += 1
                statement = sqlite3_next_stmt(tx.db.sqliteConnection, statement)
            }
            return count
        }
        func mark(_ batches: Range<Int>) async throws -> Int {
            try await store.write { [now] tx in
                for batch in batches {
                    let part = Array(seqs[(batch * 4)..<(batch * 4 + 1 + batch % 4)])
                    if batch % 2 == 0 {
                        try tx.markDelivered(peer: "b", seqs: part, webhookID: "msg_\(batch)", at: now)
                    } else {
                        try tx.markFailed(peer: "b", seqs: part, error: "503", deadBefore: now, at: now)
                    }
                }
                return preparedStatements(tx)
            }
        }
        let early = try await mark(0..<4)
        let late = try await mark(4..<100)
        #expect(late == early, "\(late - early) statements more after 96 more batches")
        let delivered = try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE state = 'delivered'") }
        #expect(delivered == (0..<100).filter { $0 % 2 == 0 }.map { 1 + $0 % 4 }.reduce(0, +))
    }
}

/// The two sets anti-entropy compares, and what a sync changes in them.
struct SyncSetTests {
    let store: Store
    let now = Date(milliseconds: 1_800_000_000_000)

    init() throws {
        store = try Store(path: Scratch.directory("rampart-sync").path + "/rampart.sqlite")
        store.start()
    }

    static func id(_ bucket: Int, _ n: Int) -> String { String(format: "0190b6d2-63a5-7c49-9b1e-5f0e8a9c%02x%02x", n, bucket) }

    /// What was queued for a peer, less what the policy withheld or the peer refused, and less
    /// items withdrawn here since; a sync queues again only delivered and dead-lettered entries.
    @Test func queuedEntriesAndRequeue() async throws {
        let (delivered, dead, withheld, pending, revoked) = (Self.id(1, 1), Self.id(1, 2), Self.id(1, 3), Self.id(1, 4), Self.id(1, 5))
        let revocation = PeerMessage.Revocation(id: Self.id(2, 1), item: delivered, reason: "test")
        let at = now
        try await store.write { tx in
            for item in [delivered, dead, withheld, pending, revoked] {
                try tx.enqueue(peer: "b", item: item, path: ["a"], hopsLeft: 0, suggest: [], at: at)
            }
            try tx.enqueue(peer: "b", item: delivered, body: revocation.json, path: ["a"], hopsLeft: 0, suggest: [], at: at)
            try tx.enqueue(peer: "c", item: Self.id(3, 1), path: ["a"], hopsLeft: 0, suggest: [], at: at)
            // The item withdrawn here since it was queued.
            try tx.db.execute(sql: "INSERT INTO item(id, audit_seq, revoked_at) VALUES (?, 0, 1)", arguments: [revoked])
            try tx.db.execute(sql: "UPDATE outbox SET state = 'delivered' WHERE item IN (?, ?)", arguments: [delivered, revoked])
            try tx.db.execute(sql: "UPDATE outbox SET state = 'dead' WHERE item = ?", arguments: [dead])
            try tx.db.execute(sql: "UPDATE outbox SET state = 'withheld' WHERE item = ?", arguments: [withheld])
        }
        #expect(Set(try await store.queuedEntries(peer: "b")) == [delivered, dead, pending, revocation.id])
        let requeued = try await store.write { tx in
            try tx.requeue(peer: "b", entries: [delivered, dead, withheld, pending, revoked, revocation.id, Self.id(3, 1)])
        }
        #expect(requeued == 3, "the delivered item, the dead letter and the revocation")
        let states = try await store.pool.read { db in
            try Dictionary(
                uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT seq, state FROM outbox WHERE peer = 'b'").map {
                    ($0[0] as Int64, $0[1] as String)
                })
        }
        #expect(states.values.sorted() == ["delivered", "pending", "pending", "pending", "pending", "withheld"])
    }

    /// What a peer's requests carried; a peer's list of some buckets finds what this node lacks,
    /// records what it holds from elsewhere, and forgets what the peer no longer lists.
    @Test func receivedEntriesAndReconcile() async throws {
        let (taken, forgotten, lacking, held, other) = (Self.id(5, 1), Self.id(5, 2), Self.id(5, 3), Self.id(6, 1), Self.id(7, 1))
        let at = now
        try await store.write { tx in
            try tx.recordReceived(from: "a", entries: [taken, forgotten, other], at: at)
            try tx.recordReceived(from: "a", entries: [taken], at: at)
            try tx.recordReceived(from: "z", entries: [lacking], at: at)
            try tx.db.execute(sql: "INSERT INTO item(id, audit_seq) VALUES (?, 0)", arguments: [held])
        }
        #expect(Set(try await store.receivedEntries(from: "a")) == [taken, forgotten, other])
        let missing = try await store.write { tx in
            try tx.reconcileReceived(from: "a", buckets: [5, 6], listed: [taken, lacking, held], at: at)
        }
        #expect(missing == [lacking], "z's record of it is z's")
        #expect(Set(try await store.receivedEntries(from: "a")) == [taken, held, other], "bucket 7 was not listed: kept")
        let digests = PeerSync.digests(try await store.receivedEntries(from: "a"))
        #expect(PeerSync.differing(digests, PeerSync.digests([taken, held, other])).isEmpty)
    }
}
