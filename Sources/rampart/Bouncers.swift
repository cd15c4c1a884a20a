import ArgumentParser
import Crypto
import Foundation
import RampartCore

struct Bouncers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Keys for CrowdSec bouncers (the bouncer API on crowdsec.listen), and who pulls with them.",
        subcommands: [Add.self, List.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new bouncer key and print it with the line to paste into bouncers (only its hash goes in the config)."
        )

        @Argument(help: "The key's name, as GET /v1/bouncers shows it.") var name: String

        func validate() throws {
            guard !name.isEmpty, name.count <= 64, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
                throw ValidationError("the name may hold 1-64 letters, digits, '-', '_' and '.'")
            }
        }

        func run() throws {
            // Hex digits only: a bouncer's configuration holds the key as a bare YAML scalar.
            var generator = SystemRandomNumberGenerator()
            let key = "rmpb" + (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
            let hash = SHA256.hash(data: Array(key.utf8)).map { String(format: "%02x", $0) }.joined()
            print(
                """
                key (shown once; it goes in the bouncer's configuration as api_key, never in Rampart's):
                  \(key)
                line for bouncers in the configuration:
                  - {name: \(name), key_sha256: "\(hash)"}
                """)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each bouncer key and its consumers (client address, user agent, last pull, decisions delivered).")

        @OptionGroup var api: APIOptions
        @Flag(help: "Print the JSON objects, one per line.") var json = false

        func run() async throws {
            let answer = try await api.client().call(.GET, "/v1/bouncers")
            guard case .array(let bouncers)? = answer["bouncers"] else { throw CLIError("unexpected answer") }
            if json {
                printJSONLines(bouncers)
                return
            }
            var rows: [[String]] = []
            for bouncer in bouncers {
                let name = bouncer["name"]?.text ?? "?"
                guard case .array(let consumers)? = bouncer["consumers"], !consumers.isEmpty else {
                    rows.append([name, "-", "-", "never", "0", "0"])
                    continue
                }
                for consumer in consumers {
                    rows.append(
                        [name] + ["address", "user_agent", "last_pull", "pulls", "decisions_delivered"].map { consumer[$0]?.text ?? "-" })
                }
            }
            printTable(header: ["NAME", "ADDRESS", "USER AGENT", "LAST PULL", "PULLS", "DELIVERED"], rows: rows)
        }
    }
}
