import ArgumentParser
import Foundation
import RampartCore

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate the configuration, playbooks and lists; exit 1 with file:line:col errors if anything is invalid.",
        discussion: """
            PATH is a configuration file (checked with its playbooks and lists) or a playbooks directory \
            (checked with the lists directory of the configuration, when it loads); without PATH, the \
            configuration --config names.
            """
    )

    @OptionGroup var options: ConfigOptions

    @Argument(help: "A configuration file or a playbooks directory.")
    var path: String?

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    enum OutputFormat: String, ExpressibleByArgument {
        case text, json
    }

    func run() throws {
        let target = path ?? options.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory) else {
            throw CLIError("\(target): no such file or directory")
        }
        var problems: [Diagnostic] = []
        var count = 0
        do {
            let playbooks: [Playbook]
            if isDirectory.boolValue {
                let config = try? Config.load(path: options.path)
                playbooks = try PlaybookLoader.load(directory: target, listsDirectory: config?.listsDirectory, peers: config?.peers.map(\.name))
            } else {
                let config = try Config.load(path: target)
                playbooks = try PlaybookLoader.load(
                    directory: config.playbooksDirectory, listsDirectory: config.listsDirectory, peers: config.peers.map(\.name))
            }
            count = playbooks.count
        } catch {
            problems = error.items
        }
        switch format {
        case .text:
            if problems.isEmpty {
                print("\(target): ok, \(count) playbook\(count == 1 ? "" : "s")")
            } else {
                for problem in problems { FileHandle.standardError.write(Data("\(problem)\n".utf8)) }
            }
        case .json:
            var w = JSONWriter()
            w.beginObject()
            w.field("ok", problems.isEmpty)
            w.field("playbooks", count)
            w.key("errors")
            w.beginArray()
            for problem in problems {
                w.beginObject()
                w.field("file", problem.file)
                w.field("line", problem.line)
                w.field("column", problem.column)
                w.field("message", problem.message)
                w.endObject()
            }
            w.endArray()
            w.endObject()
            print(w.string)
        }
        if !problems.isEmpty { throw ExitCode.failure }
    }
}
