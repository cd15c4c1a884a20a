import Foundation
import Logging
import RampartCore
import ServiceLifecycle

/// Hands firewall changes to the backend in batches: the first change goes at once when the
/// backend is idle; changes arriving while a batch is applied coalesce into the next one.
public final class Enforcer: Service, @unchecked Sendable {
    private let firewall: any Firewall
    private let logger: Logger
    private let lock = NSLock()
    private var pending: [FirewallChange] = []
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    public init(firewall: any Firewall, logger: Logger) {
        self.firewall = firewall
        self.logger = logger
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func submit(_ changes: [FirewallChange]) {
        guard !changes.isEmpty else { return }
        lock.withLock { pending += changes }
        wake.yield()
    }

    public func run() async {
        await withGracefulShutdownHandler {
            for await _ in wakeups {
                await applyPending()
            }
            await applyPending()
        } onGracefulShutdown: {
            // Apply what is queued, then end.
            self.wake.finish()
        }
    }

    private func applyPending() async {
        let batch = lock.withLock {
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        guard !batch.isEmpty else { return }
        do {
            try await firewall.apply(batch)
        } catch {
            logger.error(
                "firewall.apply_failed",
                metadata: [
                    "rampart.firewall.backend": "\(firewall.name)", "rampart.error": "\(error)", "rampart.firewall.changes": "\(batch.count)",
                ]
            )
        }
    }
}
