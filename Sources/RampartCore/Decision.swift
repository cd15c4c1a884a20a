import Foundation

/// Which traffic a block drops: from the address (`inbound`), to it (`outbound`), or both.
public enum Direction: String, CaseIterable, Sendable, Hashable, Codable {
    case inbound, outbound, both

    /// Two blocks on one value merge into one that drops what either dropped.
    public func union(_ other: Direction) -> Direction {
        self == other ? self : .both
    }

    public init(name: String) throws(ValueError) {
        guard let value = Direction(rawValue: name) else {
            throw ValueError(.invalidField, "unknown direction '\(name.preview)'; expected inbound, outbound or both")
        }
        self = value
    }
}

/// An enforcement in force (or once in force): a block of an address or network until `expiresAt`.
public struct Decision: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        case active, expired, revoked
    }

    public var id: String
    public var target: IPNetwork
    public var direction: Direction
    public var createdAt: Date
    public var expiresAt: Date
    /// The playbook that decided it; nil for manual decisions.
    public var playbook: String?
    /// The item that caused it; nil for manual decisions.
    public var item: String?
    /// The node where the decision (or its item) originated.
    public var origin: String
    public var reason: String
    /// Decided by a `mode: simulate` playbook: recorded, never enforced.
    public var simulated: Bool
    public var state: State
    public var revokedAt: Date?

    public init(
        id: String, target: IPNetwork, direction: Direction, createdAt: Date, expiresAt: Date, playbook: String?,
        item: String?, origin: String, reason: String, simulated: Bool, state: State = .active, revokedAt: Date? = nil
    ) {
        self.id = id
        self.target = target
        self.direction = direction
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.playbook = playbook
        self.item = item
        self.origin = origin
        self.reason = reason
        self.simulated = simulated
        self.state = state
        self.revokedAt = revokedAt
    }

    /// The blocked address (`198.51.100.7`) or network (`198.51.100.0/24`).
    public var value: String { target.description }

    public func isActive(at now: Date) -> Bool {
        state == .active && expiresAt > now
    }

    public func write(to w: inout JSONWriter, now: Date) {
        w.beginObject()
        w.field("id", id)
        w.field("value", value)
        w.field("action", "block")
        w.field("direction", direction.rawValue)
        w.field("created_at", createdAt)
        w.field("expires_at", expiresAt)
        w.field("active", isActive(at: now))
        w.field("state", state == .active && !isActive(at: now) ? State.expired.rawValue : state.rawValue)
        w.key("playbook")
        if let playbook { w.value(playbook) } else { w.null() }
        w.key("item")
        if let item { w.value(item) } else { w.null() }
        w.field("origin", origin)
        w.field("reason", reason)
        w.field("simulated", simulated)
        if let revokedAt { w.field("revoked_at", revokedAt) }
        w.endObject()
    }
}

/// A request to block, from any source (API, playbook, peer); it passes the safety rails before it
/// becomes or extends a `Decision`.
public struct BlockRequest: Sendable, Hashable {
    public var target: IPNetwork
    public var direction: Direction
    public var duration: Duration
    public var playbook: String?
    public var item: String?
    public var origin: String
    public var reason: String
    public var simulated: Bool
    /// Longer blocks for repeat offenders: see `Escalation`.
    public var escalation: Escalation?
    /// The longest the block may last, escalation included (a peer's `accept.max_duration`).
    public var maxDuration: Duration?

    public init(
        target: IPNetwork, direction: Direction, duration: Duration, playbook: String? = nil, item: String? = nil,
        origin: String, reason: String, simulated: Bool = false, escalation: Escalation? = nil
    ) {
        self.target = target
        self.direction = direction
        self.duration = duration
        self.playbook = playbook
        self.item = item
        self.origin = origin
        self.reason = reason
        self.simulated = simulated
        self.escalation = escalation
    }
}

/// `escalate: {factor: 2, max: 7d}`: a playbook's block of a value it has blocked `n` times before
/// lasts `duration × factor^n`, at most `max`.
public struct Escalation: Sendable, Hashable {
    public var factor: Double
    public var max: Duration

    public init(factor: Double, max: Duration) {
        self.factor = factor
        self.max = max
    }

    /// The duration of a block after `previous` earlier ones.
    public func duration(_ base: Duration, previous: Int) -> Duration {
        let seconds = Double(base.milliseconds) / 1000 * Foundation.pow(factor, Double(Swift.min(previous, 64)))
        let cap = Double(max.milliseconds) / 1000
        return seconds >= cap ? max : .milliseconds(Int64(seconds * 1000))
    }
}
