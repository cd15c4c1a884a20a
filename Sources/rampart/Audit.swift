import ArgumentParser
import Foundation
import RampartCore
import RampartStore

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify, export or search the hash-chained audit log (reads the state directory; works while the daemon runs).",
        subcommands: [Verify.self, Export.self, Show.self]
    )

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recompute the chain; exit 1 naming the first entry that does not match.")

        @OptionGroup var options: ConfigOptions

        func run() throws {
            let config = try options.load()
            let store = try Audit.open(config)
            let result = try store.verifyAudit()
            if let broken = result.firstBroken {
                FileHandle.standardError.write(Data("audit chain broken at entry \(broken): \(result.problem ?? "")\n".utf8))
                throw ExitCode.failure
            }
            print("audit chain intact: \(result.entries) entries")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print audit entries as NDJSON, oldest first.")

        @OptionGroup var options: ConfigOptions
        @Option(help: "Start after this sequence number.") var after: Int64 = 0

        func run() throws {
            let store = try Audit.open(try options.load())
            let out = FileHandle.standardOutput
            try store.exportAudit(after: after) { entry in
                var w = JSONWriter()
                entry.write(to: &w)
                out.write(Data(w.bytes + [0x0a]))
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the entries about one item (its entry, with what it caused, and later ones) or one decision, as NDJSON.")

        @OptionGroup var options: ConfigOptions
        @Option(help: "An item id.") var item: String?
        @Option(help: "A decision id.") var decision: String?
        @Option(help: "At most this many entries.") var limit = 1000

        func validate() throws {
            guard (item == nil) != (decision == nil) else { throw ValidationError("give --item or --decision") }
        }

        func run() throws {
            let store = try Audit.open(try options.load())
            let entries = try store.auditEntries(item.map { .item($0) } ?? .decision(decision ?? ""), limit: limit)
            guard !entries.isEmpty else {
                FileHandle.standardError.write(Data("no audit entries for \(item.map { "item \($0)" } ?? "decision \(decision ?? "")")\n".utf8))
                throw ExitCode.failure
            }
            let out = FileHandle.standardOutput
            for entry in entries {
                var w = JSONWriter()
                entry.write(to: &w)
                out.write(Data(w.bytes + [0x0a]))
            }
        }
    }

    static func open(_ config: Config) throws -> Store {
        guard FileManager.default.fileExists(atPath: config.databasePath) else {
            throw CLIError("no database at \(config.databasePath): has the daemon run with this configuration?")
        }
        return try Store(path: config.databasePath, readOnly: true)
    }
}
