import ArgumentParser
import Foundation
import RampartCore
import RampartFirewall

/// `rampart test`: runs items through the playbooks without a daemon and without side effects,
/// and explains each verdict.
struct TestPlaybooks: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Explain what the playbooks would do with an item or a file of items (no daemon, no side effects).",
        discussion: "Exits 0 when every item was read, 1 when an item or a playbook is invalid."
    )

    @OptionGroup var options: ConfigOptions

    @Option(help: "The playbooks directory (default: the configuration's).")
    var playbooks: String?

    @Option(help: "One indicator as JSON, such as '{\"value\": \"77.90.185.20\", \"confidence\": 90}'.")
    var item: String?

    @Option(help: "A file of items: .json (an object or an array), .ndjson/.jsonl, or text (one value a line).")
    var file: String?

    @Option(help: "A detection rule file, run through the playbooks on: rule.")
    var rule: String?

    @Option(help: "The rule's format: sigma, suricata, snort or yara (default: from the file's extension).")
    var format: String?

    @Option(help: "Where the items come from, as playbooks' `from` sees it.")
    var via = "api:test"

    func validate() throws {
        guard [item, file, rule].count(where: { $0 != nil }) == 1 else { throw ValidationError("give one of --item, --file or --rule") }
    }

    func run() throws {
        let config = try? Config.load(path: options.path)
        guard let directory = playbooks ?? config?.playbooksDirectory else {
            throw CLIError("no playbooks directory: pass --playbooks DIR, or a configuration that loads (\(options.path))")
        }
        let set: PlaybookSet
        do {
            set = PlaybookSet(try PlaybookLoader.load(directory: directory, listsDirectory: config?.listsDirectory, peers: config?.peers.map(\.name)))
        } catch {
            throw CLIError("\(error)")
        }
        let policy = config?.safetyPolicy(hostAddresses: HostAddresses.current() + HostAddresses.peers(config?.peers ?? [])) ?? SafetyPolicy()
        let at = Date()
        let planning = PlanContext(nodeID: config?.node.id ?? "(this node)", peers: config?.peers ?? [], policy: policy, at: at)
        if let rule {
            let parsed = try readRule(rule)
            print("\(rule): \(parsed.format.rawValue) rule \(parsed.ruleID) (\(parsed.title))")
            report(set.explain(Subject(parsed, via: via)), item: sample(.rule(parsed)), planning: planning)
            return
        }
        let (body, format) = try input()
        var failed = false
        try body.withUnsafeBytes { raw in
            try IngestParser.parse(raw, format: format, defaults: IndicatorDefaults(), now: at, limits: .init(maxItems: 1_000_000, maxDepth: 32)) {
                entry in
                let label = format == .text || format == .ndjson ? "line \(entry.position)" : "item \(entry.position)"
                switch entry.result {
                case .failure(let error):
                    failed = true
                    print("\(label): refused: \(error.message)")
                case .success(.indicator(let indicator)):
                    print("\(label): \(indicator.kind.rawValue) \(indicator.value)")
                    report(set.explain(Subject(indicator, via: via)), item: sample(.indicator(indicator)), planning: planning)
                case .success(.stix(let object)):
                    let id = object.version?.id ?? "object"
                    switch object.content {
                    case .skipped(let reason): print("\(label): \(id): skipped: \(reason)")
                    case .revoked: print("\(label): \(id): revoked")
                    case .payloads(let payloads):
                        for payload in payloads {
                            let item = sample(payload)
                            print("\(label): \(id): \(item.label)")
                            report(set.explain(Subject(item)), item: item, planning: planning)
                        }
                    }
                }
            }
        }
        if failed { throw ExitCode.failure }
    }

    func input() throws -> (Data, IngestParser.Format) {
        if let item { return (Data(item.utf8), .json) }
        let path = file!
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read \(path)") }
        if path.hasSuffix(".json") { return (data, .json) }
        if path.hasSuffix(".ndjson") || path.hasSuffix(".jsonl") { return (data, .ndjson) }
        return (data, .text)
    }

    func sample(_ payload: Item.Payload) -> Item {
        Item(id: "(item id)", payload: payload, via: via, origin: "(origin)", receivedAt: Date())
    }

    func readRule(_ path: String) throws -> Rule {
        let named = try format.map { (name) throws(ValueError) in try RuleFormat(name: name) }
        guard let format = named ?? RuleFormat(fileExtension: (path as NSString).pathExtension) else {
            throw CLIError("cannot tell the rule's format from \(path); pass --format sigma|suricata|snort|yara")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw CLIError("cannot read \(path) as UTF-8 text")
        }
        do {
            return try Rule(format: format, content: text)
        } catch {
            throw CLIError(error.problems.map { $0.line > 0 ? "\(path):\($0.description)" : "\(path): \($0.message)" }.joined(separator: "\n"))
        }
    }

    func report(_ verdicts: [(playbook: Playbook, verdict: PlaybookSet.Verdict)], item: Item, planning: PlanContext) {
        if verdicts.isEmpty { print("  no playbooks loaded") }
        for (playbook, verdict) in verdicts {
            let mode = playbook.mode == .simulate ? ", simulate" : ""
            switch verdict {
            case .failed(let why):
                print("  - \(playbook.name): no match: \(why)")
            case .skipped(let by):
                print("  - \(playbook.name): would match, but \(by) (stop: true) ran first")
            case .matched:
                print("  + \(playbook.name) (priority \(playbook.priority)\(mode)): matched")
                for line in playbook.explain(item, in: planning) { print("      \(line)") }
            }
        }
    }
}
