import ArgumentParser
import Foundation
import RampartCore

struct Feeds: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The feeds the daemon pulls, and pulling one now.", subcommands: [List.self, Pull.self])

    static func row(_ feed: JSONValue) -> [String] {
        ["name", "kind", "last_success", "failures", "items", "last_error"].map { feed[$0]?.text ?? "-" }
    }

    static let header = ["NAME", "KIND", "LAST SUCCESS", "FAILURES", "ITEMS", "LAST ERROR"]

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each feed: its last good pull, failures since, items it brought, last error.")

        @OptionGroup var api: APIOptions
        @Flag(help: "Print the JSON objects, one per line.") var json = false

        func run() async throws {
            let answer = try await api.client().call(.GET, "/v1/feeds")
            guard case .array(let feeds)? = answer["feeds"] else { throw CLIError("unexpected answer") }
            if json {
                printJSONLines(feeds)
                return
            }
            printTable(header: Feeds.header, rows: feeds.map(Feeds.row))
        }
    }

    struct Pull: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pull a feed now (needs an admin key) and print its state after.")

        @OptionGroup var api: APIOptions
        @Argument(help: "The feed's name.") var name: String

        func run() async throws {
            let answer = try await api.client().call(.POST, "/v1/feeds/\(name)/pull")
            printTable(header: Feeds.header, rows: [Feeds.row(answer)])
            if case .string? = answer["last_error"] { throw ExitCode.failure }
        }
    }
}
