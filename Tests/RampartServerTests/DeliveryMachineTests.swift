import Foundation
import RampartCore
import RampartStore
import Testing

@testable import RampartServer

/// The delivery state machine, event by event, with no clock, store or network: what is read,
/// what is sent and withheld, what is recorded, and when the next attempt goes.
struct DeliveryMachineTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    let peer = Peer(name: "b", url: "http://127.0.0.1:1/v1/peer/events")

    func entry(_ seq: Int64, _ value: String = "77.90.185.20", tlp: TLP = .green, path: [String] = ["a"]) -> OutboxEntry {
        let item = Item(
            id: "itm_\(seq)", payload: .indicator(Indicator(kind: .ipv4, value: value, tlp: tlp)), via: "api:test", origin: "a",
            receivedAt: t0)
        return OutboxEntry(seq: seq, item: item.id, body: nil, storedItem: item.json, path: path, hopsLeft: 0, suggest: [], createdAt: t0)
    }

    /// The machine's plan for `pending`, which must not be nil.
    func read(_ machine: inout DeliveryMachine, _ pending: [OutboxEntry], for peer: Peer) throws -> DeliveryMachine.Plan {
        let plan = machine.read(pending, for: .peer(peer), at: t0)
        return try #require(plan)
    }

    func delivered(_ refused: [(index: Int, code: String, message: String)] = []) -> DeliveryMachine.Answer {
        DeliveryMachine.Answer(outcome: .delivered, failure: nil, refused: refused)
    }

    /// Oldest first; after a delivery of every pending entry read, the next read starts after
    /// them; after a failure, from the oldest again, once the backoff is over.
    @Test func readsOnAfterADeliveryAndFromTheOldestAfterAFailure() throws {
        var machine = DeliveryMachine()
        var schedule = DeliverySchedule()
        #expect(machine.next(schedule, at: t0) == .read(after: nil))
        let plan = try read(&machine, [entry(1), entry(2)], for: peer)
        #expect(plan.batch.map(\.seq) == [1, 2] && plan.complete && plan.withheld.isEmpty)
        let body = try JSONValue.parse(plan.body)
        guard case .array(let items)? = body["data"]?["items"] else { throw CancellationError() }
        #expect(items.count == 2)

        let record = machine.answered(delivered(), to: plan, schedule: &schedule, begun: schedule.epoch, at: t0, random: 0)
        guard case .delivered(let seqs, let refused) = record else { throw CancellationError() }
        #expect(seqs == [1, 2] && refused.isEmpty)
        #expect(machine.next(schedule, at: t0) == .read(after: 2))

        let next = try read(&machine, [entry(3)], for: peer)
        let failed = DeliveryMachine.answer(status: 503, retryAfter: nil, body: Array(#"{"detail":"busy"}"#.utf8), at: t0)
        let t1 = t0.addingTimeInterval(1)
        guard
            case .failed(let failedSeqs, let error, let deadBefore, let disable) =
                machine.answered(failed, to: next, schedule: &schedule, begun: schedule.epoch, at: t1, random: 0)
        else { throw CancellationError() }
        #expect(failedSeqs == [3] && error == "HTTP 503: busy" && disable == nil)
        #expect(deadBefore == t1.addingTimeInterval(-86_400))
        // The first retry waits half a second with no jitter, then reads from the oldest pending entry.
        #expect(machine.next(schedule, at: t1) == .sleep(until: t1.addingTimeInterval(0.25)))
        #expect(machine.next(schedule, at: t1.addingTimeInterval(0.25)) == .read(after: nil))
    }

    /// Entries of another route wait for a batch of their own: the next read starts from the oldest.
    @Test func oneRouteABatch() throws {
        var machine = DeliveryMachine()
        var schedule = DeliverySchedule()
        let plan = try read(&machine, [entry(1), entry(2, path: ["c", "a"]), entry(3)], for: peer)
        #expect(plan.batch.map(\.seq) == [1, 3] && !plan.complete && plan.lastSeq == 3)
        _ = machine.answered(delivered(), to: plan, schedule: &schedule, begun: schedule.epoch, at: t0, random: 0)
        #expect(machine.next(schedule, at: t0) == .read(after: nil))
    }

    /// What may no longer go is withheld with its reason, never sent; with nothing left to send,
    /// the next read starts from the oldest at once. Nothing pending: sleep until woken.
    @Test func withholdsWhatThePolicyNoLongerLetsGo() throws {
        var machine = DeliveryMachine()
        let plan = try read(&machine, [entry(1, tlp: .red), entry(2)], for: peer)
        #expect(plan.batch.map(\.seq) == [2])
        #expect(plan.withheld == [.init(seq: 1, item: "itm_1", code: "tlp_red", reason: "TLP:RED never leaves this node")])

        var expired = peer
        expired.expires = t0
        let none = try read(&machine, [entry(3)], for: expired)
        #expect(none.batch.isEmpty && none.withheld.map(\.code) == ["expired"])
        #expect(machine.next(DeliverySchedule(), at: t0) == .read(after: nil))
        #expect(machine.read([], for: .peer(peer), at: t0) == nil)
    }

    /// A notify URL gets one prepared body a request, whatever else is pending.
    @Test func aNotifyURLGetsOneNotificationARequest() throws {
        var machine = DeliveryMachine()
        let body = Array(#"{"text":"blocked 77.90.185.20"}"#.utf8)
        let queued = (1...3).map {
            OutboxEntry(seq: $0, item: "itm_\($0)", body: body, storedItem: nil, path: ["a"], hopsLeft: 0, suggest: [], createdAt: t0)
        }
        let plan = try #require(DeliveryMachine.plan(queued, for: .notify(url: "https://chat.example/hook"), at: t0))
        #expect(plan.batch.map(\.seq) == [1] && plan.body == body && plan.lastSeq == 1)
        #expect(machine.take(plan)?.batch.count == 1)
        #expect(Destination.notify(url: "https://chat.example/hook").key == "notify:https://chat.example/hook")
    }

    /// A 2xx's `refused` list names entries by their place in the batch; a 410 disables until a
    /// replay; `Retry-After` is honoured.
    @Test func refusalsGoneAndRetryAfter() throws {
        var machine = DeliveryMachine()
        var schedule = DeliverySchedule()
        let plan = try read(&machine, [entry(1), entry(2)], for: peer)
        let answer = DeliveryMachine.answer(
            status: 200, retryAfter: nil, body: Array(#"{"refused":[{"index":1,"code":"low_confidence","error":"too low"},{"index":9}]}"#.utf8),
            at: t0)
        guard case .delivered(_, let refused) = machine.answered(answer, to: plan, schedule: &schedule, begun: schedule.epoch, at: t0, random: 0)
        else { throw CancellationError() }
        #expect(refused == [.init(seq: 2, item: "itm_2", code: "low_confidence", reason: "too low")])

        let later = DeliveryMachine.answer(status: 429, retryAfter: "120", body: [], at: t0)
        _ = machine.answered(later, to: plan, schedule: &schedule, begun: schedule.epoch, at: t0, random: 0.5)
        #expect(machine.next(schedule, at: t0) == .sleep(until: t0.addingTimeInterval(120)))

        let gone = DeliveryMachine.answer(status: 410, retryAfter: nil, body: [], at: t0)
        guard case .failed(_, _, _, let disable) = machine.answered(gone, to: plan, schedule: &schedule, begun: schedule.epoch, at: t0, random: 0)
        else { throw CancellationError() }
        #expect(disable == "the peer answered 410 Gone")
        #expect(machine.next(schedule, at: t0.addingTimeInterval(86_400)) == .sleep(until: nil))
        schedule.enable()
        #expect(machine.next(schedule, at: t0) == .read(after: nil))

        // No answer at all: a failure that says why. A notify URL's body lists no refusals.
        let unreachable = DeliveryMachine.answer(status: nil, retryAfter: nil, body: [], error: "connection refused", at: t0)
        #expect(unreachable.outcome == .failed(status: nil, retryAfter: nil) && unreachable.failure == "connection refused")
        let notify = DeliveryMachine.answer(
            status: 200, retryAfter: nil, body: Array(#"{"refused":[{"index":0}]}"#.utf8), listsRefusals: false, at: t0)
        #expect(notify.refused.isEmpty)
    }

    /// A replay while a request is in flight: its answer, even a 410, records the outcome but
    /// no longer disables.
    @Test func anAnswerToARequestBegunBeforeAReplayDoesNotDisable() throws {
        var machine = DeliveryMachine()
        var schedule = DeliverySchedule()
        let plan = try read(&machine, [entry(1)], for: peer)
        let begun = schedule.epoch
        schedule.enable()
        let gone = DeliveryMachine.answer(status: 410, retryAfter: nil, body: [], at: t0)
        guard case .failed(_, _, _, let disable) = machine.answered(gone, to: plan, schedule: &schedule, begun: begun, at: t0, random: 0)
        else { throw CancellationError() }
        #expect(disable == nil)
        #expect(machine.next(schedule, at: t0) == .read(after: nil))
    }
}
