import Crypto

/// The API tokens the test daemons accept, and the `api_keys` configuration that names them with
/// their SHA-256, computed here rather than pasted.
public enum TestKeys {
    /// By role: `ingest` (key `feeder`), `read` (`viewer`), `admin` (`ops`, every role).
    public static let tokens = ["ingest": "tok_ingest", "read": "tok_read", "admin": "tok_admin"]
    public static let admin = "tok_admin"

    public static func sha256(_ token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// `api_keys:` with the three keys (`admin only`: just `ops`), indented by `indent` spaces.
    public static func apiKeysYAML(adminOnly: Bool = false, indent: Int = 0) -> String {
        let pad = String(repeating: " ", count: indent)
        var lines = ["\(pad)api_keys:"]
        if !adminOnly {
            lines.append("\(pad)  - {name: feeder, roles: [ingest], token_sha256: \(sha256("tok_ingest"))}")
            lines.append("\(pad)  - {name: viewer, roles: [read], token_sha256: \(sha256("tok_read"))}")
        }
        lines.append("\(pad)  - {name: ops, roles: [ingest, read, admin], token_sha256: \(sha256(admin))}")
        return lines.joined(separator: "\n")
    }
}
