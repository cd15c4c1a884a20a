import ArgumentParser
import Foundation
import RampartCore

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate the configuration; exit 1 with file:line:col errors if it is invalid.",
        discussion: "PATH is a configuration file or a playbooks directory; without it, the configuration --config names."
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
        if isDirectory.boolValue {
            problems = try Check.playbookFiles(in: target).map {
                Diagnostic(file: $0, line: 1, column: 1, message: "playbooks are not supported by this build yet; remove the file or use a build that has them")
            }
        } else {
            do {
                _ = try Config.load(path: target)
            } catch {
                problems = error.items
            }
        }
        switch format {
        case .text:
            if problems.isEmpty {
                print("\(target): ok")
            } else {
                for problem in problems { FileHandle.standardError.write(Data("\(problem)\n".utf8)) }
            }
        case .json:
            var w = JSONWriter()
            w.beginObject()
            w.field("ok", problems.isEmpty)
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

    /// The `*.yaml` files of a playbooks directory, sorted.
    static func playbookFiles(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".yaml") && !$0.hasPrefix(".") }
            .sorted()
            .map { (directory as NSString).appendingPathComponent($0) }
    }
}
