import Foundation

/// The body of a request between peers:
/// `{"type":"rampart.items.v1","timestamp":"…","data":{"origin","path","hops_left","items":[…]}}`.
///
/// `path` lists the nodes the items went through, their origin first and the sender last;
/// `origin` is `path[0]`. `hops_left` is how many more times a receiver may relay them. Entries
/// of `items` are indicator or rule items, or revocations of an item sent earlier.
public struct PeerMessage: Sendable {
    public static let type = "rampart.items.v1"
    /// Actions an origin may suggest to its peers.
    public static let suggestible = ["block", "rule"]
    /// How many nodes an item may reach beyond its origin, unless a propagate action says otherwise.
    public static let defaultHops = 4

    public var path: [String]
    public var hopsLeft: Int
    public var entries: [Result<Entry, ValueError>]

    public var origin: String { path[0] }
    public var sender: String { path[path.count - 1] }

    public enum Entry: Sendable {
        case item(Item)
        case revocation(Revocation)

        public var id: String {
            switch self {
            case .item(let item): item.id
            case .revocation(let revocation): revocation.id
            }
        }
    }

    /// Withdraws an item sent earlier: the receiver revokes the decisions that item caused. It
    /// names the item by id only, so that it tells a peer nothing the item did not (the item may
    /// have been withheld from that peer after the revocation was queued).
    public struct Revocation: Sendable, Equatable {
        public var id: String
        /// The item withdrawn.
        public var item: String
        public var reason: String

        public init(id: String, item: String, reason: String) {
            self.id = id
            self.item = item
            self.reason = reason
        }

        /// A revocation's reason as every node accepts it: at most 1,024 bytes, no control
        /// characters. Checked where a reason enters (the API) as well as where a peer receives
        /// it, so that no node forwards a revocation its peers would refuse.
        public static func checkedReason(_ text: String) throws(ValueError) -> String {
            try Indicator.checkedText(text, field: "reason", max: 1024)
        }

        public var json: [UInt8] {
            var w = JSONWriter(capacity: 160)
            w.beginObject()
            w.field("id", id)
            w.field("type", "revoke")
            w.field("item", item)
            w.field("reason", reason)
            w.endObject()
            return w.bytes
        }
    }

    /// A request body holding entries already encoded (`Item.wireJSON`, `Revocation.json`).
    public static func encode(path: [String], hopsLeft: Int, entries: [[UInt8]], at now: Date) -> [UInt8] {
        var w = JSONWriter(capacity: 128 + entries.reduce(0) { $0 + $1.count + 1 })
        w.beginObject()
        w.field("type", type)
        w.field("timestamp", now)
        w.key("data")
        w.beginObject()
        w.field("origin", path[0])
        w.field("path", path)
        w.field("hops_left", hopsLeft)
        w.key("items")
        w.beginArray()
        for entry in entries { w.raw(entry) }
        w.endArray()
        w.endObject()
        w.endObject()
        return w.bytes
    }

    /// Reads a request body. Throws when the body as a whole is unusable; an entry that is not
    /// valid is reported in `entries` without stopping the others. Received items get `via`,
    /// `path` and `hops_left` from the envelope.
    public static func decode(
        _ body: [UInt8], via: String, maxItems: Int, maxRuleBytes: Int = Rule.defaultMaxBytes, now: Date
    ) throws(ValueError) -> PeerMessage {
        try decode(json: JSONValue.parse(body, maxDepth: 16), via: via, maxItems: maxItems, maxRuleBytes: maxRuleBytes, now: now)
    }

    /// Reads a request body already parsed.
    public static func decode(
        json: JSONValue, via: String, maxItems: Int, maxRuleBytes: Int = Rule.defaultMaxBytes, now: Date
    ) throws(ValueError) -> PeerMessage {
        guard case .string(let type)? = json["type"], type == PeerMessage.type else {
            throw ValueError(.invalidField, "'type' must be \"\(PeerMessage.type)\" or \"\(PeerSync.type)\"")
        }
        guard let data = json["data"], case .object = data else { throw ValueError(.missingField, "missing object 'data'") }
        guard case .array(let pathValues)? = data["path"], !pathValues.isEmpty, pathValues.count <= 32 else {
            throw ValueError(.invalidField, "'data.path' must list 1 to 32 node ids, the origin first and the sender last")
        }
        let path = try pathValues.map { (value) throws(ValueError) -> String in
            guard case .string(let id) = value, Config.isName(id) else { throw ValueError(.invalidField, "'data.path' holds an invalid node id") }
            return id
        }
        guard case .string(let origin)? = data["origin"], origin == path[0] else {
            throw ValueError(.invalidField, "'data.origin' must be the first node of 'data.path'")
        }
        guard case .number(let hops)? = data["hops_left"], hops == hops.rounded(), (0...32).contains(hops) else {
            throw ValueError(.invalidField, "'data.hops_left' must be a whole number from 0 to 32")
        }
        guard case .array(let items)? = data["items"] else { throw ValueError(.missingField, "missing array 'data.items'") }
        guard items.count <= maxItems else { throw ValueError(.tooLong, "\(items.count) items in one request; at most \(maxItems)") }
        let entries = items.map { (value) -> Result<Entry, ValueError> in
            Result { () throws(ValueError) -> Entry in
                try entry(value, origin: origin, via: via, path: path, hopsLeft: Int(hops), maxRuleBytes: maxRuleBytes, now: now)
            }
        }
        return PeerMessage(path: path, hopsLeft: Int(hops), entries: entries)
    }

    static func entry(
        _ json: JSONValue, origin: String, via: String, path: [String], hopsLeft: Int, maxRuleBytes: Int, now: Date
    ) throws(ValueError) -> Entry {
        guard case .object(let members) = json else { throw ValueError(.invalidField, "an item must be an object") }
        guard case .string(let id)? = json["id"], isItemID(id) else { throw ValueError(.invalidField, "'id' must be a UUID") }
        switch json["type"] {
        case .string(let type)? where type == "indicator" || type == "rule":
            var payload: Item.Payload?
            var suggested: [String] = []
            for (name, value) in members {
                switch name {
                case "id", "type": continue
                case type:
                    payload =
                        type == "rule"
                        ? .rule(try Rule(json: value, maxBytes: maxRuleBytes))
                        : .indicator(try Indicator(json: value, defaults: IndicatorDefaults(), now: now))
                case "origin":
                    guard case .string(origin) = value else { throw ValueError(.invalidField, "'origin' must be the message's origin, \(origin)") }
                case "suggested":
                    guard case .array(let list) = value, list.count <= 8 else {
                        throw ValueError(.invalidField, "'suggested' must be a short array of actions")
                    }
                    suggested = list.compactMap { if case .string(let s) = $0, suggestible.contains(s) { s } else { nil } }
                default:
                    throw ValueError(.unknownField, "unknown field '\(name.preview)' in \(type == "rule" ? "a rule" : "an indicator") item")
                }
            }
            guard let payload else { throw ValueError(.missingField, "missing object '\(type)'") }
            return .item(
                Item(id: id, payload: payload, via: via, origin: origin, path: path, hopsLeft: hopsLeft, suggested: suggested, receivedAt: now))
        case .string("revoke")?:
            guard case .string(let item)? = json["item"], isItemID(item) else {
                throw ValueError(.invalidField, "'item' must be the revoked item's id")
            }
            var reason = "revoked at \(origin)"
            if case .string(let text)? = json["reason"] { reason = try Revocation.checkedReason(text) }
            for (name, _) in members where !["id", "type", "item", "reason"].contains(name) {
                throw ValueError(.unknownField, "unknown field '\(name.preview)' in a revocation")
            }
            return .revocation(Revocation(id: id, item: item, reason: reason))
        default:
            throw ValueError(.invalidField, "'type' must be indicator, rule or revoke")
        }
    }

    /// Item ids are UUIDs in their 36-character text form.
    public static func isItemID(_ text: String) -> Bool {
        text.utf8.count == 36
            && text.utf8.enumerated().allSatisfy { index, byte in
                [8, 13, 18, 23].contains(index) ? byte == 0x2d : (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x66)
            }
    }
}

extension Item {
    /// Reads an item back from its stored JSON (`json`). An indicator whose validity has ended
    /// by `now` is refused.
    public init(stored json: JSONValue, now: Date) throws(ValueError) {
        func text(_ key: String) throws(ValueError) -> String {
            guard case .string(let value)? = json[key] else { throw ValueError(.missingField, "stored item without '\(key)'") }
            return value
        }
        func texts(_ key: String) -> [String] {
            guard case .array(let list)? = json[key] else { return [] }
            return list.compactMap { if case .string(let s) = $0 { s } else { nil } }
        }
        let payload: Payload
        if let ruleJSON = json["rule"] {
            // Checked when it was first accepted; the limit then may have been larger than now.
            payload = .rule(try Rule(json: ruleJSON, maxBytes: .max))
        } else if let indicatorJSON = json["indicator"] {
            payload = .indicator(try Indicator(json: indicatorJSON, defaults: IndicatorDefaults(), now: now))
        } else {
            throw ValueError(.missingField, "stored item without 'indicator' or 'rule'")
        }
        var hopsLeft: Int?
        if case .number(let hops)? = json["hops_left"] { hopsLeft = Int(hops) }
        self.init(
            id: try text("id"), payload: payload,
            via: try text("via"), origin: try text("origin"), path: texts("path"), hopsLeft: hopsLeft, suggested: texts("suggested"),
            receivedAt: try Timestamp.parse(try text("received_at"))
        )
        if case .string(let id)? = json["stix"]?["id"], case .string(let modified)? = json["stix"]?["modified"],
            let date = try? Timestamp.parse(modified)
        {
            stix = STIX.Version(id: id, modified: modified, date: date)
        }
    }
}
