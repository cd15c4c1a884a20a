import ArgumentParser
import Foundation
import RampartCore

struct Decisions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, add and revoke decisions on a running daemon.",
        subcommands: [List.self, Add.self, Delete.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List decisions (all pages).")

        @OptionGroup var api: APIOptions
        @Option(help: "Only decisions whose address or network contains this IP.") var value: String?
        @Option(help: "Only decisions of this playbook.") var playbook: String?
        @Flag(help: "Only decisions in force now.") var active = false
        @Flag(help: "Print the JSON objects, one per line.") var json = false

        func run() async throws {
            let client = try api.client()
            var parameters: [String] = ["limit=1000"]
            if let value { parameters.append("value=\(value.queryEncoded)") }
            if let playbook { parameters.append("playbook=\(playbook.queryEncoded)") }
            if active { parameters.append("active=true") }
            var cursor: String?
            var rows: [[String]] = []
            repeat {
                let page = try await client.call(
                    .GET, "/v1/decisions?" + (parameters + (cursor.map { ["cursor=\($0)"] } ?? [])).joined(separator: "&"))
                guard case .array(let decisions)? = page["decisions"] else { throw CLIError("unexpected answer") }
                if json { printJSONLines(decisions) }
                for decision in decisions where !json {
                    rows.append(["id", "value", "direction", "expires_at", "state", "playbook", "reason"].map { decision[$0]?.text ?? "-" })
                }
                if case .string(let next)? = page["next"] { cursor = next } else { cursor = nil }
            } while cursor != nil
            if !json { printTable(header: ["ID", "VALUE", "DIRECTION", "EXPIRES", "STATE", "PLAYBOOK", "REASON"], rows: rows) }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Block an address or network (needs the admin role).")

        @OptionGroup var api: APIOptions
        @Argument(help: "The IP address or CIDR to block.") var value: String
        @Option(help: "How long: 90s, 15m, 4h, 7d.") var duration = "4h"
        @Option(help: "inbound, outbound or both.") var direction = "both"
        @Option(help: "Why, for the audit log.") var reason: String?

        func run() async throws {
            var w = JSONWriter()
            w.beginObject()
            w.field("value", value)
            w.field("duration", duration)
            w.field("direction", direction)
            w.field("reason", reason)
            w.endObject()
            let answer = try await api.client().call(.POST, "/v1/decisions", body: w.bytes)
            let decision = answer["decision"]
            print(
                "\(answer["outcome"]?.text ?? "done"): \(decision?["value"]?.text ?? value) until \(decision?["expires_at"]?.text ?? "?") (id \(decision?["id"]?.text ?? "?"))"
            )
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a decision by id, or every decision for --value (needs the admin role).")

        @OptionGroup var api: APIOptions
        @Argument(help: "The decision id.") var id: String?
        @Option(help: "Revoke every active decision for this address or network.") var value: String?
        @Option(help: "Why, for the audit log.") var reason: String?

        func validate() throws {
            guard (id == nil) != (value == nil) else { throw ValidationError("give either a decision id or --value") }
        }

        func run() async throws {
            var path = id.map { "/v1/decisions/\($0.queryEncoded)" } ?? "/v1/decisions?value=\(value!.queryEncoded)"
            if let reason { path += (path.contains("?") ? "&" : "?") + "reason=\(reason.queryEncoded)" }
            let answer = try await api.client().call(.DELETE, path)
            guard case .array(let revoked)? = answer["revoked"] else { throw CLIError("unexpected answer") }
            for decision in revoked { print("revoked \(decision["value"]?.text ?? "?") (id \(decision["id"]?.text ?? "?"))") }
        }
    }
}

extension JSONValue {
    /// A scalar as text for tables.
    var text: String {
        switch self {
        case .string(let s): s
        case .number(let d): d == d.rounded() ? String(Int64(d)) : String(d)
        case .bool(let b): String(b)
        case .null: "-"
        default: "…"
        }
    }
}

/// Each value as one line of JSON (the commands' `--json`).
func printJSONLines(_ values: [JSONValue]) {
    for value in values {
        var w = JSONWriter()
        w.value(value)
        print(w.string)
    }
}

func printTable(header: [String], rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        print(
            row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ").trimmingCharacters(
                in: .whitespaces))
    }
}
