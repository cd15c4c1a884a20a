import Foundation
import RampartCore
import RampartStore

/// One destination's delivery as a pure state machine: its dispatcher (`PeerDelivery`) tells it
/// what happened (it is free, it read the oldest pending entries, the peer answered) and carries
/// out what it answers: sleep, read, withhold, send, record the outcome, disable. No clock, no
/// store, no network, so each rule is tested event by event (`DeliveryMachineTests`).
///
/// - Entries go oldest first, in batches of one route (path and hops); entries of another route
///   wait for a batch of their own.
/// - What may no longer go (the peer's entry expired, the item is missing or invalid, the sharing
///   policy says no) is withheld, never sent.
/// - After a delivery of a whole run of pending entries, the next read starts after them (the
///   dispatcher may have read them while the request was in flight); after anything else, from
///   the oldest pending entry again.
/// - When to try again after a failure, and when a 410 disables, is `DeliverySchedule`'s.
struct DeliveryMachine: Sendable {
    /// What the dispatcher does next, when it is free.
    enum Step: Equatable {
        /// Read the pending entries after `after` (nil: from the oldest).
        case read(after: Int64?)
        /// Wait until `until`, or until woken (new entries, a replay, a reload); nil: until woken.
        case sleep(until: Date?)
    }

    /// Entries ready to go in one request, and what was set aside while choosing them.
    struct Plan: Sendable {
        let batch: [OutboxEntry]
        let body: [UInt8]
        /// Entries the policy no longer lets go: the store marks them withheld.
        let withheld: [Declined]
        /// The last pending entry read.
        let lastSeq: Int64
        /// Every pending entry up to `lastSeq` is in the batch or withheld.
        let complete: Bool
    }

    /// An entry that does not go as sent, and why: withheld by this node's sharing policy, or
    /// refused by the peer in an answer that took the rest.
    struct Declined: Sendable, Equatable {
        let seq: Int64
        let item: String
        let code: String
        let reason: String
    }

    /// What the store records of an answered request.
    enum Record: Sendable {
        /// A 2xx: the entries were delivered, except those the answer's `refused` lists.
        case delivered(seqs: [Int64], refused: [Declined])
        /// The entries stay pending; those queued before `deadBefore` are dead-lettered; `disable`:
        /// the peer answered 410 and gets nothing more until a replay.
        case failed(seqs: [Int64], error: String, deadBefore: Date, disable: String?)
    }

    /// A request's answer, as the machine needs it.
    struct Answer: Sendable {
        let outcome: DeliverySchedule.Outcome
        /// Why it failed, for the outbox and `GET /v1/peers`; nil for a 2xx.
        let failure: String?
        /// Places in the batch that the peer refused (a 2xx answer's `refused` list).
        let refused: [(index: Int, code: String, message: String)]
    }

    /// Where the next read starts.
    private(set) var cursor: Int64?

    /// What to do when free, given the schedule.
    func next(_ schedule: DeliverySchedule, at now: Date) -> Step {
        switch schedule.state {
        case .ready: .read(after: cursor)
        case .waiting(let until): until > now ? .sleep(until: until) : .read(after: cursor)
        case .disabled: .sleep(until: nil)
        }
    }

    /// The entries read, planned: nil when none is pending (sleep until woken).
    mutating func read(_ pending: [OutboxEntry], for destination: Destination, at now: Date) -> Plan? {
        take(Self.plan(pending, for: destination, at: now))
    }

    /// A plan made from entries read ahead (`plan(_:for:at:)`), now taken.
    mutating func take(_ plan: Plan?) -> Plan? {
        // Nothing pending, or nothing to send: read again from the oldest (withheld entries are
        // no longer pending once marked).
        if plan?.batch.isEmpty ?? true { cursor = nil }
        return plan
    }

    /// Chooses the batch among the oldest pending entries and what to withhold. A notify URL
    /// gets one prepared request body at a time.
    static func plan(_ pending: [OutboxEntry], for destination: Destination, at now: Date) -> Plan? {
        guard let first = pending.first, let last = pending.last else { return nil }
        guard case .peer(let peer) = destination else {
            guard let body = first.body else {
                return Plan(
                    batch: [], body: [],
                    withheld: [Declined(seq: first.seq, item: first.item, code: "missing", reason: "the notification has no body")],
                    lastSeq: first.seq, complete: true)
            }
            return Plan(batch: [first], body: body, withheld: [], lastSeq: first.seq, complete: true)
        }
        var withheld: [Declined] = []
        var batch: [OutboxEntry] = []
        var bodies: [[UInt8]] = []
        var complete = true
        func withhold(_ entry: OutboxEntry, _ code: String, _ reason: String) {
            withheld.append(Declined(seq: entry.seq, item: entry.item, code: code, reason: reason))
        }
        for entry in pending {
            guard entry.path == first.path && entry.hopsLeft == first.hopsLeft else {
                complete = false
                continue
            }
            if peer.hasExpired(at: now) {
                withhold(entry, "expired", "the peer's entry expired")
                continue
            }
            if let revocation = entry.body {
                batch.append(entry)
                bodies.append(revocation)
                continue
            }
            guard let stored = entry.storedItem else {
                withhold(entry, "missing", "the item is not stored")
                continue
            }
            do {
                var item = try Item(stored: JSONValue.parse(stored, maxDepth: 16), now: now)
                item.suggested = entry.suggest
                switch peer.share.share(item) {
                case .success(let shared):
                    batch.append(entry)
                    bodies.append(shared.wireJSON)
                case .failure(let reason):
                    withhold(entry, reason.code.rawValue, reason.message)
                }
            } catch {
                withhold(entry, "invalid", error.message)
            }
        }
        let body = batch.isEmpty ? [] : PeerMessage.encode(path: first.path, hopsLeft: first.hopsLeft, entries: bodies, at: now)
        return Plan(batch: batch, body: body, withheld: withheld, lastSeq: last.seq, complete: complete)
    }

    /// The peer's answer to `plan`'s request, begun at the schedule's epoch `begun`: updates the
    /// schedule (unless a replay came since) and says what the store records.
    mutating func answered(
        _ answer: Answer, to plan: Plan, schedule: inout DeliverySchedule, begun: Int, at now: Date, random: Double
    ) -> Record {
        let counted = schedule.record(answer.outcome, begun: begun, at: now, random: random)
        let seqs = plan.batch.map(\.seq)
        switch answer.outcome {
        case .delivered:
            cursor = plan.complete ? plan.lastSeq : nil
            let refused = answer.refused.compactMap { refusal -> Declined? in
                guard plan.batch.indices.contains(refusal.index) else { return nil }
                let entry = plan.batch[refusal.index]
                return Declined(seq: entry.seq, item: entry.item, code: refusal.code, reason: refusal.message)
            }
            return .delivered(seqs: seqs, refused: refused)
        case .failed:
            cursor = nil
            let disabled: String? = if counted, case .disabled(let reason) = schedule.state { reason } else { nil }
            return .failed(seqs: seqs, error: answer.failure ?? "", deadBefore: schedule.deadBefore(now), disable: disabled)
        }
    }

    /// What an HTTP answer means: a 2xx delivers (its body may list refused entries: `{"refused":
    /// [{"index": N, "code": ..., "error": ...}]}`, N the entry's place in the batch); anything else
    /// fails, with `Retry-After` honoured and the problem's `detail` kept. `status` nil: no answer
    /// (`error` says why).
    /// `listsRefusals`: false for a notify URL, whose answer's body is not Rampart's.
    static func answer(
        status: Int?, retryAfter: String?, body: some Collection<UInt8>, error: String? = nil, listsRefusals: Bool = true, at now: Date
    ) -> Answer {
        guard let status else { return Answer(outcome: .failed(status: nil, retryAfter: nil), failure: error ?? "no answer", refused: []) }
        let json = try? JSONValue.parse(body)
        guard (200..<300).contains(status) else {
            let detail = json?["detail"].flatMap { if case .string(let s) = $0 { s } else { nil } }
            return Answer(
                outcome: .failed(status: status, retryAfter: DeliverySchedule.retryAfter(retryAfter, now: now)),
                failure: "HTTP \(status)\(detail.map { ": \($0)" } ?? "")", refused: [])
        }
        guard listsRefusals, case .array(let list)? = json?["refused"] else { return Answer(outcome: .delivered, failure: nil, refused: []) }
        let refused = list.compactMap { refusal -> (index: Int, code: String, message: String)? in
            guard case .number(let index)? = refusal["index"], index == index.rounded(), index >= 0, index < Double(Int32.max) else { return nil }
            let code: String = if case .string(let c)? = refusal["code"] { c } else { "refused" }
            let message: String = if case .string(let m)? = refusal["error"] { m } else { "" }
            return (Int(index), code.preview, message.preview)
        }
        return Answer(outcome: .delivered, failure: nil, refused: refused)
    }
}
