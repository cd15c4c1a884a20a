import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
import Logging
import NIOCore
import RampartCore
import RampartFirewall
import RampartStore
import ServiceLifecycle

/// Builds the daemon from a configuration: store, firewall, pipeline, HTTP API and background
/// services. `rampart serve` runs what this builds; tests build it on port 0.
public enum Daemon {
    public typealias App = Application<RouterResponder<RampartRequestContext>>

    /// Everything the running daemon is made of, for `rampart serve` and for tests that look inside.
    public struct Parts: Sendable {
        public let store: Store
        public let firewall: any Firewall
        public let enforcer: Enforcer
        public let pipeline: Pipeline
        public let reloader: Reloader
        public let readiness: Readiness
        /// The main listener's routes, as `METHOD /path/{parameter}` (docs/openapi.yaml describes each).
        public let routes: [String]
    }

    /// - Parameters:
    ///   - firewall: overrides the configured backend (tests pass a recording one).
    ///   - notifier: systemd's notification socket (from the environment; a no-op outside systemd).
    ///   - clock, now: what the background services wait on (the expiry sweep, the reconcile
    ///     interval, the checkpoint loop) and the wall time every part reads; tests pass a manual clock.
    ///   - onListening: called with the bound port once the server accepts connections.
    public static func build(
        config: Config, logger: Logger, firewall: (any Firewall)? = nil, notifier: SystemdNotifier = SystemdNotifier(),
        clock: any Clock<Duration> = ContinuousClock(), now: @escaping @Sendable () -> Date = Date.init,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> (App, Parts) {
        let inForce = try InForce(config)
        let playbooks = inForce.playbooks
        let store = try Store(path: config.databasePath)
        let firewall = firewall ?? makeFirewall(config, logger: logger)
        let metrics = RampartMetrics()
        let enforcer = Enforcer(
            firewall: firewall, decisions: { try await store.enforcedBlocks(now: now()) },
            reconcileInterval: config.firewall.reconcileInterval, clock: clock, metrics: metrics, logger: logger
        )
        let execRunner = ExecRunner(store: store, metrics: metrics, logger: logger, now: now)
        let rules = RuleDirectory(stateDirectory: config.stateDirectory, logger: logger)
        let signingKey: WebhookSignature.SigningKey?
        do { signingKey = try config.signingKey() } catch { throw DaemonError("\(error)") }
        let delivery = PeerDelivery(
            store: store, nodeID: config.node.id, signingKey: signingKey, peers: config.peers, notifyURLs: playbooks.notifyURLs, metrics: metrics,
            logger: logger, clock: clock, now: now
        )
        let reloader = Reloader(
            configPath: config.path,
            inForce: inForce,
            store: store, delivery: delivery, enforcer: enforcer, notifier: notifier, metrics: metrics, logger: logger, now: now
        )
        let pipeline = Pipeline(
            store: store, execRunner: execRunner, rules: rules, delivery: delivery, metrics: metrics, nodeID: config.node.id,
            limits: IngestParser.Limits(
                maxItems: config.http.maxItemsPerRequest, maxDepth: config.http.maxJSONDepth, maxRuleBytes: config.http.maxRuleBytes
            ),
            inForce: { reloader.inForce }, now: now
        )
        let readiness = Readiness()
        let bell = DecisionBell()
        let consumers = BouncerConsumers()

        let router = Router(context: RampartRequestContext.self)
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: AuthMiddleware(keys: config.apiKeys))
        HealthRoutes(readiness: readiness, store: store).register(on: router)
        metrics.register(on: router, store: store, now: now)
        let bodies = BodyReceiver(maxBytes: config.http.maxBodyBytes, timeout: config.http.bodyTimeout)
        BouncerRoutes(bouncers: config.bouncers, consumers: consumers).register(on: router)
        IndicatorRoutes(pipeline: pipeline, bodies: bodies).register(on: router)
        RuleRoutes(pipeline: pipeline, store: store, bodies: bodies).register(on: router)
        DecisionRoutes(store: store, pipeline: pipeline, bodies: bodies, nodeID: config.node.id, now: now).register(on: router)
        PlaybookRoutes(pipeline: pipeline, reloader: reloader, bodies: bodies, now: now).register(on: router)
        AuditRoutes(store: store).register(on: router)
        OpenC2Routes(
            pipeline: pipeline, store: store, keys: config.apiKeys, mutualTLS: config.tls?.clientCA != nil, bodies: bodies, nodeID: config.node.id,
            now: now
        ).register(on: router)
        PeerRoutes(pipeline: pipeline, delivery: delivery, store: store, bodies: bodies, maxItems: config.http.maxItemsPerRequest, now: now)
            .register(on: router)
        let feeds = FeedService(pipeline: pipeline, store: store, metrics: metrics, logger: logger, now: now, feeds: { reloader.inForce.feeds })
        FeedRoutes(service: feeds, store: store, feeds: { reloader.inForce.feeds }).register(on: router)
        if let taxii = config.taxii {
            TAXIIRoutes(
                taxii: taxii, keys: config.apiKeys, pipeline: pipeline, store: store, bodies: bodies, nodeID: config.node.id,
                statusKept: config.retention.taxiiStatus, now: now
            ).register(on: router)
        }

        var services: [any Service] = [
            StoreService(store: store, observer: CommitObservers([enforcer, bell]), clock: clock, logger: logger)
        ]
        if let crowdsec = config.crowdsec {
            let api = BouncerAPI(
                store: store, bouncers: config.bouncers, consumers: consumers, bell: bell, bodies: bodies, metrics: metrics, now: now)
            services.append(try api.listener(crowdsec, http: config.http, logger: logger))
        }
        services += [
            enforcer,
            execRunner,
            delivery,
            feeds,
            ExpiryService(
                store: store, sightingWindow: { reloader.inForce.playbooks.sightingWindow }, interval: .seconds(1),
                retention: config.retention, clock: clock, now: now, logger: logger
            ),
            reloader,
            // Last, so that it is the first told of a shutdown: STOPPING=1 goes out at once.
            SystemdService(notifier: notifier, store: store, logger: logger),
        ]
        var app = Application(
            router: router,
            server: try serverBuilder(tls: config.tls, http: config.http),
            configuration: ApplicationConfiguration(address: .hostname(config.listen.host, port: config.listen.port)),
            services: services,
            onServerRunning: { channel in
                readiness.set(true)
                let port = channel.localAddress?.port ?? 0
                let listening = Config.Listen(host: channel.localAddress?.ipAddress ?? config.listen.host, port: port)
                logger.notice(
                    "daemon.ready",
                    metadata: [
                        "rampart.listen": "\(listening)", "rampart.node": "\(config.node.id)", "rampart.playbooks": "\(playbooks.playbooks.count)",
                    ]
                )
                notifier.ready(status: "ready: listening on \(listening), \(playbooks.playbooks.count) playbooks in force")
                await onListening(port)
            },
            logger: logger
        )
        app.beforeServerStarts {
            // The kernel follows the store: bring the firewall to the decisions in force.
            try await enforcer.reconcile()
            let rewritten = rules.reconcile(try await store.installedRules().map(\.file))
            if rewritten > 0 { logger.notice("rules.reconciled", metadata: ["rampart.rules.rewritten": "\(rewritten)"]) }
        }
        let routes = router.routes.map { route in
            "\(route.method) "
                + route.path.description.split(separator: "/", omittingEmptySubsequences: false)
                .map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
        }
        return (
            app,
            Parts(
                store: store, firewall: firewall, enforcer: enforcer, pipeline: pipeline, reloader: reloader, readiness: readiness, routes: routes
            )
        )
    }

    /// HTTP/1.1 with the `http` limits, over TLS when `tls` is set (requiring a client certificate
    /// signed by `tls.client_ca` when that is set).
    static func serverBuilder(tls: Config.TLS?, http limits: Config.HTTP) throws -> HTTPServerBuilder {
        let headers = HTTP1Channel.Configuration.DecoderConfiguration(
            maxHeaderFieldSize: limits.maxHeaderBytes, maxHeaderListSize: limits.maxHeaderBytes, maxHeaderFieldCount: 100
        )
        let connections = ConnectionLimit(max: limits.maxConnections)
        let http = HTTPServerBuilder.http1(
            configuration: .init(
                additionalChannelHandlers: [
                    connections.handler(), ExpectContinueHandler(), MalformedRequestHandler(maxHeaderBytes: limits.maxHeaderBytes),
                ],
                idleTimeout: .milliseconds(limits.idleTimeout.milliseconds),
                httpDecoderConfiguration: headers
            )
        )
        guard let tls else { return http }
        var settings: TLSConfiguration
        do {
            settings = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(tls.certificate).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.key, format: .pem))
            )
            if let clientCA = tls.clientCA {
                settings.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCA))
                settings.certificateVerification = .noHostnameVerification
            }
            settings.minimumTLSVersion = .tlsv12
            return try .tls(http, tlsConfiguration: settings)
        } catch {
            throw DaemonError("tls: cannot use \(tls.certificate) and \(tls.key)\(tls.clientCA.map { " with client CA \($0)" } ?? ""): \(error)")
        }
    }

    static func makeFirewall(_ config: Config, logger: Logger) -> any Firewall {
        switch config.firewall.backend {
        case .dryRun: DryRunFirewall(logger: logger)
        case .nftables:
            NFTablesFirewall(
                table: config.firewall.table, priority: config.firewall.priority, nft: config.firewall.nft, timeout: config.firewall.timeout,
                logger: logger
            )
        case .exec: ExecFirewall(command: config.firewall.command, timeout: config.firewall.timeout)
        }
    }
}

/// Why the daemon cannot start, in words for the operator.
public struct DaemonError: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
