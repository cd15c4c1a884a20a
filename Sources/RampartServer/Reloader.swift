import Foundation
import Logging
import RampartCore
import RampartFirewall
import RampartStore
import ServiceLifecycle
import Synchronization
import UnixSignals

/// What is in force: the playbooks, the safety policy and the peers. The reloader holds it and
/// replaces it whole; everything else reads it, and a request reads it once, when it starts.
public struct InForce: Sendable {
    public var playbooks: PlaybookSet
    public var policy: SafetyPolicy
    public var peers: [Peer]
    public var feeds: [Config.Feed] = []

    public init(playbooks: PlaybookSet, policy: SafetyPolicy, peers: [Peer], feeds: [Config.Feed] = []) {
        self.playbooks = playbooks
        self.policy = policy
        self.peers = peers
        self.feeds = feeds
    }

    /// What `config` puts in force: its playbooks and lists read, the safety policy with this
    /// host's addresses and the peers' (names resolved now). Blocking: files and DNS.
    public init(_ config: Config) throws(Diagnostics) {
        self.init(
            playbooks: PlaybookSet(
                try PlaybookLoader.load(directory: config.playbooksDirectory, listsDirectory: config.listsDirectory, peers: config.peers.map(\.name))),
            policy: config.safetyPolicy(hostAddresses: HostAddresses.current() + HostAddresses.peers(config.peers)),
            peers: config.peers, feeds: config.feeds)
    }
}

/// Owns what is in force. A reload (SIGHUP, `POST /v1/reload`) re-reads the configuration,
/// playbooks and lists, off the cooperative pool, and puts the new playbooks, safety policy,
/// peers and feeds in force at once; an invalid new set leaves the old one running. Either way the outcome
/// is logged and audited. Reloads run one at a time, in the order asked, in this service's run
/// loop. Keys that only take effect at start (node, listen, tls, state_dir, firewall, api_keys,
/// http, log, crowdsec, bouncers) are read but need a restart.
public final class Reloader: Service, Sendable {
    let configPath: String
    let store: Store
    let delivery: PeerDelivery
    let enforcer: Enforcer
    let notifier: SystemdNotifier
    let metrics: RampartMetrics
    let logger: Logger
    let now: @Sendable () -> Date
    private let snapshot: Mutex<InForce>
    private let requests: AsyncStream<Request>
    private let submit: AsyncStream<Request>.Continuation

    /// One reload asked for, and who waits for its outcome (nobody for a signal).
    private struct Request: Sendable {
        let by: String
        let answer: CheckedContinuation<Result<Int, Diagnostics>, any Error>?
    }

    /// The daemon is stopping: the reload was not run.
    public struct Stopped: Error {}

    public init(
        configPath: String, inForce: InForce, store: Store, delivery: PeerDelivery, enforcer: Enforcer, notifier: SystemdNotifier = SystemdNotifier(),
        metrics: RampartMetrics = RampartMetrics(), logger: Logger, now: @escaping @Sendable () -> Date
    ) {
        self.metrics = metrics
        self.configPath = configPath
        self.store = store
        self.delivery = delivery
        self.enforcer = enforcer
        self.notifier = notifier
        self.logger = logger
        self.now = now
        snapshot = Mutex(inForce)
        (requests, submit) = AsyncStream.makeStream(of: Request.self)
    }

    /// What is in force now.
    public var inForce: InForce { snapshot.withLock { $0 } }

    /// Reloads; returns the number of playbooks now in force, or every problem found.
    /// systemd hears RELOADING=1 before and READY=1 after, whatever the outcome.
    public func reload(by: String) async throws -> Result<Int, Diagnostics> {
        try await withCheckedThrowingContinuation { answer in
            if case .terminated = submit.yield(Request(by: by, answer: answer)) { answer.resume(throwing: Stopped()) }
        }
    }

    /// Runs the reloads asked for, one at a time, and asks for one on each SIGHUP; on shutdown,
    /// finishes those already asked for.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
                        self.submit.yield(Request(by: "signal:SIGHUP", answer: nil))
                    }
                }
                for await request in requests {
                    do {
                        let result = try await reloadNow(by: request.by)
                        request.answer?.resume(returning: result)
                    } catch {
                        request.answer?.resume(throwing: error)
                    }
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.submit.finish()
        }
    }

    private func reloadNow(by: String) async throws -> Result<Int, Diagnostics> {
        notifier.reloading()
        do {
            let result = try await load(by: by)
            switch result {
            case .success(let count):
                metrics.count(.reloads, ["outcome": "reloaded"])
                notifier.ready(status: "ready: reloaded, \(count) playbooks in force")
            case .failure(let problems):
                metrics.count(.reloads, ["outcome": "refused"])
                let first = problems.items.first.map(\.description) ?? ""
                notifier.ready(status: "ready: reload refused (\(problems.items.count) errors, the first: \(first)); the previous set stays in force")
            }
            return result
        } catch {
            metrics.count(.reloads, ["outcome": "failed"])
            notifier.ready(status: "ready: reload failed (\(error)); the previous set stays in force")
            throw error
        }
    }

    private func load(by: String) async throws -> Result<Int, Diagnostics> {
        let at = now()
        let path = configPath
        // Files, and the peers' names resolved: blocking work.
        let loaded = try await Blocking.run { () -> Result<InForce, Diagnostics> in
            do throws(Diagnostics) {
                return .success(try InForce(Config.load(path: path)))
            } catch {
                return .failure(error)
            }
        }
        switch loaded {
        case .success(let inForce):
            let names = inForce.playbooks.playbooks.map(\.name)
            _ = try await store.write { tx in
                try tx.audit(.configReloaded, subject: by, at: at) { w in
                    w.field("config", path)
                    w.field("playbooks", names)
                }
            }
            snapshot.withLock { $0 = inForce }
            delivery.update(peers: inForce.peers, notifyURLs: inForce.playbooks.notifyURLs)
            enforcer.requestReconcile()
            logger.notice("config.reloaded", metadata: ["rampart.by": "\(by)", "rampart.playbooks": "\(names.count)"])
            return .success(names.count)
        case .failure(let problems):
            let lines = problems.items.map(\.description)
            _ = try await store.write { tx in
                try tx.audit(.configReloadFailed, subject: by, at: at) { w in
                    w.field("config", path)
                    w.field("errors", lines)
                }
            }
            logger.error(
                "config.reload_failed",
                metadata: ["rampart.by": "\(by)", "rampart.errors": "\(lines.count)", "rampart.first_error": "\(lines.first ?? "")"]
            )
            return .failure(problems)
        }
    }
}
