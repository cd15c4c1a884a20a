import Foundation
import Yams

/// Reads playbook files strictly: every problem of every file is reported, each with file, line,
/// column and what was expected.
public enum PlaybookLoader {
    public static let topLevelKeys = ["name", "description", "on", "mode", "priority", "stop", "match", "actions"]
    public static let matchKeys = [
        "kind", "format", "confidence", "severity", "tlp", "tags", "from", "value", "suggested", "sightings", "any", "all", "not",
    ]
    /// What only one kind of item has: a playbook on the other kind cannot match on it.
    static let indicatorOnlyKeys: Set<String> = ["kind", "value", "sightings"]
    static let ruleOnlyKeys: Set<String> = ["format"]
    public static let valueKeys = ["cidr", "suffix", "regex", "in_list", "not_in", "not_in_list"]
    public static let actionNames = PlaybookActions.names

    /// Loads every `*.yaml` file of `directory` and the named lists of `listsDirectory`.
    /// - Parameter peers: the configured peers' names, which `propagate: {to: […]}` may name; nil
    ///   when no configuration is at hand (names are then not checked).
    public static func load(directory: String, listsDirectory: String?, peers: [String]?) throws(Diagnostics) -> [Playbook] {
        let lists = try loadLists(directory: listsDirectory)
        var problems: [Diagnostic] = []
        var playbooks: [Playbook] = []
        let files: [String]
        do {
            files = try FileManager.default.contentsOfDirectory(atPath: directory)
                .filter { $0.hasSuffix(".yaml") && !$0.hasPrefix(".") }
                .sorted()
                .map { (directory as NSString).appendingPathComponent($0) }
        } catch {
            throw Diagnostics([
                Diagnostic(file: directory, line: 0, column: 0, message: "cannot read the playbooks directory: \(error.localizedDescription)")
            ])
        }
        for file in files {
            do {
                playbooks.append(try parse(YAMLSource.load(path: file), file: file, lists: lists, peers: peers))
            } catch {
                problems += error.items
            }
        }
        var seen: [String: String] = [:]
        for playbook in playbooks {
            if let first = seen[playbook.name] {
                problems.append(
                    Diagnostic(file: playbook.file, line: 1, column: 1, message: "the name '\(playbook.name)' is already used by \(first)"))
            }
            seen[playbook.name] = playbook.file
        }
        guard problems.isEmpty else { throw Diagnostics(problems) }
        return playbooks
    }

    /// Parses one playbook document.
    public static func parse(_ root: Node, file: String, lists: [String: NamedList], peers: [String]? = nil) throws(Diagnostics) -> Playbook {
        let reader = YAMLReader(file: file)
        var playbook = Playbook(name: "", file: file)
        guard let top = reader.fields(root, allowed: topLevelKeys, what: "the playbook") else { throw Diagnostics(reader.diagnostics) }
        if let n = top.required("name"), let name = reader.string(n, "name") {
            if Config.isName(name) { playbook.name = name } else { reader.error(n, "name must be 1-64 letters, digits, '-', '_' or '.'") }
        }
        if let n = top["description"] { playbook.description = reader.string(n, "description") }
        if let n = top["on"] {
            playbook.on = reader.word(n, "on") { (text) throws(ValueError) in try choice(text, Playbook.Trigger.self) } ?? .indicator
        }
        if let n = top["mode"] {
            playbook.mode = reader.word(n, "mode") { (text) throws(ValueError) in try choice(text, Playbook.Mode.self) } ?? .enforce
        }
        if let n = top["priority"], let value = reader.int(n, "priority", in: -1_000_000...1_000_000) { playbook.priority = value }
        if let n = top["stop"], let value = reader.bool(n, "stop") { playbook.stop = value }
        if let n = top.required("match") {
            let matchReader = MatchReader(reader: reader, lists: lists, trigger: playbook.on)
            playbook.match = matchReader.condition(n, path: "match")
            playbook.sightings = matchReader.sightings
        }
        if let n = top.required("actions"), let entries = reader.list(n, "actions", allowSingle: false) {
            for (index, entry) in entries.enumerated() {
                if let action = parseAction(entry, path: "actions[\(index)]", playbook: playbook, peers: peers, reader: reader) {
                    playbook.actions.append(action)
                }
            }
        }
        try reader.throwIfErrors()
        return playbook
    }

    static func parseAction(_ node: Node, path: String, playbook: Playbook, peers: [String]?, reader: YAMLReader) -> (any PlaybookAction)? {
        guard let fields = reader.fields(node, allowed: actionNames, what: path) else { return nil }
        guard fields.keys.count == 1, let name = fields.keys.first, let body = fields[name] else {
            reader.error(node, "\(path) must hold exactly one action, such as {block: {duration: 4h}}; found \(fields.keys.count)")
            return nil
        }
        if playbook.on == .rule, name == BlockAction.kind {
            reader.error(
                fields.keyNode(name), "block acts on addresses and networks; a playbook on: rule can rule (install), propagate, notify or exec")
            return nil
        }
        // `fields(allowed: actionNames)` reported any other name.
        return PlaybookActions.registry[name]?.parse(body, action: node, path: path, playbook: playbook, peers: peers, reader: reader)
    }

    static func choice<T: RawRepresentable & CaseIterable>(_ text: String, _: T.Type) throws(ValueError) -> T where T.RawValue == String {
        guard let value = T(rawValue: text) else {
            throw ValueError(.invalidField, "expected one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), found '\(text.preview)'")
        }
        return value
    }

    // MARK: Lists

    /// Every file of the lists directory, by name (the file name without its extension).
    public static func loadLists(directory: String?) throws(Diagnostics) -> [String: NamedList] {
        guard let directory, FileManager.default.fileExists(atPath: directory) else { return [:] }
        var lists: [String: NamedList] = [:]
        var problems: [Diagnostic] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for file in names.sorted() where !file.hasPrefix(".") {
            let path = (directory as NSString).appendingPathComponent(file)
            let name = (file as NSString).deletingPathExtension
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                problems.append(Diagnostic(file: path, line: 0, column: 0, message: "cannot read the list as UTF-8 text"))
                continue
            }
            var networks = PrefixIndex<Void>()
            var domains: [String] = []
            var values: Set<String> = []
            var count = 0
            for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line =
                    rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first?.trimmingCharacters(in: .whitespaces) ?? ""
                guard !line.isEmpty else { continue }
                do {
                    let (kind, text) = try IndicatorValue.normalise(line)
                    count += 1
                    switch kind {
                    case .ipv4, .ipv6, .cidr: networks.insert(try IPNetwork(parsing: text, allowBareAddress: true), ())
                    case .domain: domains.append(text)
                    default: values.insert(text)
                    }
                } catch {
                    problems.append(Diagnostic(file: path, line: number + 1, column: 1, message: error.message))
                }
            }
            lists[name] = NamedList(name: name, networks: networks, domains: SuffixSet(domains), values: values, count: count)
        }
        guard problems.isEmpty else { throw Diagnostics(problems) }
        return lists
    }
}

/// Reads `match` and its nested `any`/`all`/`not`.
struct MatchReader {
    let reader: YAMLReader
    let lists: [String: NamedList]
    let trigger: Playbook.Trigger
    private let found = Found()

    /// What the walk finds besides conditions.
    private final class Found {
        var sightings: Sightings?
    }

    init(reader: YAMLReader, lists: [String: NamedList], trigger: Playbook.Trigger) {
        self.reader = reader
        self.lists = lists
        self.trigger = trigger
    }

    /// The top-level `sightings`, which the store evaluates at commit.
    var sightings: Sightings? { found.sightings }

    func condition(_ node: Node, path: String) -> Condition {
        guard let fields = reader.fields(node, allowed: PlaybookLoader.matchKeys, what: path) else { return .all([]) }
        var parts: [Condition] = []
        for key in fields.keys {
            guard let n = fields[key] else { continue }
            let here = "\(path).\(key)"
            if trigger == .rule, PlaybookLoader.indicatorOnlyKeys.contains(key) {
                reader.error(
                    fields.keyNode(key),
                    "\(here) applies to indicators; a playbook on: rule can match format, confidence, severity, tlp, tags, from and suggested")
                continue
            }
            if trigger == .indicator, PlaybookLoader.ruleOnlyKeys.contains(key) {
                reader.error(fields.keyNode(key), "\(here) applies to rules; add on: rule to the playbook to match rules")
                continue
            }
            switch key {
            case "format":
                if let words = reader.list(n, here) {
                    let formats = words.compactMap { reader.word($0, here) { (text) throws(ValueError) in try RuleFormat(name: text) } }
                    parts.append(.format(Set(formats)))
                }
            case "kind":
                if let words = reader.strings(n, here) {
                    var kinds: Set<IndicatorKind> = []
                    for word in words {
                        do { kinds.insert(try IndicatorKind(name: word)) } catch { reader.error(n, "\(here): \(error.message)") }
                    }
                    parts.append(.kind(KindSet(kinds)))
                }
            case "confidence":
                if let range = minMax(n, here, parse: { node, what in reader.int(node, what, in: 0...100) }) {
                    parts.append(.confidence(min: range.min ?? 0, max: range.max ?? 100))
                }
            case "severity":
                let parse: (Node, String) -> Severity? = { node, what in
                    reader.word(node, what) { (text) throws(ValueError) in try Severity(name: text) }
                }
                if let range = minMax(n, here, parse: parse) {
                    parts.append(.severity(min: range.min ?? .low, max: range.max ?? .critical))
                }
            case "tlp":
                if let words = reader.list(n, here) {
                    let levels = words.compactMap { reader.word($0, here) { (text) throws(ValueError) in try TLP(name: text) } }
                    parts.append(.tlp(Set(levels)))
                }
            case "tags":
                guard let tags = reader.fields(n, allowed: ["any", "all", "none"], what: here) else { continue }
                func set(_ k: String) -> Set<String> { tags[k].flatMap { reader.strings($0, "\(here).\(k)") }.map(Set.init) ?? [] }
                parts.append(.tags(any: set("any"), all: set("all"), none: set("none")))
            case "from":
                if let sources = reader.strings(n, here) {
                    for (source, item) in zip(sources, reader.list(n, here) ?? [])
                    where !(source.hasPrefix("api:") || source.hasPrefix("peer:") || source.hasPrefix("feed:")) {
                        reader.error(item, "\(here): '\(source.preview)' must be api:KEY_NAME, peer:PEER_NAME or feed:FEED_NAME")
                    }
                    parts.append(.from(Set(sources)))
                }
            case "suggested":
                if let actions = reader.strings(n, here) { parts.append(.suggested(Set(actions))) }
            case "sightings":
                guard path == "match" else {
                    reader.error(fields.keyNode(key), "sightings must be a key of match itself, not inside any, all or not")
                    continue
                }
                guard let s = reader.fields(n, allowed: ["min", "distinct", "within"], what: here) else { continue }
                let min = s.required("min").flatMap { reader.int($0, "\(here).min", in: 1...1000) }
                let within = s.required("within").flatMap { reader.duration($0, "\(here).within") }
                if let within, within > .seconds(366 * 86_400) { reader.error(s["within"], "\(here).within must be at most 366d") }
                let distinct = s["distinct"].flatMap { d in
                    reader.word(d, "\(here).distinct") { (text) throws(ValueError) in try PlaybookLoader.choice(text, Sightings.Distinct.self) }
                }
                if let min, let within { found.sightings = Sightings(min: min, distinct: distinct, within: within) }
            case "any", "all":
                guard let entries = reader.list(n, here, allowSingle: false) else { continue }
                if entries.isEmpty { reader.error(n, "\(here) must hold at least one condition") }
                let conditions = entries.enumerated().map { condition($1, path: "\(here)[\($0)]") }
                parts.append(key == "any" ? .any(conditions) : .all(conditions))
            case "not":
                parts.append(.not(condition(n, path: here)))
            case "value":
                parts += value(n, path: here)
            default:
                break
            }
        }
        return parts.count == 1 ? parts[0] : .all(parts)
    }

    func value(_ node: Node, path: String) -> [Condition] {
        guard let fields = reader.fields(node, allowed: PlaybookLoader.valueKeys, what: path) else { return [] }
        var parts: [Condition] = []
        for key in fields.keys {
            guard let n = fields[key] else { continue }
            let here = "\(path).\(key)"
            switch key {
            case "cidr":
                if let set = networks(n, here) { parts.append(.networks(set)) }
            case "suffix":
                if let suffixes = suffixes(n, here) {
                    parts.append(.suffixes(SuffixSet(suffixes)))
                }
            case "regex":
                if let regex = reader.word(n, here, { (text) throws(ValueError) in try CompiledRegex(text) }) { parts.append(.regex(regex)) }
            case "in_list", "not_in_list":
                guard let name = reader.string(n, here) else { continue }
                guard let list = lists[name] else {
                    let known = lists.keys.sorted()
                    reader.error(
                        n,
                        "\(here): no list named '\(name.preview)' in the lists directory\(known.isEmpty ? " (it has none)" : "; it has: \(known.joined(separator: ", "))")"
                    )
                    continue
                }
                parts.append(key == "in_list" ? .list(list) : .not(.list(list)))
            case "not_in":
                // CIDRs for IP kinds, domain suffixes for the others.
                guard let words = reader.strings(n, here) else { continue }
                if words.allSatisfy({ (try? IPNetwork(parsing: $0, allowBareAddress: true)) != nil }) {
                    if let set = networks(n, here) { parts.append(.not(.networks(set))) }
                } else if let suffixes = suffixes(n, here) {
                    parts.append(.not(.suffixes(SuffixSet(suffixes))))
                }
            default:
                break
            }
        }
        return parts
    }

    func networks(_ node: Node, _ what: String) -> NetworkSet? {
        guard let items = reader.list(node, what) else { return nil }
        return NetworkSet(
            items.compactMap { item in
                reader.word(item, what) { (text) throws(ValueError) in try IPNetwork(parsing: text, allowBareAddress: true) }
            })
    }

    func suffixes(_ node: Node, _ what: String) -> [String]? {
        guard let items = reader.list(node, what) else { return nil }
        return items.compactMap { item in
            reader.word(item, what) { (text) throws(ValueError) in try DomainName.normalise(Substring(text)) }
        }
    }

    func minMax<T: Comparable>(_ node: Node, _ what: String, parse: (Node, String) -> T?) -> (min: T?, max: T?)? {
        guard let fields = reader.fields(node, allowed: ["min", "max"], what: what) else { return nil }
        let min = fields["min"].flatMap { parse($0, "\(what).min") }
        let max = fields["max"].flatMap { parse($0, "\(what).max") }
        if fields.keys.isEmpty { reader.error(node, "\(what) needs min, max or both") }
        if let min, let max, min > max {
            reader.error(node, "\(what).min is above \(what).max")
        }
        return (min, max)
    }
}

extension Condition {
    /// The kinds an item can have and still satisfy the condition (all kinds when it does not say).
    var possibleKinds: KindSet {
        switch self {
        case .kind(let kinds): return kinds
        case .all(let parts): return parts.reduce(KindSet.all) { $0.intersection($1.possibleKinds) }
        case .any(let parts): return parts.isEmpty ? KindSet.all : parts.reduce([]) { $0.union($1.possibleKinds) }
        case .networks: return [.ipv4, .ipv6, .cidr]
        default: return KindSet.all
        }
    }
}
