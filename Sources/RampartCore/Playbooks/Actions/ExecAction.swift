import Foundation
import Yams

/// `exec: {argv: [/usr/local/bin/ticket, "{{value}}"], timeout: 10s}`: runs a local command (argv,
/// never a shell) after the commit, with the item as JSON on its standard input.
public struct ExecAction: PlaybookAction {
    public static let kind = "exec"
    /// argv[0] is an absolute path; the other entries may name fields (`{{value}}`).
    public var argv: [ActionTemplate]
    public var timeout: Duration

    public init(argv: [ActionTemplate], timeout: Duration) {
        self.argv = argv
        self.timeout = timeout
    }

    public func arguments(for item: Item, playbook: String) -> [String] {
        argv.map { $0.render(item, playbook: playbook) }
    }

    public static func parse(_ body: Node, action: Node, path: String, playbook: Playbook, peers: [String]?, reader: YAMLReader) -> ExecAction? {
        guard let exec = reader.fields(body, allowed: ["argv", "timeout"], what: "\(path).exec") else { return nil }
        var timeout: Duration = .seconds(10)
        if let n = exec["timeout"], let value = reader.duration(n, "\(path).exec.timeout") {
            if value <= .seconds(300) { timeout = value } else { reader.error(n, "\(path).exec.timeout must be at most 5m") }
        }
        guard let n = exec.required("argv"), let entries = reader.list(n, "\(path).exec.argv", allowSingle: false) else { return nil }
        guard let first = entries.first else {
            reader.error(n, "\(path).exec.argv must name the program to run, as an absolute path")
            return nil
        }
        if let program = reader.string(first, "\(path).exec.argv[0]"), !program.hasPrefix("/") || program.contains("{{") {
            reader.error(first, "\(path).exec.argv[0] must be the program's absolute path, without template fields, such as /usr/local/bin/ticket")
        }
        let argv = entries.enumerated().compactMap { index, entry in
            reader.word(entry, "\(path).exec.argv[\(index)]") { (text) throws(ValueError) in try ActionTemplate(text, output: .text) }
        }
        guard argv.count == entries.count else { return nil }
        return ExecAction(argv: argv, timeout: timeout)
    }

    public func plan(_ item: Item, playbook: Playbook, in context: PlanContext) -> [Intent] {
        [.exec(argv: arguments(for: item, playbook: playbook.name), timeout: timeout)]
    }

    public func explain(_ intent: Intent, item: Item, playbook: Playbook, in context: PlanContext) -> String {
        guard case .exec(let argv, let timeout) = intent else { return "exec: \(Intent.why(intent))" }
        let quoted = argv.map { $0.contains(" ") || $0.isEmpty ? "'\($0)'" : $0 }
        return
            "exec: \(playbook.verb("run", simulated: "not run")) \(quoted.joined(separator: " ")) with the item as JSON on stdin, timeout \(timeout.text)"
    }
}

/// A command an `exec` action runs once the item that caused it is committed.
public struct ExecJob: Sendable {
    public var item: String
    public var playbook: String
    public var argv: [String]
    /// The item as JSON, for the command's standard input.
    public var input: [UInt8]
    public var environment: [String: String]
    public var timeout: Duration

    /// The job for an `exec` intent on `item` (its JSON `input`), with the environment it runs in.
    public init(item: Item, input: [UInt8], playbook: String, argv: [String], timeout: Duration) {
        self.item = item.id
        self.playbook = playbook
        self.argv = argv
        self.input = input
        self.environment = ExecJob.environment(for: item, playbook: playbook)
        self.timeout = timeout
    }

    /// The environment of an `exec` command: nothing of the daemon's own (it may hold tokens).
    static func environment(for item: Item, playbook: String) -> [String: String] {
        var environment = [
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "RAMPART_ITEM_ID": item.id, "RAMPART_PLAYBOOK": playbook,
            "RAMPART_VIA": item.via, "RAMPART_ORIGIN": item.origin,
        ]
        switch item.payload {
        case .indicator(let indicator):
            environment["RAMPART_KIND"] = indicator.kind.rawValue
            environment["RAMPART_VALUE"] = indicator.value
            environment["RAMPART_CONFIDENCE"] = String(indicator.confidence)
            environment["RAMPART_SEVERITY"] = indicator.severity.rawValue
            environment["RAMPART_TLP"] = indicator.tlp.rawValue
        case .rule(let rule):
            environment["RAMPART_KIND"] = "rule"
            environment["RAMPART_VALUE"] = rule.name
            environment["RAMPART_CONFIDENCE"] = String(rule.confidence)
            environment["RAMPART_SEVERITY"] = rule.severity.rawValue
            environment["RAMPART_TLP"] = rule.tlp.rawValue
            environment["RAMPART_RULE_FORMAT"] = rule.format.rawValue
            environment["RAMPART_RULE_ID"] = rule.ruleID
            // Relative to the state directory, where a `rule: {}` action earlier in the playbook installed it.
            environment["RAMPART_RULE_PATH"] = rule.relativePath
        }
        return environment
    }
}
