import Foundation
import Hummingbird
import Metrics
import Prometheus
import RampartCore
import RampartStore

/// The daemon's metrics, served at `/metrics` in the Prometheus text format. They are swift-metrics
/// handles on a registry of this daemon's own rather than the process-wide `MetricsSystem`, so
/// that daemons built side by side (tests) keep their counts apart.
public final class RampartMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets[Metric.firewallBatchSize.rawValue] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]
        self.factory = factory
    }

    /// Adds what a commit (or a request) counted.
    func add(_ tally: Tally) {
        for (key, amount) in tally.counts where amount > 0 {
            Counter(label: key.metric.rawValue, dimensions: key.labels.map { ($0.name, $0.value) }, factory: factory).increment(by: amount)
        }
    }

    func count(_ metric: Metric, _ labels: KeyValuePairs<String, String> = [:], _ amount: Int = 1) {
        Counter(label: metric.rawValue, dimensions: labels.map { ($0.key, $0.value) }, factory: factory).increment(by: amount)
    }

    /// One request to a peer: its entries, how long it took, and what became of them.
    func delivery(peer: String, entries: Int, took duration: Duration, delivered: Bool, deadLettered: Int) {
        count(.peerDeliveries, ["peer": peer, "outcome": delivered ? "delivered" : "failed"])
        if delivered { count(.peerItems, ["peer": peer, "outcome": "sent"], entries) }
        if deadLettered > 0 { count(.peerDeadLettered, ["peer": peer], deadLettered) }
        Metrics.Timer(label: Metric.peerDeliverySeconds.rawValue, dimensions: [("peer", peer)], factory: factory).record(duration: duration)
    }

    func firewallBatch(size: Int, took duration: Duration, failed: Bool) {
        Recorder(label: Metric.firewallBatchSize.rawValue, factory: factory).record(size)
        Metrics.Timer(label: Metric.firewallBatchSeconds.rawValue, factory: factory).record(duration: duration)
        if failed { count(.firewallFailures, ["operation": "apply"]) }
    }

    /// The text a scrape gets; gauges read from the store are brought up to date first.
    func exposition(store: Store, now: Date) async throws -> [UInt8] {
        Gauge(label: Metric.decisionsActive.rawValue, factory: factory).record(store.activeDecisionCount)
        for (peer, outbox) in try await store.outboxStatus() {
            Gauge(label: Metric.peerOutboxDepth.rawValue, dimensions: [("peer", peer)], factory: factory).record(outbox.pending)
            Gauge(label: Metric.peerOutboxOldestSeconds.rawValue, dimensions: [("peer", peer)], factory: factory)
                .record(outbox.oldestPending.map { max(0, now.timeIntervalSince($0)) } ?? 0)
            Gauge(label: Metric.peerDeadLetters.rawValue, dimensions: [("peer", peer)], factory: factory).record(outbox.dead)
        }
        for (name, state) in try await store.feedStates() {
            Gauge(label: Metric.feedLastSuccess.rawValue, dimensions: [("feed", name)], factory: factory)
                .record(state.lastSuccess?.timeIntervalSince1970 ?? 0)
            Gauge(label: Metric.feedFailures.rawValue, dimensions: [("feed", name)], factory: factory).record(state.failures)
            Gauge(label: Metric.feedPullSeconds.rawValue, dimensions: [("feed", name)], factory: factory)
                .record(Double(state.duration.milliseconds) / 1000)
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
