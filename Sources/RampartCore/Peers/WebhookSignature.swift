import Crypto
import Foundation

/// Standard Webhooks signatures between nodes: `v1a` (Ed25519, one key pair per node) and `v1`
/// (HMAC-SHA256 with a secret two peers share), over `"{webhook-id}.{webhook-timestamp}.{body}"`.
/// A `webhook-signature` header holds one or more space-separated `version,base64` entries, so
/// that keys can rotate; verification accepts any one valid entry.
public enum WebhookSignature {
    /// How far `webhook-timestamp` may be from the receiver's clock.
    public static let tolerance: TimeInterval = 300

    /// A node's private key: `whsk_` and the base64 of the 32-byte Ed25519 seed.
    public struct SigningKey: Sendable {
        let key: Curve25519.Signing.PrivateKey

        public init() { key = Curve25519.Signing.PrivateKey() }

        public init(text: String) throws(KeyError) {
            guard text.hasPrefix("whsk_"), let seed = Data(base64Encoded: String(text.dropFirst(5))), seed.count == 32,
                let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed)
            else { throw KeyError("a signing key is whsk_ followed by the base64 of 32 bytes (rampart keygen makes one)") }
            self.key = key
        }

        public var text: String { "whsk_" + key.rawRepresentation.base64EncodedString() }
        public var publicKey: PublicKey { PublicKey(key: key.publicKey) }
    }

    /// A node's public key: `whpk_` and the base64 of the 32-byte Ed25519 public key.
    public struct PublicKey: Sendable {
        let key: Curve25519.Signing.PublicKey

        init(key: Curve25519.Signing.PublicKey) { self.key = key }

        public init(text: String) throws(KeyError) {
            guard text.hasPrefix("whpk_"), let raw = Data(base64Encoded: String(text.dropFirst(5))), raw.count == 32,
                let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
            else { throw KeyError("a public key is whpk_ followed by the base64 of 32 bytes") }
            self.key = key
        }

        public var text: String { "whpk_" + key.rawRepresentation.base64EncodedString() }
    }

    /// A shared HMAC secret: `whsec_` and base64 (at least 24 bytes).
    public struct Secret: Sendable {
        let key: SymmetricKey

        public init(text: String) throws(KeyError) {
            guard text.hasPrefix("whsec_"), let raw = Data(base64Encoded: String(text.dropFirst(6))), raw.count >= 24 else {
                throw KeyError("a shared secret is whsec_ followed by the base64 of at least 24 bytes")
            }
            key = SymmetricKey(data: raw)
        }
    }

    public struct KeyError: Error, CustomStringConvertible, Sendable {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// Why a request's signature was not accepted.
    public enum Failure: Error, Equatable, Sendable {
        case missingHeaders
        case badTimestamp
        case outsideTolerance
        case noValidSignature
        /// More signature entries than `maxEntries`: refused before any is checked.
        case tooManySignatures
    }

    /// The most entries a `webhook-signature` may hold (a sender rotating its key sends two or
    /// three): each one checked costs a pass over the body per key, for anybody who can send.
    public static let maxEntries = 4

    static func content(id: String, timestamp: Int, body: [UInt8]) -> [UInt8] {
        Array("\(id).\(timestamp).".utf8) + body
    }

    /// The `webhook-signature` value for a request: `v1a` with the node's key, and `v1` too when
    /// the peer shares a secret.
    public static func sign(id: String, timestamp: Int, body: [UInt8], key: SigningKey?, secret: Secret? = nil) throws -> String {
        let signed = content(id: id, timestamp: timestamp, body: body)
        var entries: [String] = []
        if let key { entries.append("v1a," + (try key.key.signature(for: signed)).base64EncodedString()) }
        if let secret { entries.append("v1," + Data(HMAC<SHA256>.authenticationCode(for: signed, using: secret.key)).base64EncodedString()) }
        return entries.joined(separator: " ")
    }

    /// What can be checked before the body is read: the headers are there, the timestamp is
    /// within `tolerance` of `now`, the signature holds at most `maxEntries` entries.
    @discardableResult
    public static func checkHeaders(
        id: String?, timestamp: String?, signature: String?, now: Date
    ) throws(Failure) -> (seconds: Int, entries: [Substring]) {
        guard let id, !id.isEmpty, let timestamp, let signature else { throw .missingHeaders }
        guard let seconds = Int(timestamp), timestamp.allSatisfy(\.isASCII) else { throw .badTimestamp }
        guard abs(now.timeIntervalSince1970 - Double(seconds)) <= tolerance else { throw .outsideTolerance }
        let entries = signature.split(separator: " ")
        guard entries.count <= maxEntries else { throw .tooManySignatures }
        return (seconds, entries)
    }

    /// Accepts a request when its timestamp is within `tolerance` of `now` and one of the signature
    /// entries is valid for one of `publicKeys` (v1a) or `secrets` (v1); HMACs are compared in
    /// constant time. Entries of other versions are skipped.
    public static func verify(
        id: String?, timestamp: String?, signature: String?, body: [UInt8], now: Date, publicKeys: [PublicKey], secrets: [Secret]
    ) throws(Failure) {
        let (seconds, entries) = try checkHeaders(id: id, timestamp: timestamp, signature: signature, now: now)
        guard let id else { throw .missingHeaders }
        let signed = content(id: id, timestamp: seconds, body: body)
        // Each secret's code is computed once, whatever the number of v1 entries, and compared in
        // constant time; entries of the wrong length are never checked.
        var codes: [HashedAuthenticationCode<SHA256>]?
        for entry in entries {
            let parts = entry.split(separator: ",", maxSplits: 1)
            guard parts.count == 2, let raw = Data(base64Encoded: String(parts[1])) else { continue }
            switch parts[0] {
            case "v1a" where raw.count == 64:
                if publicKeys.contains(where: { $0.key.isValidSignature(raw, for: signed) }) { return }
            case "v1" where raw.count == SHA256.byteCount:
                if codes == nil { codes = secrets.map { HMAC<SHA256>.authenticationCode(for: signed, using: $0.key) } }
                if codes!.contains(where: { $0 == raw }) { return }
            default:
                continue
            }
        }
        throw .noValidSignature
    }
}
