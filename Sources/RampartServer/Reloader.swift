import Foundation
import Logging
import RampartCore
import RampartFirewall
import RampartStore
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Re-reads the configuration, playbooks and lists, and puts the new playbooks and safety policy
/// in force at once; an invalid new set leaves the old one running. Either way the outcome is
/// logged and audited. Keys that only take effect at start (node, listen, tls, state_dir,
/// firewall, api_keys, http, log) are read but need a restart.
public final class Reloader: Sendable {
    let configPath: String
    let pipeline: Pipeline
    let store: Store
    let notifier: SystemdNotifier
    let metrics: RampartMetrics
    let logger: Logger
    let now: @Sendable () -> Date
    private let serial = AsyncSerial()

    public init(
        configPath: String, pipeline: Pipeline, store: Store, notifier: SystemdNotifier = SystemdNotifier(),
        metrics: RampartMetrics = RampartMetrics(), logger: Logger, now: @escaping @Sendable () -> Date
    ) {
        self.metrics = metrics
        self.configPath = configPath
        self.pipeline = pipeline
        self.store = store
        self.notifier = notifier
        self.logger = logger
        self.now = now
    }

    /// Reloads; returns the number of playbooks now in force, or every problem found.
    /// systemd hears RELOADING=1 before and READY=1 after, whatever the outcome.
    public func reload(by: String) async throws -> Result<Int, Diagnostics> {
        try await serial.run {
            self.notifier.reloading()
            do {
                let result = try await self.load(by: by)
                switch result {
                case .success(let count):
                    self.metrics.count(.reloads, ["outcome": "reloaded"])
                    self.notifier.ready(status: "ready: reloaded, \(count) playbooks in force")
                case .failure(let problems):
                    self.metrics.count(.reloads, ["outcome": "refused"])
                    let first = problems.items.first.map(\.description) ?? ""
                    self.notifier.ready(
                        status: "ready: reload refused (\(problems.items.count) errors, the first: \(first)); the previous set stays in force")
                }
                return result
            } catch {
                self.metrics.count(.reloads, ["outcome": "failed"])
                self.notifier.ready(status: "ready: reload failed (\(error)); the previous set stays in force")
                throw error
            }
        }
    }

    private func load(by: String) async throws -> Result<Int, Diagnostics> {
        let at = now()
        let path = configPath
        let result: Result<PlaybookSet, Diagnostics>
        var policy = pipeline.policy
        var peers = pipeline.peers
        do throws(Diagnostics) {
            let config = try Config.load(path: configPath)
            policy = config.safetyPolicy(hostAddresses: HostAddresses.current() + HostAddresses.peers(config.peers))
            peers = config.peers
            result = .success(
                PlaybookSet(
                    try PlaybookLoader.load(
                        directory: config.playbooksDirectory, listsDirectory: config.listsDirectory, peers: config.peers.map(\.name))))
        } catch {
            result = .failure(error)
        }
        switch result {
        case .success(let playbooks):
            let names = playbooks.playbooks.map(\.name)
            _ = try await store.write { tx in
                try tx.audit(.configReloaded, subject: by, at: at) { w in
                    w.field("config", path)
                    w.field("playbooks", names)
                }
            }
            pipeline.replace(playbooks: playbooks, policy: policy, peers: peers)
            pipeline.enforcer.requestReconcile()
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

/// Reloads on SIGHUP.
struct ReloadOnHangup: Service {
    let reloader: Reloader

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            _ = try? await reloader.reload(by: "signal:SIGHUP")
        }
    }
}

/// Runs async jobs one at a time, in order: two reloads never interleave.
final class AsyncSerial: Sendable {
    private let last = Mutex<Task<Void, Never>?>(nil)

    func run<T: Sendable>(_ job: @escaping @Sendable () async throws -> T) async throws -> T {
        let task: Task<T, Error> = last.withLock { slot in
            let previous = slot
            let task = Task {
                await previous?.value
                return try await job()
            }
            slot = Task { _ = try? await task.value }
            return task
        }
        return try await task.value
    }
}
