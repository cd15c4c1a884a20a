// Matcher benchmark: generated playbooks against generated items, through the indexed
// PlaybookSet and through a naive linear evaluation of the same playbooks, in one run, on one
// thread. Playbooks: 40% networks, 30% domain suffixes, 27% tags (each with confidence or
// severity conditions), 2.5% a regex within a domain suffix, and 0.5% a regex over every domain
// (measured with and without that last group: a regex costs about 0.8 us an evaluation).
// Usage: rampart-bench-matcher [ITEMS] [PLAYBOOK COUNTS...]   (Benchmarks/matcher.sh runs it pinned)
import Foundation
import RampartCore

struct Generator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

let tags = (0..<500).map { "tag\($0)" }
let words = (0..<2000).map { "site\($0)" }
let tlds = ["com", "net", "org", "io", "top", "xyz"]

func network(_ g: inout Generator) -> IPNetwork {
    let length = 16 + g.below(9)
    let raw = UInt32(truncatingIfNeeded: g.next()) | 0x0100_0000
    let masked = raw & (length == 0 ? 0 : ~UInt32(0) << (32 - length))
    let text = "\(masked >> 24).\((masked >> 16) & 255).\((masked >> 8) & 255).\(masked & 255)/\(length)"
    return try! IPNetwork(parsing: text)
}

func playbooks(_ count: Int, regexOnly: Bool) -> [Playbook] {
    var g = Generator(state: 42)
    return (0..<count).map { i in
        var p = Playbook(name: "p\(i)", file: "generated")
        p.priority = g.below(1000)
        let confidence = Condition.confidence(min: g.below(90), max: 100)
        switch g.below(1000) / 10 {
        case 0..<40:  // networks, with a confidence floor
            p.match = .all([.kind([.ipv4, .cidr]), .networks(NetworkSet((0..<(1 + g.below(4))).map { _ in network(&g) })), confidence])
            p.actions = [BlockAction(duration: .seconds(3600), direction: .both)]
        case 40..<70:  // domain suffixes
            let suffixes = (0..<(1 + g.below(3))).map { _ in "\(words[g.below(words.count)]).\(tlds[g.below(tlds.count)])" }
            p.match = .all([.kind([.domain, .url]), .suffixes(SuffixSet(suffixes)), confidence])
        case 70..<97:  // tags, with severity and confidence
            p.match = .all([
                .kind([.ipv4]), .tags(any: [tags[g.below(tags.count)], tags[g.below(tags.count)]], all: [], none: ["benign"]),
                .severity(min: .medium, max: .critical), confidence,
            ])
        default:
            let regex = Condition.regex(try! CompiledRegex("^[a-z0-9]{\(12 + g.below(8)),}\\.(top|xyz)$"))
            if g.below(6) == 0 && regexOnly {  // 0.5%: a regex alone over every domain
                p.match = .all([.kind([.domain]), regex, confidence])
            } else {  // 2.5%: a regex within the domain it is about
                p.match = .all([
                    .kind([.domain]), .suffixes(SuffixSet(["\(words[g.below(words.count)]).\(tlds[g.below(tlds.count)])"])), regex, confidence,
                ])
            }
        }
        return p
    }
}

func items(_ count: Int) -> [Subject] {
    var g = Generator(state: 7)
    return (0..<count).map { _ in
        let kind = g.below(10)
        let value: String
        if kind < 6 {
            let a = UInt32(truncatingIfNeeded: g.next())
            value = "\((a >> 24) | 1).\((a >> 16) & 255).\((a >> 8) & 255).\(a & 255)"
        } else if kind < 9 {
            value = "\(g.below(2) == 0 ? "www." : "")\(words[g.below(words.count)]).\(tlds[g.below(tlds.count)])"
        } else {
            value = String(repeating: "ab", count: 8) + "\(g.below(1_000_000)).top"
        }
        var json = #"{"value": "\#(value)", "confidence": \#(g.below(101)), "severity": "\#(["low", "medium", "high", "critical"][g.below(4)])""#
        json += #", "tags": ["\#(tags[g.below(tags.count)])", "\#(tags[g.below(tags.count)])"]}"#
        let indicator = try! Indicator(json: JSONValue.parse(Array(json.utf8)), defaults: IndicatorDefaults(), now: Date())
        return Subject(indicator, via: "api:bench")
    }
}

func naive(_ sorted: [Playbook], _ subject: Subject) -> Int {
    var matched = 0
    for playbook in sorted where playbook.match.holds(for: subject) {
        matched += 1
        if playbook.stop { break }
    }
    return matched
}

func rate(_ count: Int, _ body: () -> Int) -> (Double, Int) {
    let start = ContinuousClock.now
    let checksum = body()
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return (Double(count) / seconds, checksum)
}

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let itemCount = arguments.first ?? 1_000_000
let counts = arguments.count > 1 ? Array(arguments.dropFirst()) : [10, 1000, 10000]
let subjects = items(itemCount)
print("items: \(itemCount) (60% ipv4, 30% domains, 10% long .top domains), one thread")
print("playbooks  regex-only  indexed items/s  naive items/s  speedup  matches (indexed = naive)")
for count in counts {
    for regexOnly in [false, true] {
        let set = PlaybookSet(playbooks(count, regexOnly: regexOnly))
        let (indexed, indexedMatches) = rate(subjects.count) { subjects.reduce(0) { $0 + set.matches(for: $1).count } }
        // The naive loop is slow with many playbooks: time it on a sample, and compare matches on it.
        let sample = Array(subjects.prefix(max(2000, min(subjects.count, 20_000_000 / max(count, 1)))))
        let (linear, naiveMatches) = rate(sample.count) { sample.reduce(0) { $0 + naive(set.playbooks, $1) } }
        let sampleIndexed = sample.reduce(0) { $0 + set.matches(for: $1).count }
        print(
            String(
                format: "%9d  %10@  %15.0f  %13.0f  %6.1fx  %d (%@ on %d sampled items)", count, regexOnly ? "0.5%" : "none", indexed, linear,
                indexed / linear, indexedMatches, sampleIndexed == naiveMatches ? "equal" : "DIFFERENT", sample.count)
        )
    }
}
