import Foundation
import Yams

/// Another Rampart node this one exchanges items with, and what may go each way.
public struct Peer: Sendable {
    /// The local name (`via: peer:NAME`, `propagate: {to: [NAME]}`).
    public var name: String
    /// The peer's `node.id`: what it puts last in `path` when it sends, and what this node looks
    /// for in `path` so as never to send an item back where it has been. The name by default.
    public var nodeID: String
    /// Where to POST (`…/v1/peer/events`).
    public var url: String
    /// Verify what the peer sends (v1a); two while it rotates its key.
    public var publicKeys: [WebhookSignature.PublicKey] = []
    /// A secret both sides hold (v1), used both ways.
    public var secret: WebhookSignature.Secret?
    public var share = SharingPolicy()
    public var accept = TrustPolicy()
    /// After this instant nothing is sent to the peer or accepted from it.
    public var expires: Date?
    /// The longest one delivery to the peer may take, answer and body included (`timeout`, default 30s).
    public var timeout: Duration = .seconds(30)
    /// Entries still undelivered this long after they were queued are dead-lettered at their
    /// next failure (`dead_letter_after`, default 24h); anti-entropy sends them once the peer is back.
    public var deadLetterAfter: Duration = .seconds(86_400)
    /// How often the two nodes compare what this one queued for the peer with what the peer took,
    /// and repair the difference (`resync`, default 1h); also on start, when a link comes back,
    /// and when the peer starts a sync of its own.
    public var resync: Duration = .seconds(3600)

    public init(name: String, url: String) {
        self.name = name
        self.nodeID = name
        self.url = url
    }

    public var via: String { "peer:\(name)" }

    public func hasExpired(at now: Date) -> Bool {
        expires.map { now >= $0 } ?? false
    }
}

/// What this node sends a peer (outbound), checked when an item is queued and again when it is
/// sent, on every path: first send, retry, replay.
public struct SharingPolicy: Sendable {
    /// The most sensitive TLP that may go; `red` is refused whatever this says.
    public var maxTLP: TLP = .amber
    /// Item types (`indicator`, `rule`) that may go; nil: both.
    public var items: Set<String>?
    /// Indicator kinds that may go; nil: all.
    public var kinds: KindSet?
    /// Suggested actions the peer may hear; others are dropped from `suggested`. nil: all.
    public var actions: Set<String>?
    /// Region tags (`region:NAME` on an item) the peer may get; items without a region tag go to
    /// every peer. nil: any region.
    public var regions: Set<String>?
    /// Indicator fields blanked before sending (`description`, `source`, `references`, `tags`).
    public var redact: Set<String> = []

    public static let redactable = ["description", "source", "references", "tags"]
    public static let itemTypes = ["indicator", "rule"]

    public init() {}

    /// The item as the peer may see it, or why it may not go.
    public func share(_ item: Item) -> Result<Item, Withheld> {
        if let items, !items.contains(item.type) {
            return .failure(Withheld("item_type", "\(item.type) items are not among the items shared with this peer"))
        }
        let tlp = item.tlp
        if tlp == .red { return .failure(Withheld("tlp_red", "TLP:RED never leaves this node")) }
        if tlp > maxTLP { return .failure(Withheld("tlp", "TLP:\(tlp.rawValue.uppercased()) is above this peer's max_tlp \(maxTLP.rawValue)")) }
        var shared = item
        switch item.payload {
        case .indicator(var indicator):
            if let kinds, !kinds.contains(indicator.kind) {
                return .failure(Withheld("kind", "\(indicator.kind.rawValue) is not among the kinds shared with this peer"))
            }
            if let withheld = withheldByRegion(indicator.tags) { return .failure(withheld) }
            if redact.contains("description") { indicator.description = nil }
            if redact.contains("source") { indicator.source = nil }
            if redact.contains("references") { indicator.references = [] }
            if redact.contains("tags") { indicator.tags = indicator.tags.filter { $0.hasPrefix("region:") } }
            shared.payload = .indicator(indicator)
        case .rule(var rule):
            // A rule's content goes as written (receivers install it byte for byte); tags can go.
            if let withheld = withheldByRegion(rule.tags) { return .failure(withheld) }
            if redact.contains("tags") { rule.tags = rule.tags.filter { $0.hasPrefix("region:") } }
            shared.payload = .rule(rule)
        }
        if let actions { shared.suggested = shared.suggested.filter(actions.contains) }
        return .success(shared)
    }

    func withheldByRegion(_ tags: [String]) -> Withheld? {
        let itemRegions = tags.filter { $0.hasPrefix("region:") }.map { String($0.dropFirst(7)) }
        guard let regions, !itemRegions.isEmpty, !itemRegions.contains(where: regions.contains) else { return nil }
        return Withheld("region", "the item is for region \(itemRegions.joined(separator: ", ")), not shared with this peer")
    }

    public struct Withheld: Error, Sendable, Equatable {
        public let code: ErrorCode
        public let message: String

        init(_ code: ErrorCode, _ message: String) {
            self.code = code
            self.message = message
        }
    }
}

/// What this node accepts from a peer (inbound). Anything else is refused and audited.
public struct TrustPolicy: Sendable {
    public enum ItemType: String, Sendable, CaseIterable {
        case indicator, rule, revoke
    }

    public var items: Set<ItemType> = [.indicator, .rule, .revoke]
    /// Suggested actions kept on received items; others are dropped (and the drop audited). Empty: none.
    public var suggested: Set<String> = []
    /// The longest block an item from this peer may cause, whatever the playbooks say.
    public var maxDuration: Duration?
    public var minConfidence = 0
    /// At most `rate.count` items per `rate.per`; a request above it is answered 429 and retried.
    public var rate: (count: Int, per: Duration)?

    public init() {}
}

extension Config {
    /// `signing` and `peers`: parsed with the rest of the configuration (see `Config.parse`).
    static func parsePeers(_ node: Yams.Node, reader: YAMLReader, nodeID: String) -> [Peer] {
        guard let entries = reader.list(node, "peers", allowSingle: false) else { return [] }
        var peers: [Peer] = []
        for (index, entry) in entries.enumerated() {
            guard let peer = parsePeer(entry, path: "peers[\(index)]", reader: reader) else { continue }
            if peers.contains(where: { $0.name == peer.name }) {
                reader.error(entry, "peer name '\(peer.name)' is used twice")
            } else if peers.contains(where: { $0.nodeID == peer.nodeID }) || peer.nodeID == nodeID {
                reader.error(entry, "node id '\(peer.nodeID)' of peer '\(peer.name)' is already this node's or another peer's; node ids are unique")
            } else {
                peers.append(peer)
            }
        }
        return peers
    }

    static func parsePeer(_ node: Yams.Node, path: String, reader: YAMLReader) -> Peer? {
        guard let fields = reader.section(node, Config.Keys.Peer.self, what: "a peer") else { return nil }
        guard let nameNode = fields.required(.name), let name = reader.string(nameNode, "\(path).name"),
            let urlNode = fields.required(.url), let url = reader.string(urlNode, "\(path).url")
        else { return nil }
        guard isName(name) else {
            reader.error(nameNode, "peer names are 1-64 letters, digits, '-', '_' or '.'")
            return nil
        }
        var peer = Peer(name: name, url: url)
        if !Config.isHTTPURL(url) {
            reader.error(
                urlNode,
                "\(path).url must be an http:// or https:// URL without credentials, such as https://rampart.cert-fr.example:8470/v1/peer/events")
        }
        if let n = fields[.nodeID], let id = reader.string(n, "\(path).node_id") {
            if isName(id) { peer.nodeID = id } else { reader.error(n, "\(path).node_id must be 1-64 letters, digits, '-', '_' or '.'") }
        }
        if let n = fields[.publicKey], let entries = reader.list(n, "\(path).public_key") {
            peer.publicKeys = entries.compactMap { entry in
                reader.word(entry, "\(path).public_key") { (text) throws(ValueError) in
                    do { return try WebhookSignature.PublicKey(text: text) } catch { throw ValueError(.invalidField, "\(error)") }
                }
            }
        }
        if let n = fields[.secret] {
            peer.secret = reader.word(n, "\(path).secret") { (text) throws(ValueError) in
                do { return try WebhookSignature.Secret(text: text) } catch { throw ValueError(.invalidField, "\(error)") }
            }
        }
        if fields[.publicKey] == nil && fields[.secret] == nil {
            reader.error(
                node, "peer '\(name)' needs a public_key (whpk_…, from its `rampart keygen`), a secret (whsec_…) or both, to verify what it sends")
        }
        if let n = fields[.share] { peer.share = parseSharing(n, path: "\(path).share", reader: reader) }
        if let n = fields[.accept] { peer.accept = parseTrust(n, path: "\(path).accept", reader: reader) }
        if let n = fields[.timeout], let timeout = reader.duration(n, "\(path).timeout") {
            if timeout >= .seconds(1) && timeout <= .seconds(600) {
                peer.timeout = timeout
            } else {
                reader.error(n, "\(path).timeout must be between 1s and 10m")
            }
        }
        if let n = fields[.deadLetterAfter], let after = reader.duration(n, "\(path).dead_letter_after") {
            if after >= .seconds(1) { peer.deadLetterAfter = after } else { reader.error(n, "\(path).dead_letter_after must be at least 1s") }
        }
        if let n = fields[.resync], let every = reader.duration(n, "\(path).resync") {
            if every >= .seconds(1) && every <= .seconds(7 * 86_400) {
                peer.resync = every
            } else {
                reader.error(n, "\(path).resync must be between 1s and 7d")
            }
        }
        if let n = fields[.expires] {
            peer.expires = reader.word(n, "\(path).expires") { (text) throws(ValueError) -> Date in
                // A bare date means the start of that day, UTC.
                try Timestamp.parse(text.count == 10 ? text + "T00:00:00Z" : text)
            }
        }
        return peer
    }

    static func parseSharing(_ node: Yams.Node, path: String, reader: YAMLReader) -> SharingPolicy {
        var share = SharingPolicy()
        guard let fields = reader.section(node, Config.Keys.Share.self, what: path) else { return share }
        if let n = fields[.maxTlp] {
            share.maxTLP = reader.word(n, "\(path).max_tlp") { (text) throws(ValueError) in try TLP(name: text) } ?? .amber
            if share.maxTLP == .red { reader.error(n, "\(path).max_tlp cannot be red: TLP:RED never leaves this node; the most is amber+strict") }
        }
        if let n = fields[.items], let names = reader.strings(n, "\(path).items") {
            share.items = Set(names)
            for name in names where !SharingPolicy.itemTypes.contains(name) {
                reader.error(n, "\(path).items: unknown item type '\(name.preview)'; expected indicator or rule")
            }
        }
        if let n = fields[.kinds], let names = reader.strings(n, "\(path).kinds") {
            share.kinds = KindSet(
                names.compactMap { name in
                    do { return try IndicatorKind(name: name) } catch {
                        reader.error(n, "\(path).kinds: \(error)")
                        return nil
                    }
                })
        }
        if let n = fields[.actions], let names = reader.strings(n, "\(path).actions") {
            share.actions = Set(names)
            for name in names where !PeerMessage.suggestible.contains(name) {
                reader.error(n, "\(path).actions: unknown action '\(name.preview)'; expected \(PeerMessage.suggestible.joined(separator: ", "))")
            }
        }
        if let n = fields[.regions], let names = reader.strings(n, "\(path).regions") { share.regions = Set(names) }
        if let n = fields[.redact], let names = reader.strings(n, "\(path).redact") {
            for name in names where !SharingPolicy.redactable.contains(name) {
                reader.error(n, "\(path).redact: '\(name.preview)' cannot be redacted; expected \(SharingPolicy.redactable.joined(separator: ", "))")
            }
            share.redact = Set(names)
        }
        return share
    }

    static func parseTrust(_ node: Yams.Node, path: String, reader: YAMLReader) -> TrustPolicy {
        var accept = TrustPolicy()
        guard let fields = reader.section(node, Config.Keys.Accept.self, what: path) else { return accept }
        if let n = fields[.items], let names = reader.strings(n, "\(path).items") {
            accept.items = []
            for name in names {
                if let type = TrustPolicy.ItemType(rawValue: name) {
                    accept.items.insert(type)
                } else {
                    reader.error(n, "\(path).items: unknown item type '\(name.preview)'; expected indicator, rule or revoke")
                }
            }
        }
        if let n = fields[.suggested], let names = reader.strings(n, "\(path).suggested") {
            for name in names where !PeerMessage.suggestible.contains(name) {
                reader.error(n, "\(path).suggested: unknown action '\(name.preview)'; expected \(PeerMessage.suggestible.joined(separator: ", "))")
            }
            accept.suggested = Set(names)
        }
        if let n = fields[.maxDuration] { accept.maxDuration = reader.duration(n, "\(path).max_duration") }
        if let n = fields[.minConfidence], let value = reader.int(n, "\(path).min_confidence", in: 0...100) { accept.minConfidence = value }
        if let n = fields[.rate] {
            accept.rate = reader.word(n, "\(path).rate") { (text) throws(ValueError) -> (Int, Duration) in
                let parts = text.split(separator: "/")
                let units: [String: Duration] = ["s": .seconds(1), "min": .seconds(60), "h": .seconds(3600)]
                guard parts.count == 2, let count = Int(parts[0]), count > 0, let per = units[String(parts[1])] else {
                    throw ValueError(.invalidField, "expected COUNT/s, COUNT/min or COUNT/h, such as 1000/min, found '\(text.preview)'")
                }
                return (count, per)
            }
        }
        return accept
    }
}
