import Foundation
import Hummingbird
import Metrics
import Prometheus
import RampartStore

/// The daemon's metrics, served at `/metrics` in the Prometheus text format. They are swift-metrics
/// handles on a registry of this daemon's own rather than the process-wide `MetricsSystem`, so
/// that daemons built side by side (tests) keep their counts apart.
public final class RampartMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets["rampart_firewall_batch_size"] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]
        self.factory = factory
    }

    /// Adds what a commit (or a request) counted.
    func add(_ tally: Tally) {
        for (key, amount) in tally.counts where amount > 0 {
            Counter(label: key.name, dimensions: key.labels.map { ($0.name, $0.value) }, factory: factory).increment(by: amount)
        }
    }

    func count(_ name: String, _ labels: KeyValuePairs<String, String> = [:], _ amount: Int = 1) {
        Counter(label: name, dimensions: labels.map { ($0.key, $0.value) }, factory: factory).increment(by: amount)
    }

    /// One request to a peer: its entries, how long it took, and what became of them.
    func delivery(peer: String, entries: Int, took duration: Duration, delivered: Bool, deadLettered: Int) {
        count("rampart_peer_deliveries_total", ["peer": peer, "outcome": delivered ? "delivered" : "failed"])
        if delivered { count("rampart_peer_items_total", ["peer": peer, "outcome": "sent"], entries) }
        if deadLettered > 0 { count("rampart_peer_dead_lettered_total", ["peer": peer], deadLettered) }
        Metrics.Timer(label: "rampart_peer_delivery_seconds", dimensions: [("peer", peer)], factory: factory).record(duration: duration)
    }

    func firewallBatch(size: Int, took duration: Duration, failed: Bool) {
        Recorder(label: "rampart_firewall_batch_size", factory: factory).record(size)
        Metrics.Timer(label: "rampart_firewall_batch_seconds", factory: factory).record(duration: duration)
        if failed { count("rampart_firewall_failures_total", ["operation": "apply"]) }
    }

    /// The text a scrape gets; gauges read from the store are brought up to date first.
    func exposition(store: Store, now: Date) async throws -> [UInt8] {
        Gauge(label: "rampart_decisions_active", factory: factory).record(try await store.activeDecisionCount(now: now))
        for (peer, outbox) in try await store.outboxStatus() {
            Gauge(label: "rampart_peer_outbox_depth", dimensions: [("peer", peer)], factory: factory).record(outbox.pending)
            Gauge(label: "rampart_peer_outbox_oldest_seconds", dimensions: [("peer", peer)], factory: factory)
                .record(outbox.oldestPending.map { max(0, now.timeIntervalSince($0)) } ?? 0)
            Gauge(label: "rampart_peer_dead_letters", dimensions: [("peer", peer)], factory: factory).record(outbox.dead)
        }
        return registry.emitToBuffer()
    }

    func register(on router: Router<RampartRequestContext>, store: Store, now: @escaping @Sendable () -> Date) {
        router.get("/metrics") { _, _ in
            let text = try await self.exposition(store: store, now: now())
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: text))
            )
        }
    }
}

/// Counts gathered while work is done (on the writer thread, inside a commit), added to the
/// metrics only once that work is durable.
struct Tally: Sendable {
    struct Label: Hashable, Sendable {
        let name: String
        let value: String
    }

    /// A series; make those counted per item once, outside the loop (see `Pipeline.Match`). Its
    /// hash is computed once, when it is made: the writer thread counts with keys made before.
    struct Key: Hashable, Sendable {
        let name: String
        let labels: [Label]
        private let hashValueOnce: Int

        init(_ name: String, _ labels: KeyValuePairs<String, String> = [:]) {
            self.name = name
            self.labels = labels.map { Label(name: $0.key, value: $0.value) }
            var hasher = Hasher()
            hasher.combine(name)
            hasher.combine(self.labels)
            hashValueOnce = hasher.finalize()
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(hashValueOnce)
        }

        static func == (a: Key, b: Key) -> Bool {
            a.hashValueOnce == b.hashValueOnce && a.name == b.name && a.labels == b.labels
        }
    }

    private(set) var counts: [Key: Int] = [:]

    mutating func add(_ key: Key, _ amount: Int = 1) {
        counts[key, default: 0] += amount
    }

    mutating func add(_ name: String, _ labels: KeyValuePairs<String, String> = [:], _ amount: Int = 1) {
        add(Key(name, labels), amount)
    }

    static let blockCreated = Key("rampart_actions_total", ["action": "block", "outcome": "created"])
    static let blockExtended = Key("rampart_actions_total", ["action": "block", "outcome": "extended"])
    static let blockMerged = Key("rampart_actions_total", ["action": "block", "outcome": "merged"])
    static let blockRefused = Key("rampart_actions_total", ["action": "block", "outcome": "refused"])

    /// What a block did, by outcome, and why it was refused.
    mutating func add(_ outcome: BlockOutcome) {
        switch outcome {
        case .created: add(Self.blockCreated)
        case .extended: add(Self.blockExtended)
        case .unchanged: add(Self.blockMerged)
        case .refused(let refusal):
            add(Self.blockRefused)
            add("rampart_blocks_refused_total", ["code": refusal.code])
        }
    }
}
