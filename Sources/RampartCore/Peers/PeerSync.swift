import Crypto
import Foundation

/// Anti-entropy between two peers: what a node queued for a peer, and what that peer recorded
/// as received from it, compared cheaply and repaired.
///
/// The sender's set is the ids of the entries (items and revocations) it queued for the peer,
/// less items it has since withdrawn and entries the sharing policy withheld or the peer refused;
/// the receiver's, the ids of the entries it took from the sender, less items it has since
/// withdrawn. Both are split into 256 buckets by the last two hex digits of the id (random in
/// every id form), and a bucket's digest is the XOR of the first 8 bytes of each id's SHA-256,
/// so that it does not depend on order.
///
/// A sync is two kinds of signed request to the peer's `/v1/peer/events`, each of type
/// `rampart.sync.v1`:
/// - `{"node", "digests": [256 × 16 hex digits], "reciprocate": BOOL}`, answered
///   `{"differing": [bucket, ...]}`; `reciprocate` (the sender has just started, or its link to
///   the receiver is back) asks the receiver to sync towards the sender too, at once;
/// - `{"node", "buckets": [bucket, ...], "entries": [id, ...]}`: every id of those buckets,
///   answered `{"missing": [id, ...]}`, the ids the receiver neither recorded from the sender nor
///   holds. What the receiver recorded in those buckets and the sender no longer lists (a sender
///   restored from a backup) it forgets, so that the digests agree again.
/// The sender then queues the missing entries again, and they go as any other: the sharing
/// policy is checked when they are sent, the receiver's trust policy when they arrive, and
/// receivers deduplicate by id.
public enum PeerSync {
    public static let type = "rampart.sync.v1"
    public static let buckets = 256
    /// Ids in one `entries` request: whole buckets up to this many (a bucket larger goes alone).
    public static let maxEntries = 10_000

    /// The bucket of an id: its last two hex digits.
    public static func bucket(of id: String) -> Int {
        var value = 0
        for byte in id.utf8.suffix(2) {
            let digit: Int =
                switch byte {
                case 0x30...0x39: Int(byte - 0x30)
                case 0x61...0x66: Int(byte - 0x61 + 10)
                case 0x41...0x46: Int(byte - 0x41 + 10)
                default: 0
                }
            value = value * 16 + digit
        }
        return value
    }

    /// One digest per bucket.
    public static func digests(_ ids: some Sequence<String>) -> [UInt64] {
        var digests = [UInt64](repeating: 0, count: buckets)
        for id in ids {
            let hash = SHA256.hash(data: Array(id.utf8))
            let first = hash.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            digests[bucket(of: id)] ^= first
        }
        return digests
    }

    /// What one request asks.
    public enum Request: Sendable, Equatable {
        case digests([UInt64], reciprocate: Bool)
        case entries(buckets: [Int], ids: [String])
    }

    /// A request's body: `{"type", "timestamp", "data": {"node", ...}}`.
    public static func encode(_ request: Request, node: String, at now: Date) -> [UInt8] {
        var w = JSONWriter(capacity: 5_000)
        w.beginObject()
        w.field("type", type)
        w.field("timestamp", now)
        w.key("data")
        w.beginObject()
        w.field("node", node)
        switch request {
        case .digests(let digests, let reciprocate):
            w.field("digests", digests.map(hex))
            w.field("reciprocate", reciprocate)
        case .entries(let buckets, let ids):
            w.key("buckets")
            w.beginArray()
            for bucket in buckets { w.value(bucket) }
            w.endArray()
            w.field("entries", ids)
        }
        w.endObject()
        w.endObject()
        return w.bytes
    }

    /// Reads a request a peer sent (`json`, its parsed body, of type `rampart.sync.v1`); `node`
    /// must be the sender's node id.
    public static func decode(_ json: JSONValue, node: String) throws(ValueError) -> Request {
        guard let data = json["data"], case .object = data else { throw ValueError(.missingField, "missing object 'data'") }
        guard case .string(node)? = data["node"] else { throw ValueError(.invalidField, "'data.node' must be the sender's node id, \(node)") }
        if case .array(let list)? = data["digests"] {
            guard list.count == buckets else { throw ValueError(.invalidField, "'data.digests' must hold \(buckets) digests") }
            var reciprocate = false
            switch data["reciprocate"] {
            case nil: break
            case .bool(let flag)?: reciprocate = flag
            default: throw ValueError(.invalidField, "'data.reciprocate' must be true or false")
            }
            return .digests(
                try list.map { (value) throws(ValueError) -> UInt64 in
                    guard case .string(let text) = value, text.utf8.count == 16, let digest = UInt64(text, radix: 16) else {
                        throw ValueError(.invalidField, "each digest is 16 hex digits")
                    }
                    return digest
                }, reciprocate: reciprocate)
        }
        guard case .array(let bucketValues)? = data["buckets"], case .array(let idValues)? = data["entries"] else {
            throw ValueError(.missingField, "'data' needs 'digests', or 'buckets' and 'entries'")
        }
        let listed = try bucketValues.map { (value) throws(ValueError) -> Int in
            guard case .number(let number) = value, number == number.rounded(), (0..<Double(buckets)).contains(number) else {
                throw ValueError(.invalidField, "'data.buckets' holds bucket numbers from 0 to \(buckets - 1)")
            }
            return Int(number)
        }
        guard Set(listed).count == listed.count else { throw ValueError(.invalidField, "'data.buckets' lists a bucket twice") }
        let allowed = Set(listed)
        let ids = try idValues.map { (value) throws(ValueError) -> String in
            guard case .string(let id) = value, PeerMessage.isItemID(id) else { throw ValueError(.invalidField, "'data.entries' holds ids (UUIDs)") }
            guard allowed.contains(bucket(of: id)) else { throw ValueError(.invalidField, "entry \(id) is not in a listed bucket") }
            return id
        }
        return .entries(buckets: listed, ids: ids)
    }

    /// The receiver's answer to a request: the buckets whose digests differ, or the missing ids.
    public static func answer(differing: [Int]? = nil, missing: [String]? = nil) -> JSONWriter {
        var w = JSONWriter(capacity: 64 + 39 * (missing?.count ?? 0) + 4 * (differing?.count ?? 0))
        w.beginObject()
        if let differing {
            w.key("differing")
            w.beginArray()
            for bucket in differing { w.value(bucket) }
            w.endArray()
        }
        if let missing { w.field("missing", missing) }
        w.endObject()
        return w
    }

    /// The buckets whose digests differ between two lists of digests.
    public static func differing(_ mine: [UInt64], _ theirs: [UInt64]) -> [Int] {
        (0..<buckets).filter { mine[$0] != theirs[$0] }
    }

    /// Pages of whole buckets (those in `differing`) of `ids`, each at most `maxEntries` ids
    /// unless one bucket alone holds more.
    public static func pages(_ ids: [String], differing: [Int], maxEntries: Int = maxEntries) -> [(buckets: [Int], ids: [String])] {
        let wanted = Set(differing)
        var byBucket: [Int: [String]] = [:]
        for id in ids {
            let bucket = bucket(of: id)
            if wanted.contains(bucket) { byBucket[bucket, default: []].append(id) }
        }
        var pages: [(buckets: [Int], ids: [String])] = []
        var current: (buckets: [Int], ids: [String]) = ([], [])
        for bucket in differing.sorted() {
            let members = byBucket[bucket] ?? []
            if !current.buckets.isEmpty && current.ids.count + members.count > maxEntries {
                pages.append(current)
                current = ([], [])
            }
            current.buckets.append(bucket)
            current.ids += members
        }
        if !current.buckets.isEmpty { pages.append(current) }
        return pages
    }

    static func hex(_ digest: UInt64) -> String {
        let text = String(digest, radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }
}
