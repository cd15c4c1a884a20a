import Crypto
import Foundation

/// What flows through the pipeline: an indicator or a detection rule, with its provenance.
public struct Item: Sendable {
    public enum Payload: Sendable {
        case indicator(Indicator)
        case rule(Rule)
    }

    /// Globally unique (UUIDv7), kept when the item travels between nodes.
    public var id: String
    public var payload: Payload
    /// `api:KEYNAME` for items posted to the API, `peer:NAME` for items received from a peer.
    public var via: String
    /// The node that first saw the item.
    public var origin: String
    /// Nodes the item passed through before this one, origin first (empty for items seen here first).
    public var path: [String]
    /// For items received from a peer: how many more times they may be relayed.
    public var hopsLeft: Int?
    /// Actions the origin proposed (`block`, `rule`, ...).
    public var suggested: [String]
    public var receivedAt: Date
    /// The STIX object the item was read from, when it is that object's only item: the id and
    /// version it is exported under. Kept on this node (a peer gets the item under its own id).
    public var stix: STIX.Version?

    public init(
        id: String, payload: Payload, via: String, origin: String, path: [String] = [], hopsLeft: Int? = nil, suggested: [String] = [],
        receivedAt: Date
    ) {
        self.id = id
        self.payload = payload
        self.via = via
        self.origin = origin
        self.path = path
        self.hopsLeft = hopsLeft
        self.suggested = suggested
        self.receivedAt = receivedAt
    }

    public var indicator: Indicator? {
        if case .indicator(let indicator) = payload { indicator } else { nil }
    }

    public var rule: Rule? {
        if case .rule(let rule) = payload { rule } else { nil }
    }

    public var type: String {
        switch payload {
        case .indicator: "indicator"
        case .rule: "rule"
        }
    }

    /// The item's marking, whatever it carries.
    public var tlp: TLP {
        switch payload {
        case .indicator(let indicator): indicator.tlp
        case .rule(let rule): rule.tlp
        }
    }

    /// What the item is about, in a word: the indicator's value, or the rule's format and name.
    public var label: String {
        switch payload {
        case .indicator(let indicator): indicator.value
        case .rule(let rule): "\(rule.format.rawValue) rule \(rule.name)"
        }
    }

    /// The item as stored: one JSON object.
    public var json: [UInt8] { encoded(withProvenance: true) }

    /// The item as a peer receives it (after the sharing policy): without this node's provenance
    /// (`via`, `path`, `hops_left`, `received_at`), which the message carries or the peer sets.
    public var wireJSON: [UInt8] { encoded(withProvenance: false) }

    private func encoded(withProvenance: Bool) -> [UInt8] {
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.field("id", id)
        w.field("type", type)
        switch payload {
        case .indicator(let indicator):
            w.key("indicator")
            indicator.write(to: &w)
        case .rule(let rule):
            w.key("rule")
            rule.write(to: &w)
        }
        if withProvenance { w.field("via", via) }
        w.field("origin", origin)
        if withProvenance && !path.isEmpty { w.field("path", path) }
        if withProvenance, let hopsLeft { w.field("hops_left", hopsLeft) }
        if !suggested.isEmpty { w.field("suggested", suggested) }
        if withProvenance { w.field("received_at", receivedAt) }
        if withProvenance, let stix {
            w.key("stix")
            w.beginObject()
            w.field("id", stix.id)
            w.field("modified", stix.modified)
            w.endObject()
        }
        w.endObject()
        return w.bytes
    }
}

extension Indicator {
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.field("kind", kind.rawValue)
        w.field("value", value)
        w.field("confidence", confidence)
        w.field("severity", severity.rawValue)
        w.field("tlp", tlp.rawValue)
        w.field("source", source)
        if !tags.isEmpty { w.field("tags", tags) }
        if let validUntil { w.field("valid_until", validUntil) }
        w.field("description", description)
        if !references.isEmpty { w.field("references", references) }
        w.endObject()
    }
}

/// Time-ordered unique ids (UUID version 7, RFC 9562), monotonic within a process.
///
/// The 62 random bits come from a xoshiro256** generator seeded once from the system's random
/// source: ids need to be unique and hard to guess, and a system call per id would cost more
/// than storing the item.
public final class IDGenerator: @unchecked Sendable {
    public static let shared = IDGenerator()

    private let lock = NSLock()
    private var lastMilliseconds: Int64 = 0
    private var counter: UInt16 = 0
    private var seed: (UInt64, UInt64, UInt64, UInt64)
    private let now: @Sendable () -> Date

    public init(now: @escaping @Sendable () -> Date = Date.init) {
        self.now = now
        var system = SystemRandomNumberGenerator()
        seed = (system.next(), system.next(), system.next(), system.next() | 1)
    }

    private func nextRandom() -> UInt64 {
        func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
        let result = rotl(seed.1 &* 5, 7) &* 9
        let t = seed.1 << 17
        seed.2 ^= seed.0
        seed.3 ^= seed.1
        seed.1 ^= seed.2
        seed.0 ^= seed.3
        seed.2 ^= t
        seed.3 = rotl(seed.3, 45)
        return result
    }

    public func next() -> String {
        lock.lock()
        var ms = now().milliseconds
        if ms <= lastMilliseconds {
            // Same (or an earlier) millisecond: count up in the 12 bits after the version.
            ms = lastMilliseconds
            counter &+= 1
            if counter > 0x0fff {
                ms += 1
                counter = 0
            }
        } else {
            counter = UInt16(truncatingIfNeeded: nextRandom()) & 0x03ff
        }
        lastMilliseconds = ms
        let sequence = counter
        let random = nextRandom()
        lock.unlock()
        let high = UInt64(ms) << 16 | 0x7000 | UInt64(sequence)
        let low = random & 0x3fff_ffff_ffff_ffff | 0x8000_0000_0000_0000
        return Self.text(high: high, low: low)
    }

    /// An id made from `parts` (a request's `Idempotency-Key`, who sent it, the item's place in
    /// the body), the same each time: a retried request's items get the ids the first attempt
    /// gave them, so those already stored are not stored again. A UUID of version 8.
    public static func derived(_ parts: [String]) -> String {
        let digest = Array(SHA256.hash(data: Array(parts.joined(separator: "\u{0}").utf8)))
        let word = { (offset: Int) in digest[offset..<offset + 8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        return text(high: word(0) & 0xffff_ffff_ffff_0fff | 0x8000, low: word(8) & 0x3fff_ffff_ffff_ffff | 0x8000_0000_0000_0000)
    }

    /// An id made from `parts`, the same each time, that orders by `at` and then `sequence` (a
    /// feed's values: by the pull's period and the line): stored items' ids stay in time order,
    /// so a bulk of them is written at the end of the index rather than all over it. A UUID of
    /// version 8: 48 bits of milliseconds, 22 of sequence, 52 of the parts' digest.
    public static func ordered(at: Date, sequence: Int, _ parts: [String]) -> String {
        let digest = Array(SHA256.hash(data: Array(parts.joined(separator: "\u{0}").utf8)))
        let word = digest[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let sequence = UInt64(truncatingIfNeeded: sequence) & 0x3f_ffff
        let high = UInt64(bitPattern: at.milliseconds) << 16 | 0x8000 | sequence >> 10
        let low = 0x8000_0000_0000_0000 | (sequence & 0x3ff) << 52 | word & 0x000f_ffff_ffff_ffff
        return text(high: high, low: low)
    }

    private static func text(high: UInt64, low: UInt64) -> String {
        String(unsafeUninitializedCapacity: 36) { buffer in
            let digits: StaticString = "0123456789abcdef"
            var n = 0
            for digit in 0..<32 {
                if digit == 8 || digit == 12 || digit == 16 || digit == 20 {
                    buffer[n] = UInt8(ascii: "-")
                    n += 1
                }
                let word = digit < 16 ? high : low
                buffer[n] = digits.utf8Start[Int(word >> UInt64(60 - 4 * (digit % 16)) & 0xf)]
                n += 1
            }
            return n
        }
    }
}
