import Foundation
import GRDB
import RampartCore

/// The writes a job makes inside a group-commit transaction. Everything a job writes (items,
/// decisions, their audit entries) commits atomically, or not at all.
public struct StoreTransaction {
    let db: Database
    var state: WriterState
    let statements: PreparedStatements
    /// What the firewall must change once this transaction commits, in the order decided: blocks
    /// created or extended, decisions revoked or expired.
    private(set) var firewall: [FirewallChange] = []
    /// The item being ingested: what it causes goes into its entry.
    private var open: OpenItem?
    /// The STIX object whose version is being applied, and its `stix_object` row: the key of
    /// its items' export rows (`exportKeys`), known without reading it back.
    var stixObject: (id: String, row: Int64)?

    init(db: Database, state: WriterState, statements: PreparedStatements) {
        self.db = db
        self.state = state
        self.statements = statements
    }

    // MARK: Audit

    /// Records an event and returns the sequence number of the entry that holds it. While an item
    /// is being ingested (`ingest(_:_:)`), an event about that item goes into the item's entry, and
    /// any other event gets an entry of its own just after the item's.
    @discardableResult
    public mutating func audit(_ event: AuditEvent, subject: String, detail: JSONWriter, at: Date) throws -> Int64 {
        try audit(event, subject: subject, detail: detail.bytes, at: at)
    }

    /// `audit` with the detail already-encoded JSON.
    @discardableResult
    mutating func audit(_ event: AuditEvent, subject: String, detail: [UInt8], at: Date) throws -> Int64 {
        // In place: a copy of `open` would copy the events recorded so far.
        if open != nil {
            if subject == open!.encoded.item.id {
                open!.record(event, detail)
                return open!.seq
            }
            open!.after.append((event, subject, detail, at))
            return open!.seq + Int64(open!.after.count)
        }
        return try append(event, subject: subject, detail: detail, at: at)
    }

    /// Appends an entry to the chain and returns its sequence number.
    @discardableResult
    private mutating func append(
        _ event: AuditEvent, subject: String, detail: [UInt8], digest: [UInt8]? = nil, caused: [UInt8]? = nil, at: Date
    ) throws -> Int64 {
        let seq = state.auditSeq + 1
        let ms = at.milliseconds
        let hash = AuditChain.hash(
            previous: state.auditHash, seq: seq, at: ms, event: event.rawValue, subject: subject, detailDigest: digest ?? AuditChain.digest(detail),
            causedDigest: caused.map(AuditChain.digest)
        )
        // The detail, often the largest value of the write, is bound where it lies rather than copied.
        try detail.withUnsafeBufferPointer { detail in
            var binder = Binder(statements.insertAudit)
            binder.bind(seq)
            binder.bind(ms)
            binder.bind(event.rawValue)
            binder.bind(subject)
            binder.bind(borrowing: detail)
            binder.bind(blob: hash)
            binder.bind(text: caused)
            try binder.step(db)
        }
        state.auditSeq = seq
        state.auditHash = hash
        return seq
    }

    /// Convenience for details built inline: `audit(.itemRefused, subject: id, at: now) { $0.field("k", v) }`.
    /// The detail is digested only if it gets an entry of its own, not when it goes into an item's.
    @discardableResult
    public mutating func audit(_ event: AuditEvent, subject: String, at: Date, _ build: (inout JSONWriter) -> Void) throws -> Int64 {
        var w = JSONWriter(capacity: 128)
        w.beginObject()
        build(&w)
        w.endObject()
        return try audit(event, subject: subject, detail: w.bytes, at: at)
    }

    // MARK: Items

    /// Stores an item with nothing else: `ingest(_:_:)` with no effects.
    @discardableResult
    public mutating func insert(_ item: Item) throws -> Bool {
        try ingest(EncodedItem(item)) { _ in }
    }

    /// Stores an item, runs `effects` (its sightings, its playbooks' blocks and actions), and
    /// writes the item's one audit entry: the item's JSON as its detail, so the chain covers every
    /// item's content, and every event about the item that `effects` recorded (matches, decisions
    /// created, merged, extended or refused, outbox entries, rules) as what it caused. Events about
    /// something else (a stale decision expired on the way) get entries of their own just after.
    /// Returns false (and runs nothing) when an item with the same id is already stored.
    @discardableResult
    public mutating func ingest(_ encoded: EncodedItem, _ effects: (inout StoreTransaction) throws -> Void) throws -> Bool {
        guard open == nil else {
            throw StoreError(code: "internal", message: "item \(encoded.item.id) was stored while another item's effects ran")
        }
        let seq = state.auditSeq + 1  // nothing else is appended until the item's entry
        var binder = Binder(statements.insertItem)
        binder.bind(encoded.item.id)
        binder.bind(seq)
        binder.bind(encoded.item.via)
        guard try binder.step(db) == 1 else { return false }
        try export(encoded.item, revoked: false, at: encoded.item.receivedAt)
        open = OpenItem(seq: seq, encoded: encoded)
        defer { open = nil }
        try effects(&self)
        guard let item = open else { return true }
        open = nil
        try append(
            .itemAccepted, subject: encoded.item.id, detail: encoded.detail.json, digest: encoded.detail.digest, caused: item.caused,
            at: encoded.item.receivedAt)
        for entry in item.after { try append(entry.event, subject: entry.subject, detail: entry.detail, at: entry.at) }
        return true
    }

    /// Adds a version of an item to what TAXII collections serve (nothing for TAXII:RED): the item
    /// as stored, or (`revoked`) its withdrawal.
    mutating func export(_ item: Item, revoked: Bool, at now: Date) throws {
        let tlp = item.tlp
        guard tlp != .red else { return }
        var binder = Binder(statements.insertExport)
        binder.bind(state.nextExportSeq(at: now))
        let object = STIX.objectID(of: item)
        binder.bind(object)
        if item.stix == nil {
            binder.bind(Self.objectKey(object))
        } else if let known = stixObject, known.id == object {
            binder.bind(known.row)
        } else {
            binder.bind(try Self.exportKeys(db, object: object).last!)
        }
        binder.bind(item.id)
        binder.bind(item.indicator?.kind.rawValue ?? "rule")
        binder.bind(Int64(TLP.allCases.firstIndex(of: tlp) ?? 4))
        binder.bind(revoked ? max(now.milliseconds, STIX.version(of: item).milliseconds + 1) : STIX.version(of: item).milliseconds)
        binder.bind(revoked)
        try binder.step(db)
    }

    /// An item whose effects are running, and what they recorded.
    private struct OpenItem {
        let seq: Int64
        let encoded: EncodedItem
        private var events = JSONWriter(capacity: 256)
        private var count = 0
        /// Events about something else, written after the item's entry.
        var after: [(event: AuditEvent, subject: String, detail: [UInt8], at: Date)] = []

        init(seq: Int64, encoded: EncodedItem) {
            self.seq = seq
            self.encoded = encoded
            events.beginArray()
        }

        /// Adds `{"event": event, ...detail}` to what the item caused.
        mutating func record(_ event: AuditEvent, _ detail: [UInt8]) {
            var entry = JSONWriter(capacity: detail.count + 32)
            entry.beginObject()
            entry.field("event", event.rawValue)
            entry.endObject()
            var bytes = entry.bytes
            if detail.count > 2 {  // not `{}`: its fields follow the event's
                bytes.removeLast()
                bytes.append(UInt8(ascii: ","))
                bytes.append(contentsOf: detail.dropFirst())
            }
            events.raw(bytes)
            count += 1
        }

        /// The events as a JSON array, nil when there were none.
        var caused: [UInt8]? {
            guard count > 0 else { return nil }
            var closed = events
            closed.endArray()
            return closed.bytes
        }
    }

    /// Whether the item being ingested is `id`: its decisions are recorded in its entry.
    private func isOpen(_ id: String?) -> Bool {
        guard let id, let open else { return false }
        return open.encoded.item.id == id
    }

    /// Audits an item that was refused, with where it was in the request and why.
    public mutating func refuse(via: String, position: String, index: Int, error: ValueError, raw: String?, at: Date) throws {
        try audit(.itemRefused, subject: raw.map { String($0.prefix(256)) } ?? "", at: at) { w in
            w.field("via", via)
            w.field(position, index)
            w.field("code", error.code.rawValue)
            w.field("error", error.message)
        }
    }

    // MARK: Statements

    /// Statements run per matched item go through the connection's statement cache: preparing them
    /// each time cost more than running them.
    func cached(_ sql: String) throws -> Statement {
        try db.cachedStatement(sql: sql)
    }

    func execute(_ sql: String, _ arguments: StatementArguments) throws {
        try db.cachedStatement(sql: sql).execute(arguments: arguments)
    }

    // MARK: Decisions

    /// Applies the safety rails and merges the block into the active decision for the same value, or
    /// creates one. Every outcome, refusals included, is audited.
    public mutating func block(_ request: BlockRequest, policy: SafetyPolicy, now: Date) throws -> BlockOutcome {
        var known: ActiveDecisions?
        return try block(request, policy: policy, now: now, known: &known)
    }

    /// The active decisions for one network as the last `block` for it read or left them, so that
    /// blocks in a row for one network (those of one item's playbooks) read them once. Valid only
    /// while nothing else writes decisions: a caller keeps one across the blocks of one item.
    public struct ActiveDecisions {
        let target: IPNetwork
        var decisions: [Decision]
    }

    /// `block(_:policy:now:)`, reading the network's active decisions from `known` when they are
    /// there, and leaving them there.
    public mutating func block(_ request: BlockRequest, policy: SafetyPolicy, now: Date, known: inout ActiveDecisions?) throws -> BlockOutcome {
        var request = request
        if let escalation = request.escalation, let playbook = request.playbook {
            let previous =
                try Int.fetchOne(
                    cached("SELECT COUNT(*) FROM decision WHERE value = ? AND playbook = ?"), arguments: [request.target.description, playbook]
                ) ?? 0
            request.duration = escalation.duration(request.duration, previous: previous)
        }
        if let maxDuration = request.maxDuration, request.duration > maxDuration { request.duration = maxDuration }
        if let refusal = policy.check(request.target)
            ?? allowing(request.target, at: now).map({ entry in
                SafetyPolicy.Refusal(
                    code: .allowed,
                    message:
                        "\(request.target) overlaps \(entry.target), allowed until \(Timestamp.format(entry.expiresAt)) (rule \(entry.number), by \(entry.by))"
                )
            })
        {
            try auditRefusal(request, code: refusal.code, message: refusal.message, now: now)
            return .refused(refusal)
        }
        let expiresAt = now.adding(request.duration)
        var current = try known.flatMap { $0.target == request.target ? $0.decisions : nil } ?? activeDecisions(for: request.target)
        defer { known = ActiveDecisions(target: request.target, decisions: current) }
        // A decision whose time ran out but which the expiry sweep has not reached yet is closed
        // before a new one is made, so one value never has two active decisions.
        for stale in current where stale.expiresAt <= now { try markExpired(stale, now: now) }
        current.removeAll { $0.expiresAt <= now }
        if let index = current.firstIndex(where: { $0.simulated == request.simulated }) {
            var existing = current[index]
            let previous = existing
            existing.expiresAt = max(existing.expiresAt, expiresAt)
            existing.direction = existing.direction.union(request.direction)
            let changed = existing != previous
            let corroborated = request.item != existing.item
            if changed {
                var binder = Binder(statements.extendDecision)
                binder.bind(existing.expiresAt.milliseconds)
                binder.bind(existing.direction.rawValue)
                binder.bind(corroborated)
                binder.bind(state.nextDecisionChange())
                binder.bind(existing.id)
                try binder.step(db)
                current[index] = existing
            } else if corroborated {
                var binder = Binder(statements.corroborateDecision)
                binder.bind(existing.id)
                try binder.step(db)
            }
            if changed { enforce(existing, now: now) }
            try auditDecision(changed ? .decisionExtended : .decisionMerged, existing, request, now: now)
            return changed ? .extended(existing, previous: previous) : .unchanged(existing)
        }
        if !request.simulated && state.activeBlocks >= policy.maxActiveBlocks {
            let message = "\(state.activeBlocks) blocks are active, the most safety.max_active_blocks allows"
            try auditRefusal(request, code: "too_many_blocks", message: message, now: now)
            return .refused(SafetyPolicy.Refusal(code: "too_many_blocks", message: message))
        }
        let decision = Decision(
            id: IDGenerator.shared.next(), target: request.target, direction: request.direction, createdAt: now,
            expiresAt: expiresAt, playbook: request.playbook, item: request.item, origin: request.origin,
            reason: request.reason, simulated: request.simulated
        )
        var binder = Binder(statements.insertDecision)
        binder.bind(decision.id)
        binder.bind(decision.value)
        binder.bind(decision.direction.rawValue)
        binder.bind(now.milliseconds)
        binder.bind(expiresAt.milliseconds)
        binder.bind(decision.playbook)
        binder.bind(decision.item)
        binder.bind(decision.origin)
        binder.bind(decision.reason)
        binder.bind(decision.simulated)
        let change = state.nextDecisionChange()
        binder.bind(change)
        binder.bind(change)
        try binder.step(db)
        current.append(decision)
        if !decision.simulated { state.activeBlocks += 1 }
        enforce(decision, now: now)
        try auditDecision(.decisionCreated, decision, request, now: now)
        return .created(decision)
    }

    /// Revokes active decisions: one by id, or every one for a value. Returns those revoked.
    public mutating func revoke(id: String? = nil, value: String? = nil, reason: String, by: String, now: Date) throws -> [Decision] {
        let rows: [Decision]
        if let id {
            rows = try Decision.fetchAll(cached("SELECT * FROM decision WHERE id = ? AND state = 'active'"), arguments: [id])
        } else if let value {
            rows = try Decision.fetchAll(cached("SELECT * FROM decision WHERE value = ? AND state = 'active'"), arguments: [value])
        } else {
            rows = []
        }
        var revoked: [Decision] = []
        for var decision in rows {
            let wasInForce = decision.isActive(at: now)
            decision.state = .revoked
            decision.revokedAt = now
            try execute(
                "UPDATE decision SET state = 'revoked', revoked_at = ?, change_seq = ? WHERE id = ?",
                [now.milliseconds, state.nextDecisionChange(), decision.id]
            )
            if !decision.simulated { state.activeBlocks -= 1 }
            enforce(decision, now: now)
            try audit(.decisionRevoked, subject: decision.id, at: now) { w in
                w.field("value", decision.value)
                w.field("reason", reason)
                w.field("by", by)
                w.field("was_in_force", wasInForce)
            }
            revoked.append(decision)
        }
        return revoked
    }

    /// Marks decisions whose time is up as expired (at most `limit` a call) and returns them.
    public mutating func expire(now: Date, limit: Int = 10_000) throws -> [Decision] {
        let due = try Decision.fetchAll(
            cached("SELECT * FROM decision WHERE state = 'active' AND expires_at <= ? ORDER BY expires_at LIMIT ?"),
            arguments: [now.milliseconds, limit]
        )
        for decision in due { try markExpired(decision, now: now) }
        try expireAllows(now: now)
        return due
    }

    private mutating func markExpired(_ decision: Decision, now: Date) throws {
        try execute("UPDATE decision SET state = 'expired', change_seq = ? WHERE id = ?", [state.nextDecisionChange(), decision.id])
        if !decision.simulated { state.activeBlocks -= 1 }
        enforce(decision, now: now)
        try audit(.decisionExpired, subject: decision.id, at: now) { w in
            w.field("value", decision.value)
            w.field("expires_at", Timestamp.format(decision.expiresAt))
        }
    }

    /// Notes what the firewall must do about a decision this transaction created, extended, revoked
    /// or expired (nothing for a simulated one).
    private mutating func enforce(_ decision: Decision, now: Date) {
        if let change = decision.firewallChange(at: now) { firewall.append(change) }
    }

    /// The active decisions for one value. This runs for every item a block playbook matches: columns
    /// are read straight from the statement (decoding `Row`s by name, and re-parsing the value, cost
    /// more than the query).
    private func activeDecisions(for target: IPNetwork) throws -> [Decision] {
        var rows = Binder(statements.activeDecisions)
        rows.bind(target.description)
        var found: [Decision] = []
        while try rows.nextRow(db) {
            found.append(
                Decision(
                    id: rows.text(0) ?? "", target: target, direction: rows.text(1).flatMap(Direction.init(rawValue:)) ?? .both,
                    createdAt: Date(milliseconds: rows.integer(2)), expiresAt: Date(milliseconds: rows.integer(3)), playbook: rows.text(4),
                    item: rows.text(5), origin: rows.text(6) ?? "", reason: rows.text(7) ?? "", simulated: rows.integer(8) != 0
                )
            )
        }
        return found
    }

    /// A decision created, extended or merged into. For a block of the item being ingested, a short
    /// record in the item's entry (the item says the rest; the decision's entries are found through
    /// `audit_ref` when it did not create it); otherwise an entry of the decision's own.
    private mutating func auditDecision(_ event: AuditEvent, _ decision: Decision, _ request: BlockRequest, now: Date) throws {
        guard isOpen(request.item), let item = request.item else {
            try audit(event, subject: decision.id, at: now) { w in
                w.field("value", decision.value)
                w.field("expires_at", Timestamp.format(decision.expiresAt))
                w.field("direction", decision.direction.rawValue)
                if event == .decisionCreated { w.field("simulated", decision.simulated) }
                Self.writeCause(request, to: &w)
            }
            return
        }
        let seq = try audit(event, subject: item, at: now) { w in
            w.field("id", decision.id)
            w.field("value", decision.value)
            w.field("expires_at", Timestamp.format(decision.expiresAt))
            w.field("direction", decision.direction.rawValue)
            if decision.simulated { w.field("simulated", true) }
            w.field("playbook", request.playbook)
        }
        if decision.item != item { try execute("INSERT OR IGNORE INTO audit_ref(ref, seq) VALUES (?, ?)", [decision.id, seq]) }
    }

    private mutating func auditRefusal(_ request: BlockRequest, code: ErrorCode, message: String, now: Date) throws {
        guard isOpen(request.item), let item = request.item else {
            try audit(.decisionRefused, subject: request.target.description, at: now) { w in
                w.field("code", code)
                w.field("error", message)
                Self.writeCause(request, to: &w)
            }
            return
        }
        try audit(.decisionRefused, subject: item, at: now) { w in
            w.field("value", request.target.description)
            w.field("code", code)
            w.field("error", message)
            w.field("playbook", request.playbook)
        }
    }

    private static func writeCause(_ request: BlockRequest, to w: inout JSONWriter) {
        w.field("duration", request.duration.text)
        w.field("playbook", request.playbook)
        w.field("item", request.item)
        w.field("origin", request.origin)
        w.field("reason", request.reason)
    }
}

extension StoreTransaction {
    /// Records that the item's value was seen, for sightings conditions.
    public mutating func recordSighting(_ item: Item) throws {
        guard let indicator = item.indicator else { return }
        try execute(
            "INSERT INTO sighting(value, at, source, via, origin) VALUES (?, ?, ?, ?, ?)",
            [indicator.value, item.receivedAt.milliseconds, indicator.source, item.via, item.origin]
        )
    }

    /// How many times (or by how many distinct sources, vias or origins) `value` was seen since `date`.
    public func countSightings(of value: String, distinct: Sightings.Distinct?, since date: Date) throws -> Int {
        let counted = distinct.map { "COUNT(DISTINCT \($0.rawValue))" } ?? "COUNT(*)"
        return try Int.fetchOne(cached("SELECT \(counted) FROM sighting WHERE value = ? AND at >= ?"), arguments: [value, date.milliseconds]) ?? 0
    }

    /// Forgets sightings older than `date`.
    public mutating func pruneSightings(before date: Date) throws {
        try execute("DELETE FROM sighting WHERE at < ?", [date.milliseconds])
    }
}

public enum BlockOutcome: Sendable, Hashable {
    case created(Decision)
    /// Merged into an active decision whose expiry or direction grew.
    case extended(Decision, previous: Decision)
    /// Merged into an active decision that already covered it.
    case unchanged(Decision)
    case refused(SafetyPolicy.Refusal)

    public var decision: Decision? {
        switch self {
        case .created(let d), .extended(let d, _), .unchanged(let d): d
        case .refused: nil
        }
    }
}

/// The writer connection's statements for what runs per item and per block, prepared once.
final class PreparedStatements {
    let insertAudit: Statement
    let insertItem: Statement
    let insertExport: Statement
    let insertSTIXObject: Statement
    let insertDecision: Statement
    let extendDecision: Statement
    let corroborateDecision: Statement
    let activeDecisions: Statement

    init(_ db: Database) throws {
        insertAudit = try db.makeStatement(sql: "INSERT INTO audit(seq, at, event, subject, detail, hash, caused) VALUES (?, ?, ?, ?, ?, ?, ?)")
        insertItem = try db.makeStatement(sql: "INSERT OR IGNORE INTO item(id, audit_seq, via) VALUES (?, ?, ?)")
        insertExport = try db.makeStatement(
            sql: "INSERT INTO stix_export(seq, object, object_key, item, kind, tlp, version, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        insertSTIXObject = try db.makeStatement(
            sql: "INSERT OR IGNORE INTO stix_object(key, id, via, version, modified, revoked, items, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)")
        insertDecision = try db.makeStatement(
            sql: """
                INSERT INTO decision(id, value, direction, created_at, expires_at, playbook, item, origin, reason, simulated, state, created_seq, change_seq)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?1 * 0 + ?11, ?11)
                """
        )
        extendDecision = try db.makeStatement(
            sql: "UPDATE decision SET expires_at = ?, direction = ?, corroborations = corroborations + ?, change_seq = ? WHERE id = ?"
        )
        corroborateDecision = try db.makeStatement(sql: "UPDATE decision SET corroborations = corroborations + 1 WHERE id = ?")
        activeDecisions = try db.makeStatement(
            sql:
                "SELECT id, direction, created_at, expires_at, playbook, item, origin, reason, simulated FROM decision WHERE value = ? AND state = 'active'"
        )
    }
}

/// An item with its stored JSON and that JSON's digest, computed before the item reaches the
/// writer thread.
public struct EncodedItem: Sendable {
    public let item: Item
    let detail: AuditDetail

    public init(_ item: Item) {
        self.item = item
        detail = AuditDetail(item.json)
    }

    /// The item's JSON, as its audit entry holds it.
    public var json: [UInt8] { detail.json }
}

/// An audit entry's detail, encoded and digested before the write, off the writer's thread.
public struct AuditDetail: Sendable {
    public let json: [UInt8]
    let digest: [UInt8]

    public init(_ json: [UInt8]) {
        self.json = json
        digest = AuditChain.digest(json)
    }
}

extension Tally {
    static let blockCreated = Key(.actions, ["action": "block", "outcome": "created"])
    static let blockExtended = Key(.actions, ["action": "block", "outcome": "extended"])
    static let blockMerged = Key(.actions, ["action": "block", "outcome": "merged"])
    static let blockRefused = Key(.actions, ["action": "block", "outcome": "refused"])

    /// What a block did, by outcome, and why it was refused.
    public mutating func add(_ outcome: BlockOutcome) {
        switch outcome {
        case .created: add(Self.blockCreated)
        case .extended: add(Self.blockExtended)
        case .unchanged: add(Self.blockMerged)
        case .refused(let refusal):
            add(Self.blockRefused)
            add(.blocksRefused, ["code": refusal.code.rawValue])
        }
    }
}
