import ArgumentParser
import Crypto
import Foundation

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a new API token and print it with the line to paste into api_keys (only its hash goes in the config)."
    )

    @Option(help: "The key's name, as it appears in logs, the audit log and item provenance (api:NAME).")
    var name = "soc"

    @Option(help: "Comma-separated roles: ingest, read, admin.")
    var roles = "ingest,read"

    func validate() throws {
        let known: Set<Substring> = ["ingest", "read", "admin"]
        for role in roles.split(separator: ",") where !known.contains(role) {
            throw ValidationError("unknown role '\(role)'; expected ingest, read or admin")
        }
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw ValidationError("the name may hold letters, digits, '-', '_' and '.'")
        }
    }

    func run() throws {
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let token =
            "rmp_"
            + Data(secret).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let hash = SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined()
        let roleList = roles.split(separator: ",").joined(separator: ", ")
        print(
            """
            token (shown once; give it to the client, keep it out of the config):
              \(token)
            line for api_keys in the configuration:
              - {name: \(name), roles: [\(roleList)], token_sha256: "\(hash)"}
            """)
    }
}
