import Foundation
import GRDB
import RampartCore
import RampartTesting
import Testing

@testable import RampartStore

/// The numbered changes the CrowdSec bouncer API reads: every creation, extension, revocation and
/// expiry of a decision takes the next number; simulated decisions are never read.
struct DecisionChangesTests {
    let directory = Scratch.directory("rampart-changes").path
    let store: Store
    let now = Date(milliseconds: 1_800_000_000_000)
    let policy = SafetyPolicy()

    init() throws {
        store = try Store(path: directory + "/rampart.sqlite")
        store.start()
    }

    func block(_ value: String, _ seconds: Int64 = 3600, item: String? = nil, simulated: Bool = false) -> BlockRequest {
        BlockRequest(
            target: try! IPNetwork(parsing: value, allowBareAddress: true), direction: .both, duration: .seconds(seconds), item: item,
            origin: "node-a", reason: "test", simulated: simulated
        )
    }

    @Test func eachChangeTakesTheNextNumberAndOnlyChangesAreRead() async throws {
        let (policy, now) = (policy, now)
        _ = try await store.write { tx in
            _ = try tx.block(block("77.90.185.20", item: "i1"), policy: policy, now: now)
            _ = try tx.block(block("77.90.185.21"), policy: policy, now: now)
            _ = try tx.block(block("77.90.185.22", simulated: true), policy: policy, now: now)
        }
        let first = try await store.decisionChanges(after: 0, now: now)
        #expect(first.head == 3)
        #expect(first.decisions.map(\.target.description) == ["77.90.185.20", "77.90.185.21"], "simulated decisions are never read")
        #expect(first.decisions.map(\.number) == [1, 2])
        #expect(first.decisions.allSatisfy { $0.inForce })

        // A corroboration changes nothing a bouncer sees; an extension and a revocation do.
        _ = try await store.write { tx in
            _ = try tx.block(block("77.90.185.20", item: "i2"), policy: policy, now: now)
            _ = try tx.block(block("77.90.185.21", 7200), policy: policy, now: now)
            _ = try tx.revoke(value: "77.90.185.20", reason: "test", by: "test", now: now)
        }
        let second = try await store.decisionChanges(after: first.head, now: now)
        #expect(second.head == 5)
        #expect(second.decisions.map(\.target.description) == ["77.90.185.21", "77.90.185.20"])
        #expect(second.decisions.map(\.inForce) == [true, false])
        #expect(second.decisions[0].expiresAt == now.addingTimeInterval(7200))
        #expect(second.decisions[0].number == 2, "an extended decision keeps its number")
        #expect(try await store.decisionChanges(after: second.head, now: now).decisions.isEmpty)

        // Expiry is a change too.
        let later = now.addingTimeInterval(7201)
        _ = try await store.write { tx in _ = try tx.expire(now: later) }
        let third = try await store.decisionChanges(after: second.head, now: later)
        #expect(third.decisions.map(\.target.description) == ["77.90.185.21"])
        #expect(third.decisions.map(\.inForce) == [false])
        await store.close()
    }

    /// A block of a value whose decision ran out closes that one on the way: both changes are read.
    @Test func aDecisionClosedOnTheWayIsAChangeToo() async throws {
        let (policy, now) = (policy, now)
        let later = now.addingTimeInterval(61)
        _ = try await store.write { tx in
            _ = try tx.block(block("77.90.185.31", 60), policy: policy, now: now)
            _ = try tx.block(block("77.90.185.31", 60), policy: policy, now: later)
        }
        let changes = try await store.decisionChanges(after: 0, now: later)
        #expect(changes.decisions.map(\.number) == [1, 3])
        #expect(changes.decisions.map(\.inForce) == [false, true])
        await store.close()
    }

    @Test func firstPullPagesThroughDecisionsInForceAndThoseThatEnded() async throws {
        let (policy, now) = (policy, now)
        _ = try await store.write { tx in
            for host in 1...25 { _ = try tx.block(block("77.90.186.\(host)"), policy: policy, now: now) }
            for host in 1...5 { _ = try tx.revoke(value: "77.90.186.\(host)", reason: "test", by: "test", now: now) }
            // Ended, but the value is in force again: not to be deleted.
            _ = try tx.block(block("77.90.186.1"), policy: policy, now: now)
        }
        var seen: [Int64] = []
        var after: Int64 = 0
        while true {
            let page = try await store.decisionsInForce(after: after, limit: 7, now: now)
            seen += page.map(\.number)
            guard page.count == 7, let last = page.last else { break }
            after = last.number
        }
        #expect(seen == Array(6...25) + [31], "the value blocked again has a number of its own")
        let since = now.addingTimeInterval(-86_400)
        var ended: [String] = []
        var position = (expiresAt: since, number: Int64(0))
        while true {
            let page = try await store.decisionsEnded(since: since, after: position, limit: 2, now: now)
            ended += page.map(\.target.description)
            guard page.count == 2, let last = page.last else { break }
            position = (last.expiresAt, last.number)
        }
        #expect(Set(ended) == ["77.90.186.2", "77.90.186.3", "77.90.186.4", "77.90.186.5"])
        #expect(ended.count == 4)
        // Long ended: no longer listed.
        #expect(
            try await store.decisionsEnded(since: now.addingTimeInterval(7200), after: (now.addingTimeInterval(7200), 0), limit: 10, now: now).isEmpty
        )

        let found = try await store.decisionsInForce(containing: try IPAddress(parsing: "77.90.186.7"), now: now)
        #expect(found.map(\.target.description) == ["77.90.186.7"])
        #expect(try await store.decisionsInForce(containing: try IPAddress(parsing: "77.90.186.2"), now: now).isEmpty)
        await store.close()
    }

    /// An allow entry refuses overlapping blocks until it ends, also after the store is opened
    /// again; its number comes from the decisions' sequence.
    @Test func allowEntriesOutliveARestartAndExpire() async throws {
        let (policy, now) = (policy, now)
        let path = directory + "/allow.sqlite"
        let first = try Store(path: path)
        first.start()
        let entry = try await first.write { tx in
            _ = try tx.block(block("77.90.185.1"), policy: policy, now: now)
            return try tx.allow(try IPNetwork(parsing: "77.90.185.0/24"), until: now.addingTimeInterval(600), reason: "test", by: "test", now: now)
        }
        #expect(entry.number == 2)
        await first.close()
        let reopened = try Store(path: path)
        reopened.start()
        let outcomes = try await reopened.write { tx in
            [
                try tx.block(block("77.90.185.2"), policy: policy, now: now),
                try tx.block(block("77.90.0.0/16"), policy: policy, now: now),
                try tx.block(block("77.90.186.1"), policy: policy, now: now),
            ]
        }
        #expect(outcomes.map { if case .refused(let refusal) = $0 { refusal.code.rawValue } else { "made" } } == ["allowed", "allowed", "made"])
        let later = now.addingTimeInterval(601)
        let after = try await reopened.write { tx in
            _ = try tx.expire(now: later)
            return try tx.block(block("77.90.185.2"), policy: policy, now: later)
        }
        #expect(after.decision != nil, "the entry ran out")
        #expect(try await reopened.allowEntries(activeOnly: true, now: later).isEmpty)
        #expect(try await reopened.allowEntries(activeOnly: false, now: later).map(\.state) == [.expired])
        let events = try reopened.auditEntries(.all, limit: 100).map(\.event)
        #expect(events.contains("allow.created") && events.contains("allow.expired"))
        await reopened.close()
    }

    /// Decisions made before the changes were numbered get numbers in the order they were made.
    @Test func decisionsOfAnOlderStoreAreNumbered() async throws {
        let path = directory + "/v9.sqlite"
        let old = try DatabaseQueue(path: path)
        try Store.migrator.migrate(old, upTo: "v9-idempotency-keys")
        try await old.write { db in
            try db.execute(
                sql: """
                    INSERT INTO decision(id, value, direction, created_at, expires_at, origin, reason, simulated, state)
                    VALUES ('b', '77.90.185.2', 'both', 1, 1800000999000, 'n', 'r', 0, 'active'),
                           ('a', '77.90.185.1', 'both', 1, 1800000999000, 'n', 'r', 0, 'active')
                    """)
        }
        try old.close()
        let migrated = try Store(path: path)
        migrated.start()
        let (policy, now) = (policy, now)
        _ = try await migrated.write { tx in _ = try tx.block(block("77.90.185.3"), policy: policy, now: now) }
        let changes = try await migrated.decisionChanges(after: 0, now: now)
        #expect(changes.decisions.map(\.id.count) == [1, 1, 36])
        #expect(changes.decisions.map(\.number) == [1, 2, 3])
        #expect(changes.decisions.prefix(2).map(\.id) == ["a", "b"])
        await migrated.close()
    }
}

/// What `retention` no longer keeps goes; what is in force, pending, dead-lettered or still
/// needed for a revocation stays.
struct RetentionTests {
    @Test func pruningKeepsWhatIsInForceOrStillNeeded() async throws {
        let store = try Store(path: Scratch.directory("rampart-retention").path + "/rampart.sqlite")
        store.start()
        let now = Date(milliseconds: 1_800_000_000_000)
        let policy = SafetyPolicy()
        @Sendable func block(_ value: String, _ seconds: Int64, item: String) -> BlockRequest {
            BlockRequest(
                target: try! IPNetwork(parsing: value, allowBareAddress: true), direction: .both, duration: .seconds(seconds), item: item,
                origin: "node-a", reason: "test")
        }
        let day: TimeInterval = 86_400
        _ = try await store.write { tx in
            _ = try tx.block(block("77.90.185.1", 60, item: "old"), policy: policy, now: now)
            _ = try tx.block(block("77.90.185.2", 400 * 86_400, item: "long"), policy: policy, now: now)
            _ = try tx.block(block("77.90.185.3", 60, item: "recent"), policy: policy, now: now.addingTimeInterval(40 * day))
            for item in ["old", "long", "recent"] {
                try tx.enqueue(peer: "b", item: item, body: nil, path: ["node-a"], hopsLeft: 0, suggest: [], at: now)
            }
            try tx.enqueue(peer: "b", item: "pending", body: nil, path: ["node-a"], hopsLeft: 0, suggest: [], at: now)
        }
        let sent = try await store.pendingOutbox(peer: "b", limit: 10).filter { $0.item != "pending" }.map(\.seq)
        _ = try await store.write { tx in try tx.markDelivered(peer: "b", seqs: sent, webhookID: "msg_1", at: now.addingTimeInterval(1)) }
        let later = now.addingTimeInterval(45 * day)
        try await store.saveTAXIIStatus(id: "old-status", via: "api:x", body: Array("{}".utf8), at: later.addingTimeInterval(-8 * day))
        try await store.saveTAXIIStatus(id: "new-status", via: "api:x", body: Array("{}".utf8), at: later.addingTimeInterval(-6 * day))
        let pruned = try await store.write { tx in
            _ = try tx.expire(now: later)
            return try tx.prune(
                decisionsBefore: later.addingTimeInterval(-30 * day), outboxBefore: later.addingTimeInterval(-30 * day),
                taxiiStatusesBefore: later.addingTimeInterval(-7 * day))
        }
        #expect(pruned == 4, "the old decision, the outbox entries of old and recent (whose decisions are not in force), the old status")
        #expect(try await store.taxiiStatus(id: "old-status") == nil)
        #expect(try await store.taxiiStatus(id: "new-status") != nil)
        let values = try await store.decisions(Store.DecisionFilter(), now: later).map(\.target.description)
        #expect(values.sorted() == ["77.90.185.2", "77.90.185.3"])
        let outbox = try await store.pool.read { db in try String.fetchAll(db, sql: "SELECT item FROM outbox ORDER BY seq") }
        #expect(outbox == ["long", "pending"])
        let events = try store.auditEntries(.all, limit: 100).map(\.event)
        #expect(events.contains("decision.expired"), "the audit log keeps what was pruned")
        await store.close()
    }
}
