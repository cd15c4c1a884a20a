import RampartCore
import RampartStore
import Synchronization

/// Rings once a transaction that changed the firewall (a decision created, extended, revoked or
/// expired) is durable, for the bouncer API's long polls. Any number of tasks wait; a wait that
/// starts after a ring it did not see returns at once (`wait(after:timeout:)` takes the ring count
/// read before the caller's last look at the store).
final class DecisionBell: CommitObserver, Sendable {
    private struct State {
        var rings: UInt64 = 0
        /// The latest commit that changed the firewall and is not known to be on disk yet.
        var pending: UInt64?
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]

        mutating func ring() -> [CheckedContinuation<Void, Never>] {
            rings += 1
            defer { waiters.removeAll() }
            return Array(waiters.values)
        }
    }

    private let state = Mutex(State())

    /// How many times it rang.
    var rings: UInt64 { state.withLock { $0.rings } }

    func committed(_ commit: UInt64, firewall: [FirewallChange]) {
        state.withLock { $0.pending = commit }
    }

    func durable(through commit: UInt64) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard let pending = state.pending, pending <= commit else { return [] }
            state.pending = nil
            return state.ring()
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Wakes every waiter now (a shutdown).
    func ringNow() {
        for waiter in state.withLock({ $0.ring() }) { waiter.resume() }
    }

    /// Returns once it rang more than `rings` times, after `timeout`, or when the task is cancelled.
    func wait(after rings: UInt64, timeout: Duration) async {
        if state.withLock({ $0.rings > rings }) { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: timeout) }
            group.addTask { await self.rung(after: rings) }
            await group.next()
            group.cancelAll()
        }
    }

    private func rung(after rings: UInt64) async {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.rings > rings || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}

/// Tells several observers of each commit (the enforcer, the bouncer API's bell).
final class CommitObservers: CommitObserver, Sendable {
    let observers: [any CommitObserver]

    init(_ observers: [any CommitObserver]) {
        self.observers = observers
    }

    func committed(_ commit: UInt64, firewall: [FirewallChange]) {
        for observer in observers { observer.committed(commit, firewall: firewall) }
    }

    func durable(through commit: UInt64) {
        for observer in observers { observer.durable(through: commit) }
    }
}
