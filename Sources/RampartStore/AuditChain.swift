import Crypto
import Foundation
import RampartCore

/// One entry of the append-only, hash-chained decision log.
public struct AuditEntry: Sendable, Hashable {
    public var seq: Int64
    /// Milliseconds since the Unix epoch.
    public var at: Int64
    /// What happened: `item.accepted`, `item.refused`, `decision.created`, `decision.revoked`, ...
    public var event: String
    /// What it happened to: an item id, a decision id, a value.
    public var subject: String
    /// A JSON object with the details (an item's entry: the item).
    public var detail: String
    /// An item's entry: what the item caused, as a JSON array of events (`playbook.matched`,
    /// `decision.created`, `action.propagate`, ...), each an object with its `event`. Nil for
    /// entries of their own.
    public var caused: String?
    /// SHA-256 over the previous entry's hash and this entry's fields.
    public var hash: [UInt8]

    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.key("seq")
        w.value(seq)
        w.field("at", Timestamp.format(milliseconds: at))
        w.field("event", event)
        w.field("subject", subject)
        w.key("detail")
        w.raw(detail.utf8)
        if let caused {
            w.key("caused")
            w.raw(caused.utf8)
        }
        w.field("hash", hash.hexString)
        w.endObject()
    }
}

enum AuditChain {
    /// The hash before the first entry.
    static let genesis = [UInt8](repeating: 0, count: 32)

    /// The digest of an entry's detail; an entry's hash covers this digest rather than the detail
    /// itself, so that the digest of a large detail can be computed off the writer thread.
    static func digest(_ detail: [UInt8]) -> [UInt8] {
        SHA256.hash(data: detail).withUnsafeBytes { Array($0) }
    }

    /// SHA-256 over the previous hash, `seq`, `at`, `event`, `subject` (each followed by a newline),
    /// the detail's digest and, for an entry that has one, the digest of what it caused.
    static func hash(
        previous: [UInt8], seq: Int64, at: Int64, event: String, subject: String, detailDigest: [UInt8], causedDigest: [UInt8]? = nil
    ) -> [UInt8] {
        var input = previous
        input.reserveCapacity(previous.count + 128 + subject.utf8.count)
        input.append(contentsOf: String(seq).utf8)
        input.append(0x0a)
        input.append(contentsOf: String(at).utf8)
        input.append(0x0a)
        input.append(contentsOf: event.utf8)
        input.append(0x0a)
        input.append(contentsOf: subject.utf8)
        input.append(0x0a)
        input.append(contentsOf: detailDigest)
        if let causedDigest { input.append(contentsOf: causedDigest) }
        return SHA256.hash(data: input).withUnsafeBytes { Array($0) }
    }
}

/// The outcome of walking the chain.
public struct AuditVerification: Sendable, Hashable {
    public var entries: Int64
    /// The first entry whose hash or sequence number does not follow from the one before it.
    public var firstBroken: Int64?
    public var problem: String?
    public var isIntact: Bool { firstBroken == nil }
}

extension Array where Element == UInt8 {
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
