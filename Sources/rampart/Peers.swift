import ArgumentParser
import Foundation
import RampartCore

struct Peers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Peers of a running daemon: their state, and what to do about what they sent or did not get.",
        subcommands: [List.self, Replay.self, Purge.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each peer: reachable, queue depth, oldest undelivered, last success, last sync, counts.")

        @OptionGroup var api: APIOptions
        @Flag(help: "Print the JSON objects, one per line.") var json = false

        func run() async throws {
            let answer = try await api.client().call(.GET, "/v1/peers")
            guard case .array(let peers)? = answer["peers"] else { throw CLIError("unexpected answer") }
            if json {
                printJSONLines(peers)
                return
            }
            let columns = [
                "name", "reachable", "disabled", "queue_depth", "oldest_undelivered_seconds", "dead_letters", "last_success", "last_sync",
                "repaired", "sent", "received", "accepted", "refused",
            ]
            printTable(
                header: [
                    "NAME", "REACHABLE", "DISABLED", "QUEUED", "OLDEST(s)", "DEAD", "LAST SUCCESS", "LAST SYNC", "REPAIRED", "SENT", "RECEIVED",
                    "ACCEPTED", "REFUSED",
                ],
                rows: peers.map { peer in columns.map { peer[$0]?.text ?? "-" } }
            )
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a peer's dead-lettered entries again, and enable it if a 410 disabled it (needs the admin role)."
        )

        @OptionGroup var api: APIOptions
        @Argument(help: "The peer's name.") var name: String

        func run() async throws {
            let answer = try await api.client().call(.POST, "/v1/peers/\(name.queryEncoded)/replay")
            print("\(name): \(answer["requeued"]?.text ?? "0") entries queued again")
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke every decision that items from a peer caused and remove the rules they installed (needs the admin role).")

        @OptionGroup var api: APIOptions
        @Argument(help: "The peer's name.") var name: String

        func run() async throws {
            let answer = try await api.client().call(.POST, "/v1/peers/\(name.queryEncoded)/purge")
            guard case .array(let revoked)? = answer["revoked"] else { throw CLIError("unexpected answer") }
            for decision in revoked { print("revoked \(decision["value"]?.text ?? "?") (id \(decision["id"]?.text ?? "?"))") }
            guard case .array(let removed)? = answer["rules_removed"] else { throw CLIError("unexpected answer") }
            for path in removed { print("removed \(path.text)") }
            print("\(name): \(revoked.count) decisions revoked, \(removed.count) rules removed")
        }
    }
}
