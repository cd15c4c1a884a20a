import ArgumentParser
import Foundation
import RampartCore

struct Rules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Detection rules of a running daemon: the installed ones, posting one, withdrawing one.",
        subcommands: [List.self, Add.self, Delete.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The installed rules: format, name, rule id, version, origin, file.")

        @OptionGroup var api: APIOptions
        @Flag(help: "Print the JSON objects, one per line.") var json = false

        func run() async throws {
            let answer = try await api.client().call(.GET, "/v1/rules")
            guard case .array(let rules)? = answer["rules"] else { throw CLIError("unexpected answer") }
            if json {
                printJSONLines(rules)
                return
            }
            let columns = ["format", "name", "rule_id", "version", "origin", "via", "playbook", "path", "item"]
            printTable(
                header: ["FORMAT", "NAME", "RULE ID", "VERSION", "ORIGIN", "VIA", "PLAYBOOK", "FILE", "ITEM"],
                rows: rules.map { rule in columns.map { rule[$0]?.text ?? "-" } }
            )
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Post a rule file (POST /v1/rules; needs the ingest role).")

        @OptionGroup var api: APIOptions
        @Argument(help: "The rule file.") var file: String
        @Option(help: "sigma, suricata, snort or yara (default: from the extension: .yml/.yaml, .rules, .yar/.yara).") var format: String?
        @Option(help: "The installed file's name, without extension (default: from the rule).") var name: String?
        @Option(help: "TLP marking: clear, green, amber (default), amber+strict, red.") var tlp: String?
        @Option(help: "Tags, comma-separated.") var tags: String?
        @Option(help: "Confidence, 0-100 (default 50).") var confidence: Int?

        func run() async throws {
            guard let format = format ?? RuleFormat(fileExtension: (file as NSString).pathExtension)?.rawValue else {
                throw CLIError("cannot tell the rule's format from \(file); pass --format sigma|suricata|snort|yara")
            }
            guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
            var query = ["format=\(format.queryEncoded)"]
            if let name { query.append("name=\(name.queryEncoded)") }
            if let tlp { query.append("tlp=\(tlp.queryEncoded)") }
            if let tags { query.append("tags=\(tags.queryEncoded)") }
            if let confidence { query.append("confidence=\(confidence)") }
            let answer = try await api.client().call(.POST, "/v1/rules?" + query.joined(separator: "&"), body: Array(data), contentType: "text/plain")
            print(
                "\(file): accepted as item \(answer["id"]?.text ?? "?") (\(format) rule \(answer["rule_id"]?.text ?? "?"), name \(answer["name"]?.text ?? "?"))"
            )
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Withdraw a rule item: remove what it installed here and at every peer that got it (needs the admin role)."
        )

        @OptionGroup var api: APIOptions
        @Argument(help: "The rule item's id (rampart rules list shows it).") var item: String
        @Option(help: "Why, for the audit log and the peers.") var reason: String?

        func run() async throws {
            let query = reason.map { "?reason=\($0.queryEncoded)" } ?? ""
            let answer = try await api.client().call(.DELETE, "/v1/rules/\(item.queryEncoded)\(query)")
            guard case .array(let removed)? = answer["removed"] else { throw CLIError("unexpected answer") }
            for path in removed { print("removed \(path.text)") }
            print("\(item): revoked, \(removed.count) files removed here")
        }
    }
}
