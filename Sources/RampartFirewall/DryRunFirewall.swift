import Foundation
import Logging
import RampartCore

/// Records what it would enforce, and enforces nothing: the development backend.
public final class DryRunFirewall: Firewall, @unchecked Sendable {
    public let name = "dry-run"
    private let logger: Logger
    private let lock = NSLock()
    private var blocks: [IPNetwork: FirewallBlock] = [:]
    private var batches = 0

    public init(logger: Logger) {
        self.logger = logger
    }

    public func apply(_ changes: [FirewallChange]) throws {
        lock.withLock {
            batches += 1
            for change in changes {
                switch change {
                case .add(let block): blocks[block.target] = block
                case .remove(let target): blocks[target] = nil
                }
            }
        }
        logger.debug("firewall.batch", metadata: ["rampart.firewall.changes": "\(changes.count)", "rampart.firewall.backend": "dry-run"])
    }

    public func reconcile(_ wanted: [FirewallBlock]) throws {
        lock.withLock {
            blocks = Dictionary(wanted.map { ($0.target, $0) }, uniquingKeysWith: { _, last in last })
        }
    }

    /// What a real backend would hold now.
    public var current: [FirewallBlock] {
        lock.withLock { Array(blocks.values) }
    }

    public var batchCount: Int {
        lock.withLock { batches }
    }
}
