import Foundation
import RampartCore
import Synchronization

/// Who pulls with each bouncer key: one consumer per (key, client address), each with its own
/// place in the stream of changes, as CrowdSec keeps them (several bouncers sharing a key must not
/// take each other's changes). Kept in memory: after a restart a consumer's next pull is answered
/// as a first pull, which is complete by itself.
final class BouncerConsumers: Sendable {
    struct Consumer: Sendable {
        var address: String
        var userAgent: String
        var firstSeen: Date
        var lastSeen: Date
        /// When a pull last completed (its whole answer written).
        var lastPull: Date?
        /// The last change the consumer has, once a pull completed.
        var cursor: Int64?
        var pulls = 0
        /// Decisions sent as `new`, over all pulls.
        var delivered = 0
        /// The last `POST /v1/usage-metrics`: when, and its items summed by name and unit.
        var metricsAt: Date?
        var metrics: [String: Double] = [:]
    }

    /// The most consumers kept per key; the one seen longest ago makes room.
    static let maxPerKey = 256
    private let consumers = Mutex<[String: [String: Consumer]]>([:])

    /// The consumer's place in the stream (nil: it has none, its pull is a first pull), noting that it was seen.
    func seen(key: String, address: String, userAgent: String, at now: Date) -> Int64? {
        consumers.withLock { all in
            var ofKey = all[key, default: [:]]
            defer { all[key] = ofKey }
            if var consumer = ofKey[address] {
                consumer.lastSeen = now
                consumer.userAgent = userAgent
                ofKey[address] = consumer
                return consumer.cursor
            }
            if ofKey.count >= Self.maxPerKey, let oldest = ofKey.min(by: { $0.value.lastSeen < $1.value.lastSeen }) {
                ofKey.removeValue(forKey: oldest.key)
            }
            ofKey[address] = Consumer(address: address, userAgent: userAgent, firstSeen: now, lastSeen: now)
            return nil
        }
    }

    /// A pull's whole answer was written: the consumer has every change through `cursor`.
    func completed(key: String, address: String, cursor: Int64, delivered: Int, at now: Date) {
        consumers.withLock { all in
            guard var consumer = all[key]?[address] else { return }
            consumer.cursor = cursor
            consumer.lastPull = now
            consumer.pulls += 1
            consumer.delivered += delivered
            all[key]?[address] = consumer
        }
    }

    func reported(key: String, address: String, userAgent: String, metrics: [String: Double], at now: Date) {
        _ = seen(key: key, address: address, userAgent: userAgent, at: now)
        consumers.withLock { all in
            all[key]?[address]?.metricsAt = now
            all[key]?[address]?.metrics = metrics
        }
    }

    /// Each key's consumers, most recently seen first.
    func snapshot() -> [String: [Consumer]] {
        consumers.withLock { all in all.mapValues { $0.values.sorted { $0.lastSeen > $1.lastSeen } } }
    }
}
