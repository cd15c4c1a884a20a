/// The daemon's metric names: `/metrics` serves these and no others, and the table in
/// docs/operations.md lists each (checked by a test).
public enum Metric: String, CaseIterable, Sendable {
    case itemsIngested = "rampart_items_ingested_total"
    case itemsRejected = "rampart_items_rejected_total"
    case playbookMatches = "rampart_playbook_matches_total"
    case actions = "rampart_actions_total"
    case blocksRefused = "rampart_blocks_refused_total"
    case decisionsActive = "rampart_decisions_active"
    case firewallBatchSize = "rampart_firewall_batch_size"
    case firewallBatchSeconds = "rampart_firewall_batch_seconds"
    case firewallFailures = "rampart_firewall_failures_total"
    case reloads = "rampart_reloads_total"
    case peerOutboxDepth = "rampart_peer_outbox_depth"
    case peerOutboxOldestSeconds = "rampart_peer_outbox_oldest_seconds"
    case peerDeadLetters = "rampart_peer_dead_letters"
    case peerDeliveries = "rampart_peer_deliveries_total"
    case peerDeliverySeconds = "rampart_peer_delivery_seconds"
    case peerItems = "rampart_peer_items_total"
    case peerWithheld = "rampart_peer_withheld_total"
    case peerDeadLettered = "rampart_peer_dead_lettered_total"
    case peerRefusedByPeer = "rampart_peer_refused_by_peer_total"
    case peerRequestsRefused = "rampart_peer_requests_refused_total"
    case peerSyncs = "rampart_peer_syncs_total"
    case peerSyncRepaired = "rampart_peer_sync_repaired_total"
    case revocations = "rampart_revocations_total"
    case bouncerPulls = "rampart_bouncer_pulls_total"
    case bouncerDecisionsSent = "rampart_bouncer_decisions_sent_total"
    case feedPulls = "rampart_feed_pulls_total"
    case feedItems = "rampart_feed_items_total"
    case feedLastSuccess = "rampart_feed_last_success_timestamp_seconds"
    case feedFailures = "rampart_feed_failures"
    case feedPullSeconds = "rampart_feed_pull_seconds"
}

/// Counts gathered while work is done (on the writer thread, inside a commit), added to the
/// metrics only once that work is durable.
public struct Tally: Sendable {
    public struct Label: Hashable, Sendable {
        public let name: String
        public let value: String
    }

    /// A series; make those counted per item once, outside the loop (a matched playbook's is made
    /// when its actions are planned). Its hash is computed once, when it is made: the writer
    /// thread counts with keys made before.
    public struct Key: Hashable, Sendable {
        public let metric: Metric
        public let labels: [Label]
        private let hashValueOnce: Int

        public init(_ metric: Metric, _ labels: KeyValuePairs<String, String> = [:]) {
            self.metric = metric
            self.labels = labels.map { Label(name: $0.key, value: $0.value) }
            var hasher = Hasher()
            hasher.combine(metric)
            hasher.combine(self.labels)
            hashValueOnce = hasher.finalize()
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(hashValueOnce)
        }

        public static func == (a: Key, b: Key) -> Bool {
            a.hashValueOnce == b.hashValueOnce && a.metric == b.metric && a.labels == b.labels
        }
    }

    public private(set) var counts: [Key: Int] = [:]

    public init() {}

    public mutating func add(_ key: Key, _ amount: Int = 1) {
        counts[key, default: 0] += amount
    }

    public mutating func add(_ metric: Metric, _ labels: KeyValuePairs<String, String> = [:], _ amount: Int = 1) {
        add(Key(metric, labels), amount)
    }

    /// An action's outcome (`rampart_actions_total{action, outcome}`).
    public mutating func action(_ action: String, _ outcome: String) {
        add(.actions, ["action": action, "outcome": outcome])
    }
}
