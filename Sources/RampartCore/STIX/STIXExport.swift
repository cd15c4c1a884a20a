import Crypto
import Foundation

/// Items and decisions written as STIX 2.1 indicators, valid under `stix2_validator --strict`:
/// every object with `spec_version`, millisecond `created`/`modified`, a name and a description,
/// one TLP 2.0 marking, this node's identity as creator, and no empty list.
extension STIX {
    /// TLP 2.0 marking-definition ids by level (TLP:RED is never exported).
    public static let markingIDs: [TLP: String] = [
        .clear: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        .green: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        .amber: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        .amberStrict: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        .red: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
    ]
    static let tlp2Extension = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"

    public static let mediaType = "application/stix+json;version=2.1"

    /// The id an item is served under: its STIX object's, when it is that object's only item;
    /// else its own id made a version 4 UUID (the validator wants those), which `itemIDs` reverses.
    public static func objectID(of item: Item) -> String {
        item.stix?.id ?? objectID(ofItem: item.id)
    }

    public static func objectID(ofItem id: String) -> String {
        var chars = Array(id.utf8)
        if chars.count == 36 { chars[14] = UInt8(ascii: "4") }
        return "indicator--" + String(decoding: chars, as: UTF8.self)
    }

    /// The item ids an object id made by `objectID(ofItem:)` may stand for (items' ids are UUIDs
    /// of version 7, or 8 when derived from an Idempotency-Key).
    public static func itemIDs(ofObject id: String) -> [String] {
        guard id.hasPrefix("indicator--"), id.utf8.count == 47 else { return [] }
        var chars = Array(id.utf8.dropFirst(11))
        return [UInt8(ascii: "7"), UInt8(ascii: "8")].map { version in
            chars[14] = version
            return String(decoding: chars, as: UTF8.self)
        }
    }

    /// The version an item is served as: its STIX object's `modified`, else when it was received.
    public static func version(of item: Item) -> Date {
        item.stix?.date ?? item.receivedAt
    }

    /// A version 4 UUID made from `seed`, the same each time.
    static func uuid4(_ seed: String) -> String {
        var bytes = Array(SHA256.hash(data: Array(seed.utf8)).prefix(16))
        bytes[6] = bytes[6] & 0x0f | 0x40
        bytes[8] = bytes[8] & 0x3f | 0x80
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let h = Array(hex)
        return String(h[0..<8]) + "-" + String(h[8..<12]) + "-" + String(h[12..<16]) + "-" + String(h[16..<20]) + "-" + String(h[20..<32])
    }

    /// This node's identity object's id.
    public static func identityID(nodeID: String) -> String {
        "identity--" + uuid4("rampart-node:" + nodeID)
    }

    public static func writeIdentity(nodeID: String, to w: inout JSONWriter) {
        w.beginObject()
        w.field("type", "identity")
        w.field("spec_version", "2.1")
        w.field("id", identityID(nodeID: nodeID))
        w.field("created", "2020-01-01T00:00:00.000Z")
        w.field("modified", "2020-01-01T00:00:00.000Z")
        w.field("name", nodeID)
        w.field("description", "A Rampart node")
        w.field("identity_class", "organization")
        w.endObject()
    }

    /// The TLP 2.0 marking-definition object of a level.
    public static func writeMarking(_ tlp: TLP, to w: inout JSONWriter) {
        w.beginObject()
        w.field("type", "marking-definition")
        w.field("spec_version", "2.1")
        w.field("id", markingIDs[tlp] ?? "")
        w.field("created", "2022-10-01T00:00:00.000Z")
        w.field("name", "TLP:" + tlp.rawValue.uppercased())
        w.key("extensions")
        w.beginObject()
        w.key(tlp2Extension)
        w.beginObject()
        w.field("extension_type", "property-extension")
        w.field("tlp_2_0", tlp.rawValue)
        w.endObject()
        w.endObject()
        w.endObject()
    }

    /// A STIX pattern naming one value of a kind.
    public static func pattern(_ kind: IndicatorKind, _ value: String) -> String {
        let quoted = "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
        let path: String
        switch kind {
        case .ipv4: path = "ipv4-addr:value"
        case .ipv6: path = "ipv6-addr:value"
        case .cidr: path = value.contains(":") ? "ipv6-addr:value" : "ipv4-addr:value"
        case .domain: path = "domain-name:value"
        case .url: path = "url:value"
        case .email: path = "email-addr:value"
        case .md5: path = "file:hashes.MD5"
        case .sha1: path = "file:hashes.'SHA-1'"
        case .sha256: path = "file:hashes.'SHA-256'"
        }
        return "[\(path) = \(quoted)]"
    }

    /// Timestamps as the validator wants `created` and `modified`: with milliseconds. A STIX
    /// object's own text is kept when it has them.
    static func millisecondText(_ version: Version?, _ date: Date) -> String {
        if let version, let dot = version.modified.lastIndex(of: "."), version.modified.distance(from: dot, to: version.modified.endIndex) >= 5 {
            return version.modified
        }
        return Timestamp.format(date)
    }

    /// An item (after a sharing policy) as a STIX indicator; `revokedAt`: its revoked version.
    public static func write(_ item: Item, revokedAt: Date? = nil, nodeID: String, to w: inout JSONWriter) {
        let created = version(of: item)
        let createdText = millisecondText(item.stix, created)
        w.beginObject()
        w.field("type", "indicator")
        w.field("spec_version", "2.1")
        w.field("id", objectID(of: item))
        w.field("created", createdText)
        w.field("modified", revokedAt.map { Timestamp.format(max($0, created.addingTimeInterval(0.001))) } ?? createdText)
        w.field("created_by_ref", identityID(nodeID: nodeID))
        var tags: [String] = []
        var confidence = 50
        var description: String?
        switch item.payload {
        case .indicator(let indicator):
            w.field("name", "\(indicator.kind.rawValue) \(indicator.value)")
            description = indicator.description
            w.field("pattern", pattern(indicator.kind, indicator.value))
            w.field("pattern_type", "stix")
            w.field("pattern_version", "2.1")
            w.field("valid_from", Timestamp.format(created))
            if let until = indicator.validUntil, until > created { w.field("valid_until", Timestamp.format(until)) }
            tags = indicator.tags
            confidence = indicator.confidence
            if let source = indicator.source { description = (description.map { $0 + "\n" } ?? "") + "Source: \(source)" }
        case .rule(let rule):
            w.field("name", rule.title.isEmpty ? rule.name : rule.title)
            w.field("pattern", rule.content)
            w.field("pattern_type", rule.format.rawValue)
            w.field("valid_from", Timestamp.format(created))
            tags = rule.tags
            confidence = rule.confidence
        }
        w.field("description", description ?? "Reported to Rampart node \(nodeID) via \(item.via), first seen at \(item.origin)")
        if !tags.isEmpty { w.field("labels", tags) }
        w.field("confidence", confidence)
        if revokedAt != nil { w.field("revoked", true) }
        w.field("object_marking_refs", [markingIDs[item.tlp] ?? markingIDs[.red]!])
        w.key("external_references")
        w.beginArray()
        w.beginObject()
        w.field("source_name", "rampart")
        w.field("external_id", item.id)
        w.field("description", "item \(item.id) via \(item.via), origin \(item.origin)")
        w.endObject()
        if case .indicator(let indicator) = item.payload {
            for reference in indicator.references {
                w.beginObject()
                w.field("source_name", "reference")
                if reference.hasPrefix("http://") || reference.hasPrefix("https://") {
                    w.field("url", reference)
                } else {
                    w.field("description", reference)
                }
                w.endObject()
            }
        }
        w.endArray()
        w.endObject()
    }

    /// A decision in force as a STIX indicator: what partners without Rampart can enforce.
    public static func write(decision: Decision, tlp: TLP, nodeID: String, to w: inout JSONWriter) {
        let created = Timestamp.format(decision.createdAt)
        w.beginObject()
        w.field("type", "indicator")
        w.field("spec_version", "2.1")
        w.field("id", "indicator--" + uuid4("rampart-decision:" + decision.id))
        w.field("created", created)
        w.field("modified", created)
        w.field("created_by_ref", identityID(nodeID: nodeID))
        w.field("name", "Rampart block of \(decision.value)")
        w.field(
            "description", "Blocked (\(decision.direction.rawValue)) by \(decision.playbook.map { "playbook \($0)" } ?? "hand"): \(decision.reason)")
        w.field("indicator_types", ["malicious-activity"])
        w.field("pattern", pattern(decision.target.isHost ? (decision.value.contains(":") ? .ipv6 : .ipv4) : .cidr, decision.value))
        w.field("pattern_type", "stix")
        w.field("pattern_version", "2.1")
        w.field("valid_from", created)
        w.field("valid_until", Timestamp.format(decision.expiresAt))
        w.field("object_marking_refs", [markingIDs[tlp] ?? markingIDs[.red]!])
        w.key("external_references")
        w.beginArray()
        w.beginObject()
        w.field("source_name", "rampart")
        w.field("external_id", decision.id)
        w.field("description", "decision \(decision.id), origin \(decision.origin)\(decision.item.map { ", item \($0)" } ?? "")")
        w.endObject()
        w.endArray()
        w.endObject()
    }
}
