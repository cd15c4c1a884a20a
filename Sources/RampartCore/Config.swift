import Foundation
import Yams

/// The daemon's configuration: one YAML file, read strictly (unknown keys are errors).
/// Relative paths in it are relative to the file's directory.
public struct Config: Sendable {
    public struct Node: Sendable {
        public var id: String
        public var region: String?
    }

    public struct Listen: Sendable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// TLS for the listener: PEM files (absolute paths once loaded). With `clientCA`, clients must
    /// present a certificate that CA signed.
    public struct TLS: Sendable {
        public var certificate: String
        public var key: String
        public var clientCA: String?
    }

    public enum FirewallBackend: String, Sendable, CaseIterable {
        case dryRun = "dry-run"
        case nftables
        case exec
    }

    public struct Firewall: Sendable {
        public var backend: FirewallBackend = .dryRun
        /// nftables: the table (`inet NAME`) Rampart owns.
        public var table = "rampart"
        /// nftables: the hook priority of its chains (filter is 0; lower runs earlier).
        public var priority = -10
        /// nftables: the `nft` binary.
        public var nft = "/usr/sbin/nft"
        /// exec: the command that gets each batch as JSON on stdin.
        public var command: [String] = []
        /// How long one `nft` run or exec command may take.
        public var timeout: Duration = .seconds(30)
        /// How often the kernel's sets are brought to the store's active decisions.
        public var reconcileInterval: Duration = .seconds(300)
    }

    public struct Safety: Sendable {
        public var neverBlock: [IPNetwork] = []
        public var allowNonGlobal: [IPNetwork] = []
        public var maxPrefixV4 = 16
        public var maxPrefixV6 = 32
        public var maxActiveBlocks = 2_000_000
    }

    public enum Role: String, Sendable, CaseIterable, Hashable {
        case ingest, read, admin
    }

    public struct APIKey: Sendable {
        public var name: String
        public var roles: Set<Role>
        /// SHA-256 of the token, as 32 bytes.
        public var tokenSHA256: [UInt8]
    }

    public struct HTTP: Sendable {
        public var maxBodyBytes = 16 << 20
        public var maxItemsPerRequest = 1_000_000
        public var maxJSONDepth = 32
        public var idleTimeout: Duration = .seconds(60)
        /// The most a request's header lines may hold, all together.
        public var maxHeaderBytes = 16 << 10
        /// How long a client has to send a request's whole body.
        public var bodyTimeout: Duration = .seconds(60)
        /// The largest detection rule accepted (`POST /v1/rules`, or from a peer).
        public var maxRuleBytes = Rule.defaultMaxBytes
        /// Connections open at once; one more is closed as soon as it is accepted, so that idle
        /// clients can never take the descriptors the store needs.
        public var maxConnections = 1024
    }

    public enum LogFormat: String, Sendable, CaseIterable {
        case logfmt, json
    }

    public struct Log: Sendable {
        public var level = "info"
        public var format = LogFormat.logfmt
    }

    /// The CrowdSec bouncer API's listener (`crowdsec`): only that API is served on it.
    public struct CrowdSec: Sendable {
        public var listen: Listen
        public var tls: TLS?
    }

    /// What a bouncer sees of the decisions: a scope CrowdSec names (`Ip`, `Range`).
    public enum BouncerScope: String, Sendable, CaseIterable, Hashable {
        case ip, range
    }

    /// A bouncer key (`bouncers`): who may pull decisions from the bouncer API, and which.
    public struct Bouncer: Sendable {
        public var name: String
        /// SHA-256 of the key, as 32 bytes.
        public var keySHA256: [UInt8]
        /// Only decisions that originated at these nodes; nil: all.
        public var origins: Set<String>?
        /// Only these scopes, whatever the bouncer asks (default: both).
        public var scopes: Set<BouncerScope> = Set(BouncerScope.allCases)
        /// A delta pull with nothing new waits up to this long for a change (long poll); nil: answers at once.
        public var hold: Duration?
    }

    /// The TAXII 2.1 server (`taxii`, under `/taxii2/` on the main listener): its title and the
    /// collections it serves, each a view of the store through a sharing policy.
    public struct TAXII: Sendable {
        public var title = "Rampart"
        public var description: String?
        public var collections: [Collection] = []

        public struct Collection: Sendable {
            /// A UUID, in lower case.
            public var id: String
            public var title: String
            public var description: String?
            /// API key names or roles that may read, and write (post objects to ingest).
            public var read: Set<String> = []
            public var write: Set<String> = []
            /// What readers may see (TLP:RED never, whatever this says).
            public var share = SharingPolicy()

            public init(id: String, title: String) {
                self.id = id
                self.title = title
            }

            func allows(_ key: APIKey, in names: Set<String>) -> Bool {
                names.contains(key.name) || key.roles.contains { names.contains($0.rawValue) }
            }

            public func canRead(_ key: APIKey) -> Bool { allows(key, in: read) }
            public func canWrite(_ key: APIKey) -> Bool { allows(key, in: write) }
        }
    }

    /// A feed pulled on a schedule (`feeds`): its items enter as `via: feed:NAME`.
    public struct Feed: Sendable {
        public enum Kind: String, Sendable, CaseIterable {
            /// A TAXII 2.1 collection (`url`: its API root, `collection`: its id).
            case taxii
            /// A STIX 2.1 bundle.
            case stix
            /// One value a line; `#` comments; the value in `column` (whitespace-separated).
            case text
            /// Comma- (or `delimiter`-) separated; the value in `column`; `#` lines are comments.
            case csv
            /// A MISP JSON feed directory (`url`: where its `manifest.json` is).
            case misp
        }

        public enum Auth: Sendable {
            case basic(user: String, passwordFile: String)
            case bearer(tokenFile: String)
            case header(name: String, valueFile: String)
        }

        public var name: String
        public var kind: Kind
        public var url: String
        public var collection: String?
        public var interval: Duration = .seconds(3600)
        /// A full list: what vanished from it since the last good pull is revoked (text, csv).
        public var sync = false
        public var defaults = IndicatorDefaults()
        public var auth: Auth?
        public var maxBytes = 64 << 20
        public var timeout: Duration = .seconds(60)
        /// text and csv: the 1-based column holding the value.
        public var column = 1
        public var delimiter: UInt8 = UInt8(ascii: ",")
        /// text and csv: lines starting with this are comments.
        public var comment = "#"
        /// text and csv: values matching this are left out (MISP's `excluderegex`), matched in linear time.
        public var exclude: LinearRegex?
        /// text and csv: the value is what this matches in the line (its first group, else the
        /// whole match), in place of a column; lines it does not match are left out.
        public var regex: LinearRegex?

        public var via: String { "feed:\(name)" }
    }

    /// How long what no longer matters is kept (`retention`): ended decisions and allow entries,
    /// outbox entries that were delivered, refused or withheld, and the status of each TAXII
    /// add-objects request. The audit log keeps every event whatever is pruned.
    public struct Retention: Sendable {
        public var decisions: Duration = .seconds(30 * 86_400)
        public var outbox: Duration = .seconds(30 * 86_400)
        public var taxiiStatus: Duration = .seconds(7 * 86_400)
    }

    /// Where the configuration was read from.
    public var path: String
    public var node: Node
    public var listen: Listen
    public var tls: TLS? = nil
    public var stateDirectory: String
    public var playbooksDirectory: String
    public var listsDirectory: String?
    public var firewall = Firewall()
    public var safety = Safety()
    public var apiKeys: [APIKey] = []
    public var http = HTTP()
    public var log = Log()
    /// The node's Ed25519 key (`whsk_`), for signing what it sends peers.
    public var signingKeyFile: String?
    public var peers: [Peer] = []
    public var crowdsec: CrowdSec? = nil
    public var bouncers: [Bouncer] = []
    public var retention = Retention()
    public var taxii: TAXII?
    public var feeds: [Feed] = []

    /// The SQLite database inside the state directory.
    public var databasePath: String { stateDirectory + "/rampart.sqlite" }

    /// The safety rails of this configuration on a host with `hostAddresses` (what its interfaces
    /// hold, and its peers' addresses: never blocked).
    public func safetyPolicy(hostAddresses: [SafetyPolicy.Protected]) -> SafetyPolicy {
        SafetyPolicy(
            neverBlock: safety.neverBlock.map { SafetyPolicy.Protected($0, "safety.never_block") } + hostAddresses,
            allowNonGlobal: safety.allowNonGlobal, maxPrefixV4: safety.maxPrefixV4, maxPrefixV6: safety.maxPrefixV6,
            maxActiveBlocks: safety.maxActiveBlocks
        )
    }

    /// Every key the configuration accepts, by section (`""` is the top level, `api_keys` each
    /// entry of that list): a type per section, through which the parser reads it, so that it
    /// allows exactly the keys it reads. A test checks that `deploy/rampart.example.yaml`
    /// documents each one.
    public enum Keys {
        /// The keys of the top level.
        public enum Top: String, ConfigKey {
            case node, listen, tls, stateDir = "state_dir", playbooks, lists, firewall, safety, apiKeys = "api_keys", http, log, signing, peers,
                crowdsec, bouncers, retention, taxii, feeds
        }

        /// The keys of `feeds`.
        public enum Feed: String, ConfigKey {
            case name, kind, url, collection, interval, sync, defaults, auth, maxBytes = "max_bytes", timeout, column, delimiter, comment, exclude,
                regex
        }

        /// The keys of `feeds.defaults`.
        public enum FeedDefaults: String, ConfigKey {
            case source, confidence, severity, tlp, tags, ttl, kind
        }

        /// The keys of `feeds.auth`.
        public enum FeedAuth: String, ConfigKey {
            case basic, bearerFile = "bearer_file", header
        }

        /// The keys of `feeds.auth.basic`.
        public enum FeedBasic: String, ConfigKey {
            case user, passwordFile = "password_file"
        }

        /// The keys of `feeds.auth.header`.
        public enum FeedHeader: String, ConfigKey {
            case name, valueFile = "value_file"
        }

        /// The keys of `taxii`.
        public enum TAXII: String, ConfigKey {
            case title, description, collections
        }

        /// The keys of `taxii.collections`.
        public enum TAXIICollection: String, ConfigKey {
            case id, title, description, read, write, share
        }

        /// The keys of `retention`.
        public enum Retention: String, ConfigKey {
            case decisions, outbox
            case taxiiStatus = "taxii_status"
        }

        /// The keys of `crowdsec`.
        public enum CrowdSec: String, ConfigKey {
            case listen, tls
        }

        /// The keys of `bouncers`.
        public enum Bouncer: String, ConfigKey {
            case name, keySHA256 = "key_sha256", origins, scopes, hold
        }

        /// The keys of `tls`.
        public enum TLS: String, ConfigKey {
            case cert, key, clientCA = "client_ca"
        }

        /// The keys of `node`.
        public enum Node: String, ConfigKey {
            case id, region
        }

        /// The keys of `firewall`.
        public enum Firewall: String, ConfigKey {
            case backend, table, priority, nft, command, timeout, reconcileInterval = "reconcile_interval"
        }

        /// The keys of `safety`.
        public enum Safety: String, ConfigKey {
            case neverBlock = "never_block", allowNonGlobal = "allow_non_global", maxPrefix = "max_prefix", maxActiveBlocks = "max_active_blocks"
        }

        /// The keys of `safety.max_prefix`.
        public enum MaxPrefix: String, ConfigKey {
            case ipv4, ipv6
        }

        /// The keys of `api_keys`.
        public enum APIKey: String, ConfigKey {
            case name, roles, tokenSHA256 = "token_sha256"
        }

        /// The keys of `http`.
        public enum HTTP: String, ConfigKey {
            case maxBody = "max_body", maxItems = "max_items", maxJSONDepth = "max_json_depth", idleTimeout = "idle_timeout", maxHeaderBytes =
                "max_header_bytes", bodyTimeout = "body_timeout", maxRule = "max_rule", maxConnections = "max_connections"
        }

        /// The keys of `log`.
        public enum Log: String, ConfigKey {
            case level, format
        }

        /// The keys of `signing`.
        public enum Signing: String, ConfigKey {
            case keyFile = "key_file"
        }

        /// The keys of `peers`.
        public enum Peer: String, ConfigKey {
            case name, nodeID = "node_id", url, publicKey = "public_key", secret, share, accept, expires, timeout
            case deadLetterAfter = "dead_letter_after", resync
        }

        /// The keys of `peers.share`.
        public enum Share: String, ConfigKey {
            case maxTlp = "max_tlp", items, kinds, actions, regions, redact
        }

        /// The keys of `peers.accept`.
        public enum Accept: String, ConfigKey {
            case items, suggested, maxDuration = "max_duration", minConfidence = "min_confidence", rate
        }
    }

    /// The key names of every section, by section.
    public static let keys: [String: [String]] = [
        "": Keys.Top.names,
        "tls": Keys.TLS.names,
        "node": Keys.Node.names,
        "firewall": Keys.Firewall.names,
        "safety": Keys.Safety.names,
        "safety.max_prefix": Keys.MaxPrefix.names,
        "api_keys": Keys.APIKey.names,
        "http": Keys.HTTP.names,
        "log": Keys.Log.names,
        "signing": Keys.Signing.names,
        "peers": Keys.Peer.names,
        "peers.share": Keys.Share.names,
        "peers.accept": Keys.Accept.names,
        "crowdsec": Keys.CrowdSec.names,
        "crowdsec.tls": Keys.TLS.names,
        "bouncers": Keys.Bouncer.names,
        "retention": Keys.Retention.names,
        "taxii": Keys.TAXII.names,
        "taxii.collections": Keys.TAXIICollection.names,
        "taxii.collections.share": Keys.Share.names,
        "feeds": Keys.Feed.names,
        "feeds.defaults": Keys.FeedDefaults.names,
        "feeds.auth": Keys.FeedAuth.names,
        "feeds.auth.basic": Keys.FeedBasic.names,
        "feeds.auth.header": Keys.FeedHeader.names,
    ]

    /// Reads and validates the file at `path`; throws every problem found, each with its line and column.
    public static func load(path: String) throws(Diagnostics) -> Config {
        let root = try YAMLSource.load(path: path)
        return try parse(root, path: path)
    }

    public static func parse(_ root: Yams.Node, path: String) throws(Diagnostics) -> Config {
        let reader = YAMLReader(file: path)
        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        func resolve(_ node: Yams.Node, _ what: String) -> String? {
            guard let text = reader.string(node, what) else { return nil }
            guard !text.isEmpty else {
                reader.error(node, "\(what) must not be empty")
                return nil
            }
            return URL(fileURLWithPath: text, relativeTo: base).standardizedFileURL.path
        }
        guard let top = reader.section(root, Keys.Top.self, what: "the configuration") else {
            throw Diagnostics(reader.diagnostics)
        }
        var node = Node(id: "", region: nil)
        if let n = top.required(.node), let fields = reader.section(n, Keys.Node.self, what: "node") {
            if let idNode = fields.required(.id), let id = reader.string(idNode, "node.id") {
                if isName(id) { node.id = id } else { reader.error(idNode, "node.id must be 1-64 letters, digits, '-', '_' or '.'") }
            }
            if let r = fields[.region] { node.region = reader.string(r, "node.region") }
        }
        var listen = Listen(host: "127.0.0.1", port: 8470)
        if let n = top[.listen], let text = reader.string(n, "listen") {
            if let parsed = parseListen(text) {
                listen = parsed
            } else {
                reader.error(n, "listen must be host:port, such as 127.0.0.1:8470 or [::1]:8470")
            }
        }
        let stateDirectory = top.required(.stateDir).flatMap { resolve($0, "state_dir") } ?? ""
        let playbooks = top.required(.playbooks).flatMap { resolve($0, "playbooks") } ?? ""
        let lists = top[.lists].flatMap { resolve($0, "lists") }
        var config = Config(
            path: path, node: node, listen: listen, stateDirectory: stateDirectory, playbooksDirectory: playbooks,
            listsDirectory: lists
        )
        func tls(_ n: Yams.Node, _ section: String) -> TLS? {
            guard let fields = reader.section(n, Keys.TLS.self, what: section) else { return nil }
            func file(_ key: Keys.TLS) -> String? {
                guard let node = fields[key], let path = resolve(node, "\(section).\(key.rawValue)") else { return nil }
                guard FileManager.default.isReadableFile(atPath: path) else {
                    reader.error(node, "\(section).\(key.rawValue): cannot read \(path)")
                    return nil
                }
                return path
            }
            _ = fields.required(.cert)
            _ = fields.required(.key)
            guard let certificate = file(.cert), let key = file(.key) else { return nil }
            return TLS(certificate: certificate, key: key, clientCA: file(.clientCA))
        }
        if let n = top[.tls] { config.tls = tls(n, "tls") }
        if let n = top[.firewall],
            let fields = reader.section(n, Keys.Firewall.self, what: "firewall")
        {
            if let b = fields[.backend] {
                config.firewall.backend =
                    reader.word(b, "firewall.backend") { (text) throws(ValueError) -> FirewallBackend in
                        guard let backend = FirewallBackend(rawValue: text) else {
                            throw ValueError(
                                .invalidField,
                                "unknown backend '\(text.preview)'; this build supports: \(FirewallBackend.allCases.map(\.rawValue).joined(separator: ", "))"
                            )
                        }
                        return backend
                    } ?? .dryRun
            }
            if let t = fields[.table], let table = reader.string(t, "firewall.table") {
                if isName(table) && !table.contains(".") && !table.contains("-") && table.first!.isLetter {
                    config.firewall.table = table
                } else {
                    reader.error(t, "firewall.table must be 1-64 letters, digits or '_', starting with a letter")
                }
            }
            if let v = fields[.priority], let priority = reader.int(v, "firewall.priority", in: -400...400) {
                config.firewall.priority = priority
            }
            if let v = fields[.nft], let nft = reader.string(v, "firewall.nft") {
                if nft.hasPrefix("/") { config.firewall.nft = nft } else { reader.error(v, "firewall.nft must be an absolute path") }
            }
            if let v = fields[.command], let argv = reader.strings(v, "firewall.command", allowSingle: false) {
                if let program = argv.first, program.hasPrefix("/") {
                    config.firewall.command = argv
                } else {
                    reader.error(v, "firewall.command must be a list whose first element is an absolute path (argv, never a shell line)")
                }
            }
            if let v = fields[.timeout], let timeout = reader.duration(v, "firewall.timeout") { config.firewall.timeout = timeout }
            if let v = fields[.reconcileInterval], let interval = reader.duration(v, "firewall.reconcile_interval") {
                config.firewall.reconcileInterval = interval
            }
            if config.firewall.backend == .exec && config.firewall.command.isEmpty {
                reader.error(n, "firewall.command is required with backend exec")
            }
        }
        if let n = top[.safety] {
            config.safety = parseSafety(n, reader)
        }
        if let n = top[.apiKeys], let entries = reader.list(n, "api_keys", allowSingle: false) {
            var names: Set<String> = []
            for entry in entries {
                guard let key = parseAPIKey(entry, reader) else { continue }
                if !names.insert(key.name).inserted { reader.error(entry, "api key name '\(key.name)' is used twice") }
                config.apiKeys.append(key)
            }
        }
        if let n = top[.http] {
            config.http = parseHTTP(n, reader)
        }
        if let n = top[.log], let fields = reader.section(n, Keys.Log.self, what: "log") {
            if let l = fields[.level], let level = reader.string(l, "log.level") {
                let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
                if levels.contains(level) {
                    config.log.level = level
                } else {
                    reader.error(l, "log.level must be one of: \(levels.joined(separator: ", "))")
                }
            }
            if let f = fields[.format] {
                config.log.format =
                    reader.word(f, "log.format") { (text) throws(ValueError) -> LogFormat in
                        guard let format = LogFormat(rawValue: text) else { throw ValueError(.invalidField, "expected logfmt or json") }
                        return format
                    } ?? .logfmt
            }
        }
        if let n = top[.signing], let fields = reader.section(n, Keys.Signing.self, what: "signing") {
            if let k = fields.required(.keyFile) { config.signingKeyFile = resolve(k, "signing.key_file") }
        }
        if let n = top[.peers] {
            config.peers = parsePeers(n, reader: reader, nodeID: config.node.id)
            if config.signingKeyFile == nil, let unsigned = config.peers.first(where: { $0.secret == nil }) {
                reader.error(
                    n,
                    "peer '\(unsigned.name)' shares no secret, so what is sent to it is signed with this node's key: set signing.key_file (make one with `rampart keygen`)"
                )
            }
        }
        if let n = top[.crowdsec], let fields = reader.section(n, Keys.CrowdSec.self, what: "crowdsec"),
            let l = fields.required(.listen), let text = reader.string(l, "crowdsec.listen")
        {
            if let listen = parseListen(text) {
                if listen.port != 0 && listen.port == config.listen.port && (listen.host == config.listen.host || listen.host == "0.0.0.0") {
                    reader.error(
                        l, "crowdsec.listen must be another address than listen (\(config.listen)): the bouncer API has a listener of its own")
                }
                config.crowdsec = CrowdSec(listen: listen, tls: fields[.tls].flatMap { tls($0, "crowdsec.tls") })
            } else {
                reader.error(l, "crowdsec.listen must be host:port, such as 127.0.0.1:8080")
            }
        }
        if let n = top[.bouncers], let entries = reader.list(n, "bouncers", allowSingle: false) {
            var names: Set<String> = []
            for entry in entries {
                guard let bouncer = parseBouncer(entry, reader) else { continue }
                if !names.insert(bouncer.name).inserted { reader.error(entry, "bouncer name '\(bouncer.name)' is used twice") }
                config.bouncers.append(bouncer)
            }
            if !config.bouncers.isEmpty && top[.crowdsec] == nil {
                reader.error(n, "bouncers pull from the CrowdSec bouncer API: set crowdsec.listen too")
            }
        }
        if let n = top[.retention], let fields = reader.section(n, Keys.Retention.self, what: "retention") {
            for key in Keys.Retention.allCases {
                // The bouncer API lists decisions ended in the last day; peers' revocations need
                // the outbox entries of items whose decisions are in force (those are never pruned).
                guard let v = fields[key], let kept = reader.duration(v, "retention.\(key.rawValue)") else { continue }
                guard kept >= .seconds(86_400) else {
                    reader.error(v, "retention.\(key.rawValue) must be at least 1d")
                    continue
                }
                switch key {
                case .decisions: config.retention.decisions = kept
                case .outbox: config.retention.outbox = kept
                case .taxiiStatus: config.retention.taxiiStatus = kept
                }
            }
        }
        if let n = top[.taxii] { config.taxii = parseTAXII(n, reader, apiKeys: config.apiKeys) }
        for entry in top[.feeds].flatMap({ reader.list($0, "feeds", allowSingle: false) }) ?? [] {
            guard let feed = parseFeed(entry, reader, resolve: resolve) else { continue }
            if config.feeds.contains(where: { $0.name == feed.name }) { reader.error(entry, "feed name '\(feed.name)' is used twice") }
            config.feeds.append(feed)
        }
        try reader.throwIfErrors()
        return config
    }

    static func parseTAXII(_ node: Yams.Node, _ reader: YAMLReader, apiKeys: [APIKey]) -> TAXII? {
        guard let fields = reader.section(node, Keys.TAXII.self, what: "taxii") else { return nil }
        var taxii = TAXII()
        if let n = fields[.title], let title = reader.string(n, "taxii.title") { taxii.title = title }
        if let n = fields[.description] { taxii.description = reader.string(n, "taxii.description") }
        let principals = Set(apiKeys.map(\.name) + Role.allCases.map(\.rawValue))
        for entry in fields[.collections].flatMap({ reader.list($0, "taxii.collections", allowSingle: false) }) ?? [] {
            guard let c = reader.section(entry, Keys.TAXIICollection.self, what: "a TAXII collection"),
                let idNode = c.required(.id), let id = reader.string(idNode, "taxii.collections.id"),
                let titleNode = c.required(.title), let title = reader.string(titleNode, "taxii.collections.title")
            else { continue }
            guard PeerMessage.isItemID(id) else {
                reader.error(idNode, "taxii.collections.id must be a UUID in lower case, such as 7d9c0b0e-2f3a-4c55-9a57-0b6f6f5f3a10")
                continue
            }
            if taxii.collections.contains(where: { $0.id == id }) { reader.error(idNode, "collection id \(id) is used twice") }
            var collection = TAXII.Collection(id: id, title: title)
            if let n = c[.description] { collection.description = reader.string(n, "taxii.collections.description") }
            for (key, path) in [(Keys.TAXIICollection.read, "read"), (.write, "write")] {
                guard let n = c[key], let names = reader.strings(n, "taxii.collections.\(path)") else { continue }
                for name in names where !principals.contains(name) {
                    reader.error(n, "taxii.collections.\(path): '\(name.preview)' is neither an API key name nor a role (ingest, read, admin)")
                }
                if key == .read { collection.read = Set(names) } else { collection.write = Set(names) }
            }
            if let n = c[.share] { collection.share = parseSharing(n, path: "taxii.collections.share", reader: reader) }
            taxii.collections.append(collection)
        }
        return taxii
    }

    static func parseFeed(_ node: Yams.Node, _ reader: YAMLReader, resolve: (Yams.Node, String) -> String?) -> Feed? {
        guard let f = reader.section(node, Keys.Feed.self, what: "a feed"),
            let nameNode = f.required(.name), let name = reader.string(nameNode, "feeds.name"),
            let kindNode = f.required(.kind),
            let kind = reader.word(
                kindNode, "feeds.kind",
                { (text) throws(ValueError) -> Feed.Kind in
                    guard let kind = Feed.Kind(rawValue: text) else {
                        throw ValueError(.invalidField, "unknown kind '\(text.preview)'; expected taxii, stix, misp, text or csv")
                    }
                    return kind
                }),
            let urlNode = f.required(.url), let url = reader.string(urlNode, "feeds.url")
        else { return nil }
        guard isName(name) else {
            reader.error(nameNode, "feed names are 1-64 letters, digits, '-', '_' or '.'")
            return nil
        }
        if !isHTTPURL(url) { reader.error(urlNode, "feeds.url must be an http:// or https:// URL without credentials (put them in auth)") }
        var feed = Feed(name: name, kind: kind, url: url)
        if kind == .taxii {
            if let n = f.required(.collection) { feed.collection = reader.string(n, "feeds.collection") }
        } else if let n = f[.collection] {
            reader.error(n, "feeds.collection is for kind taxii")
        }
        if let n = f[.interval], let interval = reader.duration(n, "feeds.interval") {
            if interval >= .seconds(60) { feed.interval = interval } else { reader.error(n, "feeds.interval must be at least 1m") }
        }
        if let n = f[.sync], let sync = reader.bool(n, "feeds.sync") {
            if sync && !(kind == .text || kind == .csv) { reader.error(n, "feeds.sync is for full lists: kinds text and csv") }
            feed.sync = sync
        }
        if let n = f[.defaults], let d = reader.section(n, Keys.FeedDefaults.self, what: "feeds.defaults") {
            var parameters: [(String, String)] = []
            for key in Keys.FeedDefaults.allCases {
                guard let v = d[key] else { continue }
                if key == .tags, let tags = reader.strings(v, "feeds.defaults.tags") {
                    parameters.append(("tags", tags.joined(separator: ",")))
                } else if key != .tags, let text = reader.string(v, "feeds.defaults.\(key.rawValue)") {
                    parameters.append((key.rawValue, text))
                }
            }
            do { feed.defaults = try IndicatorDefaults(parameters: parameters) } catch { reader.error(n, "feeds.defaults: \(error.message)") }
        }
        if let n = f[.auth], let a = reader.section(n, Keys.FeedAuth.self, what: "feeds.auth") {
            if let b = a[.basic], let basic = reader.section(b, Keys.FeedBasic.self, what: "feeds.auth.basic"),
                let u = basic.required(.user), let user = reader.string(u, "feeds.auth.basic.user"),
                let p = basic.required(.passwordFile), let file = resolve(p, "feeds.auth.basic.password_file")
            {
                feed.auth = .basic(user: user, passwordFile: file)
            } else if let b = a[.bearerFile], let file = resolve(b, "feeds.auth.bearer_file") {
                feed.auth = .bearer(tokenFile: file)
            } else if let h = a[.header], let header = reader.section(h, Keys.FeedHeader.self, what: "feeds.auth.header"),
                let nn = header.required(.name), let name = reader.string(nn, "feeds.auth.header.name"),
                let vn = header.required(.valueFile), let file = resolve(vn, "feeds.auth.header.value_file")
            {
                feed.auth = .header(name: name, valueFile: file)
            }
        }
        if let n = f[.maxBytes], let size = reader.word(n, "feeds.max_bytes", Config.parseSize) { feed.maxBytes = size }
        if let n = f[.timeout], let timeout = reader.duration(n, "feeds.timeout") {
            if timeout >= .seconds(1) && timeout <= .seconds(3600) {
                feed.timeout = timeout
            } else {
                reader.error(n, "feeds.timeout must be between 1s and 1h")
            }
        }
        if let n = f[.column], let column = reader.int(n, "feeds.column", in: 1...1000) { feed.column = column }
        if let n = f[.comment], let text = reader.string(n, "feeds.comment") {
            if (1...8).contains(text.utf8.count) { feed.comment = text } else { reader.error(n, "feeds.comment must be 1 to 8 characters") }
        }
        if let n = f[.exclude] { feed.exclude = reader.word(n, "feeds.exclude") { (text) throws(ValueError) in try LinearRegex(text) } }
        if let n = f[.regex] {
            feed.regex = reader.word(n, "feeds.regex") { (text) throws(ValueError) in try LinearRegex(text) }
            if f[.column] != nil { reader.error(n, "feeds.regex takes the value from the whole line: give it or column, not both") }
            if !(kind == .text || kind == .csv) { reader.error(n, "feeds.regex is for lists: kinds text and csv") }
        }
        if let n = f[.delimiter], let text = reader.string(n, "feeds.delimiter") {
            let byte = text == "\\t" ? [UInt8(ascii: "\t")] : Array(text.utf8)
            if byte.count == 1 { feed.delimiter = byte[0] } else { reader.error(n, "feeds.delimiter must be one character (\\t for a tab)") }
        }
        return feed
    }

    static func parseBouncer(_ node: Yams.Node, _ reader: YAMLReader) -> Bouncer? {
        guard let fields = reader.section(node, Keys.Bouncer.self, what: "a bouncer") else { return nil }
        guard let nameNode = fields.required(.name), let name = reader.string(nameNode, "bouncers.name"),
            let hashNode = fields.required(.keySHA256), let hashText = reader.string(hashNode, "bouncers.key_sha256")
        else { return nil }
        guard isName(name) else {
            reader.error(nameNode, "bouncer names are 1-64 letters, digits, '-', '_' or '.'")
            return nil
        }
        guard let digest = sha256(hex: hashText) else {
            reader.error(hashNode, "key_sha256 must be the 64 hex digits `rampart bouncers add` prints (the key itself never goes in the file)")
            return nil
        }
        var bouncer = Bouncer(name: name, keySHA256: digest)
        if let n = fields[.origins], let origins = reader.strings(n, "bouncers.origins") {
            for origin in origins where !isName(origin) { reader.error(n, "bouncers.origins: '\(origin.preview)' is not a node id") }
            bouncer.origins = Set(origins)
        }
        if let n = fields[.scopes], let scopes = reader.strings(n, "bouncers.scopes") {
            var chosen: Set<BouncerScope> = []
            for scope in scopes {
                guard let parsed = BouncerScope(rawValue: scope.lowercased()) else {
                    reader.error(n, "bouncers.scopes: unknown scope '\(scope.preview)'; expected ip, range or both")
                    continue
                }
                chosen.insert(parsed)
            }
            if chosen.isEmpty { reader.error(n, "bouncers.scopes must name ip, range or both") } else { bouncer.scopes = chosen }
        }
        if let n = fields[.hold], let hold = reader.duration(n, "bouncers.hold") {
            if hold <= .seconds(300) { bouncer.hold = hold } else { reader.error(n, "bouncers.hold must be at most 5m") }
        }
        return bouncer
    }

    /// 64 hex digits as 32 bytes.
    static func sha256(hex text: String) -> [UInt8]? {
        let hex = Array(text.lowercased().utf8)
        guard hex.count == 64, hex.allSatisfy({ hexValue($0) != nil }) else { return nil }
        return stride(from: 0, to: 64, by: 2).map { hexValue(hex[$0])! << 4 | hexValue(hex[$0 + 1])! }
    }

    /// Reads the node's signing key (`signing.key_file`), when one is configured.
    public func signingKey() throws(Diagnostics) -> WebhookSignature.SigningKey? {
        guard let path = signingKeyFile else { return nil }
        func problem(_ message: String) -> Diagnostics {
            Diagnostics([Diagnostic(file: self.path, line: 0, column: 0, message: "signing.key_file \(path): \(message)")])
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw problem("cannot read it") }
        do {
            return try WebhookSignature.SigningKey(text: text.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            throw problem(error.description)
        }
    }

    static func parseSafety(_ node: Yams.Node, _ reader: YAMLReader) -> Safety {
        var safety = Safety()
        guard let fields = reader.section(node, Keys.Safety.self, what: "safety") else {
            return safety
        }
        func networks(_ key: Keys.Safety) -> [IPNetwork] {
            guard let n = fields[key], let items = reader.list(n, "safety.\(key.rawValue)", allowSingle: false) else { return [] }
            return items.compactMap { item in
                reader.word(item, "safety.\(key.rawValue)") { (text) throws(ValueError) -> IPNetwork in
                    try IPNetwork(parsing: text, allowBareAddress: true)
                }
            }
        }
        safety.neverBlock = networks(.neverBlock)
        safety.allowNonGlobal = networks(.allowNonGlobal)
        if let n = fields[.maxPrefix], let prefix = reader.section(n, Keys.MaxPrefix.self, what: "safety.max_prefix") {
            if let v = prefix[.ipv4], let value = reader.int(v, "safety.max_prefix.ipv4", in: 8...32) { safety.maxPrefixV4 = value }
            if let v = prefix[.ipv6], let value = reader.int(v, "safety.max_prefix.ipv6", in: 16...128) { safety.maxPrefixV6 = value }
        }
        if let n = fields[.maxActiveBlocks], let value = reader.int(n, "safety.max_active_blocks", in: 1...100_000_000) {
            safety.maxActiveBlocks = value
        }
        return safety
    }

    static func parseAPIKey(_ node: Yams.Node, _ reader: YAMLReader) -> APIKey? {
        guard let fields = reader.section(node, Keys.APIKey.self, what: "an api key") else { return nil }
        guard let nameNode = fields.required(.name), let name = reader.string(nameNode, "api_keys.name"),
            let rolesNode = fields.required(.roles), let roleNames = reader.strings(rolesNode, "api_keys.roles"),
            let hashNode = fields.required(.tokenSHA256), let hashText = reader.string(hashNode, "api_keys.token_sha256")
        else { return nil }
        guard isName(name) else {
            reader.error(nameNode, "api key names are 1-64 letters, digits, '-', '_' or '.'")
            return nil
        }
        var roles: Set<Role> = []
        for role in roleNames {
            guard let parsed = Role(rawValue: role) else {
                reader.error(rolesNode, "unknown role '\(role.preview)'; expected ingest, read or admin")
                return nil
            }
            roles.insert(parsed)
        }
        guard let digest = sha256(hex: hashText) else {
            reader.error(hashNode, "token_sha256 must be the 64 hex digits `rampart token` prints (the token itself never goes in the file)")
            return nil
        }
        return APIKey(name: name, roles: roles, tokenSHA256: digest)
    }

    static func parseHTTP(_ node: Yams.Node, _ reader: YAMLReader) -> HTTP {
        var http = HTTP()
        guard let fields = reader.section(node, Keys.HTTP.self, what: "http") else { return http }
        if let n = fields[.maxBody], let size = reader.word(n, "http.max_body", Config.parseSize) { http.maxBodyBytes = size }
        if let n = fields[.maxItems], let v = reader.int(n, "http.max_items", in: 1...10_000_000) { http.maxItemsPerRequest = v }
        if let n = fields[.maxJSONDepth], let v = reader.int(n, "http.max_json_depth", in: 4...256) { http.maxJSONDepth = v }
        if let n = fields[.idleTimeout], let v = reader.duration(n, "http.idle_timeout") { http.idleTimeout = v }
        if let n = fields[.maxHeaderBytes], let size = reader.word(n, "http.max_header_bytes", Config.parseSize) {
            if (1 << 10...1 << 20).contains(size) {
                http.maxHeaderBytes = size
            } else {
                reader.error(n, "http.max_header_bytes must be between 1KiB and 1MiB")
            }
        }
        if let n = fields[.bodyTimeout], let v = reader.duration(n, "http.body_timeout") { http.bodyTimeout = v }
        if let n = fields[.maxRule], let size = reader.word(n, "http.max_rule", Config.parseSize) {
            if (1 << 10...16 << 20).contains(size) {
                http.maxRuleBytes = size
            } else {
                reader.error(n, "http.max_rule must be between 1KiB and 16MiB")
            }
        }
        if let n = fields[.maxConnections], let v = reader.int(n, "http.max_connections", in: 8...1_000_000) { http.maxConnections = v }
        return http
    }

    /// `16MiB`, `512KiB`, `1048576`.
    public static func parseSize(_ text: String) throws(ValueError) -> Int {
        let units: [(String, Int)] = [
            ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("GB", 1_000_000_000), ("MB", 1_000_000), ("kB", 1000), ("B", 1), ("", 1),
        ]
        for (unit, scale) in units where text.hasSuffix(unit) {
            if let number = Int(text.dropLast(unit.count).trimmingCharacters(in: .whitespaces)), number > 0, number <= Int(Int32.max) / scale * 4 {
                return number * scale
            }
        }
        throw ValueError(.invalidField, "'\(text.preview)' is not a size; expected a number with KiB, MiB or GiB, such as 16MiB")
    }

    static func parseListen(_ text: String) -> Listen? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        return Listen(host: String(host), port: port)
    }

    /// An http:// or https:// URL with a host and no credentials (peers, feeds, notify webhooks).
    static func isHTTPURL(_ text: String) -> Bool {
        guard let components = URLComponents(string: text) else { return false }
        return ["http", "https"].contains(components.scheme) && components.host?.isEmpty == false && components.user == nil
            && components.password == nil
    }

    static func isName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 64
            && text.utf8.allSatisfy {
                ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 || $0 == 46
            }
    }
}
