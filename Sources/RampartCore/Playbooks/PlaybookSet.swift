/// Loaded playbooks compiled into indexes, so that matching an item costs in proportion to the
/// playbooks that could match it rather than to all of them. Each playbook is filed under the most
/// selective condition its `match` requires (a network, a domain suffix, a named list, a tag, a
/// source); the rest are filed by the kinds they accept. An item's candidates come from a handful of
/// hash lookups, and only candidates are evaluated in full, in priority order.
public struct PlaybookSet: Sendable {
    /// Ordered by priority (lower first), then name.
    public let playbooks: [Playbook]
    private var byNetwork = PrefixIndex<Int>()
    private var bySuffix: [Substring: [Int]] = [:]
    private var byList: [(list: NamedList, playbooks: [Int])] = []
    private var byTag: [String: [Int]] = [:]
    private var byFrom: [String: [Int]] = [:]
    /// Playbooks with no indexable condition, by kind (`IndicatorKind.allCases` order).
    private var byKind: [[Int]] = Array(repeating: [], count: IndicatorKind.allCases.count)
    /// Playbooks that run on rules (few, and rules are rare): not indexed.
    private var onRules: [Int] = []
    /// By playbook: what its required confidence, severity and TLP conditions allow, checked
    /// before the full evaluation (playbooks no index holds are candidates for every item).
    private var prefilters: [Prefilter] = []
    /// Kinds whose sightings must be recorded, because a playbook counts them.
    public private(set) var sightingKinds: KindSet = []
    /// How long sightings must be kept: the longest window of any playbook.
    public private(set) var sightingWindow: Duration?
    /// The URLs `notify` actions post to.
    public var notifyURLs: Set<String> {
        Set(playbooks.flatMap { $0.actions.compactMap { ($0 as? NotifyAction)?.url } })
    }

    public init(_ playbooks: [Playbook]) {
        self.playbooks = playbooks.sorted { ($0.priority, $0.name) < ($1.priority, $1.name) }.map { playbook in
            var compiled = playbook
            compiled.match = playbook.match.cheapestFirst
            return compiled
        }
        prefilters = self.playbooks.map { Prefilter($0.match) }
        var lists: [String: Int] = [:]
        for (index, playbook) in self.playbooks.enumerated() {
            guard playbook.on == .indicator else {
                onRules.append(index)
                continue
            }
            if let sightings = playbook.sightings {
                sightingKinds = sightingKinds.union(playbook.match.possibleKinds)
                sightingWindow = max(sightingWindow ?? .zero, sightings.within)
            }
            switch PlaybookSet.indexKey(playbook.match) {
            case .networks(let set):
                for network in set.networks { byNetwork.insert(network, index) }
            case .suffixes(let set):
                for suffix in set.suffixes { bySuffix[Substring(suffix), default: []].append(index) }
            case .list(let list):
                if let slot = lists[list.name] {
                    byList[slot].playbooks.append(index)
                } else {
                    lists[list.name] = byList.count
                    byList.append((list, [index]))
                }
            case .tags(let any, let all, _):
                for tag in any.isEmpty ? [all.sorted()[0]] : Array(any) { byTag[tag, default: []].append(index) }
            case .from(let sources):
                for source in sources { byFrom[source, default: []].append(index) }
            default:
                for kind in playbook.match.possibleKinds { byKind[kind.ordinal].append(index) }
            }
        }
    }

    /// The required condition a playbook is filed under, if it has an indexable one.
    static func indexKey(_ condition: Condition) -> Condition? {
        let required: [Condition]
        if case .all(let parts) = condition { required = parts } else { required = [condition] }
        // Most selective first.
        for part in required { if case .networks(let set) = part, !set.networks.isEmpty { return part } }
        for part in required { if case .suffixes(let set) = part, !set.suffixes.isEmpty { return part } }
        for part in required { if case .list = part { return part } }
        for part in required { if case .tags(let any, let all, _) = part, !any.isEmpty || !all.isEmpty { return part } }
        for part in required { if case .from(let sources) = part, !sources.isEmpty { return part } }
        return nil
    }

    /// Indexes of the playbooks that could match, in priority order.
    public func candidates(for subject: Subject) -> [Int] {
        guard let kind = subject.kind else { return onRules }
        var found = byKind[kind.ordinal]
        let unindexed = found.count
        if let network = subject.network { byNetwork.forEachContaining(network) { found.append($0) } }
        if let domain = subject.domain, !bySuffix.isEmpty {
            SuffixSet.forEachSuffix(of: domain) { suffix in
                if let hits = bySuffix[suffix] { found += hits }
                return false
            }
        }
        for entry in byList where entry.list.contains(subject) { found += entry.playbooks }
        for tag in subject.tags { if let hits = byTag[tag] { found += hits } }
        if let hits = byFrom[subject.via] { found += hits }
        // The playbooks filed by kind are in priority order already: when no index added any,
        // there is nothing to merge.
        guard found.count > 1, found.count > unindexed else { return found }
        found.sort()
        var unique: [Int] = []
        unique.reserveCapacity(found.count)
        for index in found where unique.last != index { unique.append(index) }
        return unique
    }

    /// The playbooks that match, in priority order, up to and including the first matching one with `stop`.
    public func matches(for subject: Subject) -> [Playbook] {
        var matched: [Playbook] = []
        for index in candidates(for: subject) {
            // Evaluated in place: only a playbook that matches is copied out.
            guard prefilters[index].admits(subject), playbooks[index].match.holds(for: subject) else { continue }
            matched.append(playbooks[index])
            if playbooks[index].stop { break }
        }
        return matched
    }

    /// Every playbook's verdict on the item, for `rampart test`: matched, skipped after a `stop`, or
    /// the first condition that failed.
    public func explain(_ subject: Subject) -> [(playbook: Playbook, verdict: Verdict)] {
        var stoppedBy: String?
        return playbooks.map { playbook in
            if playbook.on != subject.trigger { return (playbook, .failed("it runs on \(playbook.on.rawValue) items")) }
            if let why = playbook.match.failure(for: subject) { return (playbook, .failed(why)) }
            if let stoppedBy { return (playbook, .skipped(stoppedBy)) }
            if playbook.stop { stoppedBy = playbook.name }
            return (playbook, .matched)
        }
    }

    public enum Verdict: Sendable, Equatable {
        case matched
        case failed(String)
        /// It matched, but an earlier playbook with `stop: true` ended evaluation.
        case skipped(String)
    }
}

extension SuffixSet {
    @discardableResult
    /// Calls `body` with `a.b.example.com`, `b.example.com`, `example.com`, `com`, without copying,
    /// until it returns true; returns whether it did.
    static func forEachSuffix(of domain: String, _ body: (Substring) -> Bool) -> Bool {
        var rest = Substring(domain)
        while true {
            if body(rest) { return true }
            guard let dot = rest.utf8.firstIndex(of: UInt8(ascii: ".")) else { return false }
            rest = rest[rest.utf8.index(after: dot)...]
        }
    }
}

extension Condition {
    /// The same condition with the parts of every `all`/`any` ordered cheapest first, so that
    /// expensive checks (regexes, lists, sets) run only when the cheap ones pass.
    var cheapestFirst: Condition {
        switch self {
        case .all(let parts): return .all(parts.map(\.cheapestFirst).sorted { $0.cost < $1.cost })
        case .any(let parts): return .any(parts.map(\.cheapestFirst).sorted { $0.cost < $1.cost })
        case .not(let part): return .not(part.cheapestFirst)
        default: return self
        }
    }

    var cost: Int {
        switch self {
        case .kind, .format, .confidence, .severity, .tlp: 0
        case .from, .suggested, .tags: 1
        case .networks, .suffixes, .list: 2
        case .all(let parts), .any(let parts): parts.map(\.cost).max() ?? 0
        case .not(let part): part.cost
        case .regex: 9
        }
    }
}

/// The small-domain conditions a playbook requires (confidence, severity, TLP, also under `not`
/// for TLP), as a range and two bit masks: a few integer compares that turn most items away
/// before the playbook's condition tree is walked. Only required conditions count (the parts of
/// the top-level `all`), so an item it turns away never matches.
struct Prefilter: Sendable {
    private var minConfidence = Int.min
    private var maxConfidence = Int.max
    private var severities: UInt8 = .max
    private var tlps: UInt8 = .max

    init(_ condition: Condition) {
        let required: [Condition]
        if case .all(let parts) = condition { required = parts } else { required = [condition] }
        for part in required {
            switch part {
            case .confidence(let min, let max):
                minConfidence = Swift.max(minConfidence, min)
                maxConfidence = Swift.min(maxConfidence, max)
            case .severity(let min, let max):
                severities &= Self.mask(Severity.allCases.filter { $0 >= min && $0 <= max })
            case .tlp(let levels):
                tlps &= Self.mask(levels)
            case .not(.tlp(let levels)):
                tlps &= ~Self.mask(levels)
            default:
                continue
            }
        }
    }

    func admits(_ subject: Subject) -> Bool {
        subject.confidence >= minConfidence && subject.confidence <= maxConfidence && severities & Self.bit(subject.severity) != 0
            && tlps & Self.bit(subject.tlp) != 0
    }

    private static func bit(_ severity: Severity) -> UInt8 {
        switch severity {
        case .low: 1
        case .medium: 2
        case .high: 4
        case .critical: 8
        }
    }

    private static func bit(_ tlp: TLP) -> UInt8 {
        switch tlp {
        case .clear: 1
        case .green: 2
        case .amber: 4
        case .amberStrict: 8
        case .red: 16
        }
    }

    private static func mask(_ severities: some Sequence<Severity>) -> UInt8 { severities.reduce(0) { $0 | bit($1) } }
    private static func mask(_ tlps: some Sequence<TLP>) -> UInt8 { tlps.reduce(0) { $0 | bit($1) } }
}
