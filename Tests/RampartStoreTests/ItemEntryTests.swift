import Foundation
import GRDB
import RampartCore
import RampartTesting
import Testing

@testable import RampartStore

/// One audit entry per item: the item, and what it caused, under one hash; found again by item
/// and by decision.
struct ItemEntryTests {
    let directory = Scratch.directory("rampart-item-entry").path
    let store: Store
    let now = Date(milliseconds: 1_800_000_000_000)
    let policy = SafetyPolicy()

    init() throws {
        store = try Store(path: directory + "/rampart.sqlite")
        store.start()
    }

    func item(_ value: String) throws -> EncodedItem {
        let (kind, normalised) = try IndicatorValue.normalise(value)
        return EncodedItem(
            Item(
                id: IDGenerator.shared.next(), payload: .indicator(Indicator(kind: kind, value: normalised)), via: "api:test", origin: "node-a",
                receivedAt: now))
    }

    func block(_ value: String, for item: EncodedItem, _ duration: Duration = .seconds(3600)) -> BlockRequest {
        BlockRequest(
            target: try! IPNetwork(parsing: value, allowBareAddress: true), direction: .both, duration: duration, playbook: "p",
            item: item.item.id, origin: "node-a", reason: "test")
    }

    func caused(_ entry: AuditEntry) throws -> [String] {
        let events = try JSONSerialization.jsonObject(with: Data((entry.caused ?? "[]").utf8)) as? [[String: Any]] ?? []
        return events.map { $0["event"] as? String ?? "" }
    }

    /// The entry holds the item's matches and decisions; a stale decision it closed on the way has an
    /// entry of its own, just after; a second item extending the decision is found by the decision.
    @Test func anItemsEntryHoldsWhatItCaused() async throws {
        let (first, second, third) = (try item("77.90.185.20"), try item("77.90.185.20"), try item("77.90.185.21"))
        let (policy, now) = (policy, now)
        let decision = try await store.write { tx -> String in
            var id = ""
            try tx.ingest(first) { tx in
                try tx.audit(.playbookMatched, subject: first.item.id, at: now) { $0.field("playbook", "p") }
                id = try tx.block(block("77.90.185.20", for: first), policy: policy, now: now).decision?.id ?? ""
            }
            return id
        }
        // A block of 1 s for the third item, then (later) one for the same value that finds it stale.
        _ = try await store.write { tx in
            try tx.ingest(third) { tx in _ = try tx.block(block("77.90.185.21", for: third, .seconds(1)), policy: policy, now: now) }
        }
        let later = now.addingTimeInterval(2)
        let fourth = try item("77.90.185.21")
        _ = try await store.write { tx in
            try tx.ingest(second) { tx in _ = try tx.block(block("77.90.185.20", for: second), policy: policy, now: later) }
            try tx.ingest(fourth) { tx in _ = try tx.block(block("77.90.185.21", for: fourth), policy: policy, now: later) }
        }
        let entries = try await store.audit(after: 0, limit: 100)
        #expect(entries.map(\.event) == ["item.accepted", "item.accepted", "item.accepted", "item.accepted", "decision.expired"])
        #expect(
            try entries.map(caused) == [
                ["playbook.matched", "decision.created"], ["decision.created"], ["decision.extended"], ["decision.created"], [],
            ])
        #expect(entries[0].detail == String(decoding: first.json, as: UTF8.self), "the detail is the item itself")
        #expect(entries[4].subject != fourth.item.id, "the stale decision's expiry is an entry of its own")

        // By decision: the item that created it and the one that merged into it.
        #expect(try await store.audit(.decision(decision), after: 0, limit: 10).map(\.subject) == [first.item.id, second.item.id])
        #expect(try await store.audit(.item(second.item.id), after: 0, limit: 10).map(\.seq) == [entries[2].seq])
        #expect(try store.verifyAudit().isIntact)

        // What an item caused is under the entry's hash.
        try await store.pool.write { db in
            try db.execute(
                sql: "UPDATE audit SET caused = replace(caused, 'decision.extended', 'decision.merged') WHERE seq = ?", arguments: [entries[2].seq])
        }
        #expect(try store.verifyAudit().firstBroken == entries[2].seq)
    }

    /// An item's effects cannot store another item inside its entry.
    @Test func anItemCannotBeStoredWhileAnothersEffectsRun() async throws {
        let (outer, inner) = (try item("77.90.185.20"), try item("77.90.185.21"))
        await #expect(throws: StoreError.self) {
            try await store.write { tx in try tx.ingest(outer) { tx in try tx.ingest(inner) { _ in } } }
        }
        #expect(try await store.itemCount() == 0)
    }
}
