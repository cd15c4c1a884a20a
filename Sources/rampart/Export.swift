import ArgumentParser
import Foundation
import RampartCore
import RampartStore

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export what this node may share, in a standard format.", subcommands: [STIXBundle.self])

    struct STIXBundle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stix",
            abstract:
                "Write a STIX 2.1 bundle: the items in force (not revoked, not expired, never TLP:RED) and the decisions in force (reads the state directory; works while the daemon runs)."
        )

        @OptionGroup var options: ConfigOptions
        @Option(help: "Only items received and decisions made at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).")
        var since: String?
        @Option(help: "Write the bundle to this file instead of standard output.") var out: String?

        func run() async throws {
            let config = try options.load()
            let since = try self.since.map { (text) throws(ValueError) in try Timestamp.parse(text) }
            let store = try Audit.open(config)
            let now = Date()
            var objects: [[UInt8]] = []
            var markings: Set<TLP> = []
            var query = ExportQuery()
            query.limit = 1000
            if let since { query.added(after: since.addingTimeInterval(-0.001)) }
            while true {
                let (page, more) = try await store.exportedObjects(query) { $0 }
                for object in page where !object.revoked {
                    query.after = object.seq
                    if let until = object.item.indicator?.validUntil, until <= now { continue }
                    var w = JSONWriter()
                    STIX.write(object.item, nodeID: config.node.id, to: &w)
                    objects.append(w.bytes)
                    markings.insert(object.item.tlp)
                }
                if let last = page.last { query.after = max(query.after, last.seq) }
                if !more { break }
            }
            for (decision, tlp) in try store.decisionsToExport(now: now, since: since) where tlp != .red {
                var w = JSONWriter()
                STIX.write(decision: decision, tlp: tlp, nodeID: config.node.id, to: &w)
                objects.append(w.bytes)
                markings.insert(tlp)
            }
            var bundle: [UInt8] = Array(#"{"type":"bundle","id":"bundle--\#(UUID().uuidString.lowercased())","objects":["#.utf8)
            var head = JSONWriter()
            STIX.writeIdentity(nodeID: config.node.id, to: &head)
            bundle += head.bytes
            for tlp in markings.sorted() {
                var w = JSONWriter()
                STIX.writeMarking(tlp, to: &w)
                bundle += [UInt8(ascii: ",")] + w.bytes
            }
            for object in objects { bundle += [UInt8(ascii: ",")] + object }
            bundle += Array("]}\n".utf8)
            if let out {
                guard FileManager.default.createFile(atPath: out, contents: Data(bundle)) else { throw CLIError("cannot write \(out)") }
                FileHandle.standardError.write(Data("wrote \(objects.count) indicators to \(out)\n".utf8))
            } else {
                FileHandle.standardOutput.write(Data(bundle))
            }
        }
    }
}
