import Foundation

/// An address or network to drop traffic for, until a time.
public struct FirewallBlock: Sendable, Hashable {
    public var target: IPNetwork
    public var direction: Direction
    public var expiresAt: Date

    public init(target: IPNetwork, direction: Direction, expiresAt: Date) {
        self.target = target
        self.direction = direction
        self.expiresAt = expiresAt
    }

    public init(_ decision: Decision) {
        self.init(target: decision.target, direction: decision.direction, expiresAt: decision.expiresAt)
    }
}

/// One change to what the firewall drops.
public enum FirewallChange: Sendable, Hashable {
    /// Add the block, or update its direction and expiry if present.
    case add(FirewallBlock)
    /// Stop dropping traffic for the target.
    case remove(IPNetwork)
}

/// The capability of enforcing blocks in a packet filter. Implementations: `DryRunFirewall`
/// (records only), and the kernel backends.
///
/// Calls block for as long as the packet filter takes (the enforcer makes them on the thread pool
/// for blocking work, never on the cooperative pool), and run one at a time: an implementation
/// holds its state's lock for the whole of a call, so that a batch's plan, run and commit can
/// never interleave with a reconcile, whoever calls.
public protocol Firewall: Sendable {
    /// A short name for logs and status (`dry-run`, `nftables`).
    var name: String { get }
    /// Applies the changes as one batch.
    func apply(_ changes: [FirewallChange]) throws
    /// Makes the firewall hold exactly `blocks`: adds what is missing, removes what is stale.
    func reconcile(_ blocks: [FirewallBlock]) throws
}

extension Decision {
    /// What the firewall must do about this decision now that it was created, extended, revoked or expired.
    public func firewallChange(at now: Date) -> FirewallChange? {
        guard !simulated else { return nil }
        return isActive(at: now) ? .add(FirewallBlock(self)) : .remove(target)
    }
}
