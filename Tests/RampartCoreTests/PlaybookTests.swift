import Foundation
import RampartCore
import RampartTesting
import Testing

/// Fixture folders under Fixtures/playbooks: each is a playbooks directory (with an optional
/// `lists/`), `items.ndjson` (indicators; `_via` and `_suggested` set provenance) and
/// `expected.json` (`matches`: the playbooks each item matches, in order; optionally
/// `first_failure`: why the first playbook did not match).
@Suite struct PlaybookFixtureTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/playbooks")
    static let cases = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()

    @Test(arguments: cases)
    func fixture(_ name: String) throws {
        let folder = Self.root.appendingPathComponent(name)
        let set = PlaybookSet(try PlaybookLoader.load(directory: folder.path, listsDirectory: folder.appendingPathComponent("lists").path, peers: []))
        let expected = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("expected.json"))) as? [String: Any])
        let matches = try #require(expected["matches"] as? [[String]])
        let failures = expected["first_failure"] as? [Any]
        let lines = try String(contentsOf: folder.appendingPathComponent("items.ndjson"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == matches.count, "items.ndjson and expected.json disagree on the number of items")
        for (index, line) in lines.enumerated() {
            var object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let via = object.removeValue(forKey: "_via") as? String ?? "api:fixture"
            let suggested = object.removeValue(forKey: "_suggested") as? [String] ?? []
            let json = try JSONValue.parse(Array(try JSONSerialization.data(withJSONObject: object)))
            let indicator = try Indicator(json: json, defaults: IndicatorDefaults(), now: Date())
            let subject = Subject(indicator, via: via, suggested: suggested)

            #expect(set.matches(for: subject).map(\.name) == matches[index], "\(name) item \(index + 1): \(line)")
            // The index never hides a playbook that a full evaluation would match.
            let linear = set.playbooks.filter { $0.match.holds(for: subject) }.map(\.name)
            #expect(Set(matches[index]).isSubset(of: linear))
            if let failures, let want = failures[index] as? String {
                #expect(set.explain(subject).first?.verdict == .failed(want), "\(name) item \(index + 1)")
            }
        }
    }
}

/// The exact text of typical mistakes: what the operator reads.
@Suite struct PlaybookErrorTests {
    static let mistakes: [(yaml: String, errors: [String])] = [
        ("match: {kind: ipv4}\nactions: []\n", ["1:1: the playbook is missing the required key 'name'"]),
        (
            "name: a\nmatch: {kind: ipv4}\nactoins: []\n",
            [
                "3:1: unknown key 'actoins' in the playbook (did you mean 'actions'?); expected one of: name, description, on, mode, priority, stop, match, actions",
                "1:1: the playbook is missing the required key 'actions'",
            ]
        ),
        (
            "name: a\nmatch: {kind: ipv5}\nactions: []\n",
            ["2:15: match.kind: unknown kind 'ipv5'; expected one of ipv4, ipv6, cidr, domain, url, md5, sha1, sha256, email"]
        ),
        ("name: a\nmatch: {confidence: {min: 120}}\nactions: []\n", ["2:27: match.confidence.min must be from 0 to 100, found 120"]),
        ("name: a\nmatch: {confidence: 80}\nactions: []\n", ["2:21: match.confidence must be a mapping of keys to values, found '80'"]),
        (
            "name: a\nmatch: {severity: {min: severe}}\nactions: []\n",
            ["2:25: match.severity.min: unknown severity 'severe'; expected low, medium, high or critical"]
        ),
        (
            "name: a\nmatch: {kind: ipv4}\nactions: [{block: {duration: 4 hours}}]\n",
            [
                "3:30: actions[0].block.duration: '4 hours' is not a duration; expected a number and a unit (ms, s, m, h, d, w) such as 90s, 15m, 4h or 7d"
            ]
        ),
        (
            "name: a\nmatch: {kind: domain}\nactions: [{block: {duration: 1h}}]\n",
            [
                "3:11: block acts on addresses and networks, but this playbook can match [domain]; limit match.kind to ipv4, ipv6 and cidr"
            ]
        ),
        (
            "name: a\nmatch: {tags: {any: [c2]}}\nactions: [{block: {duration: 1h}}]\n",
            [
                "3:11: block acts on addresses and networks, but this playbook can match [domain, email, md5, sha1, sha256, url]; limit match.kind to ipv4, ipv6 and cidr"
            ]
        ),
        (
            "name: a\nmatch: {kind: ipv4, value: {cidr: [10.0.0.1/8]}}\nactions: []\n",
            [
                "2:36: match.value.cidr: '10.0.0.1/8' has host bits set; the network is 10.0.0.0/8"
            ]
        ),
        (
            "name: a\nmatch: {kind: ipv4, value: {in_list: tor}}\nactions: []\n",
            ["2:38: match.value.in_list: no list named 'tor' in the lists directory (it has none)"]
        ),
        (
            "name: a\nmatch: {kind: domain, value: {regex: '(unclosed'}}\nactions: []\n",
            ["2:38: match.value.regex: '(unclosed' is not a regular expression playbooks take: a group is not closed"]
        ),
        (
            "name: a\nmatch: {kind: ipv4}\nactions: [{block: {duration: 1h}, exec: {argv: [x]}}]\n",
            [
                "3:11: actions[0] must hold exactly one action, such as {block: {duration: 4h}}; found 2"
            ]
        ),
        ("name: a\nmode: dry\nmatch: {kind: ipv4}\nactions: []\n", ["2:7: mode: expected one of enforce, simulate, found 'dry'"]),
        ("name: a\nmatch: {from: [soc]}\nactions: []\n", ["2:16: match.from: 'soc' must be api:KEY_NAME, peer:PEER_NAME or feed:FEED_NAME"]),
        (
            "name: a\nmatch: {any: [{sightings: {min: 2, within: 1h}}]}\nactions: []\n",
            [
                "2:16: sightings must be a key of match itself, not inside any, all or not"
            ]
        ),
        (
            "name: a\nmatch: {sightings: {min: 2, distinct: feed, within: 1h}}\nactions: []\n",
            [
                "2:39: match.sightings.distinct: expected one of source, via, origin, found 'feed'"
            ]
        ),
    ]

    @Test(arguments: mistakes.indices)
    func mistake(_ index: Int) {
        let (yaml, expected) = Self.mistakes[index]
        do {
            _ = try PlaybookLoader.parse(YAMLSource.parse(yaml, file: "p.yaml"), file: "p.yaml", lists: [:])
            Issue.record("accepted:\n\(yaml)")
        } catch {
            #expect(error.items.map { "\($0.line):\($0.column): \($0.message)" } == expected, "\(yaml)")
        }
    }

    @Test func duplicateNamesAcrossFiles() throws {
        let dir = Scratch.directory("rampart-pb")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for file in ["a.yaml", "b.yaml"] {
            try "name: same\nmatch: {kind: ipv4}\nactions: []\n".write(to: dir.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        #expect(throws: Diagnostics.self) { try PlaybookLoader.load(directory: dir.path, listsDirectory: nil, peers: []) }
        do {
            _ = try PlaybookLoader.load(directory: dir.path, listsDirectory: nil, peers: [])
        } catch {
            #expect(error.items.map(\.message) == ["the name 'same' is already used by \(dir.path)/a.yaml"])
        }
    }
}

@Suite struct EscalationUnitTests {
    @Test func durationsGrowByTheFactorUpToTheMaximum() {
        let escalation = Escalation(factor: 2, max: .seconds(7 * 86_400))
        let hours = [0, 1, 2, 3, 5, 6, 1000].map { escalation.duration(.seconds(4 * 3600), previous: $0).milliseconds / 3_600_000 }
        #expect(hours == [4, 8, 16, 32, 128, 168, 168])
        #expect(Escalation(factor: 1.5, max: .seconds(86_400)).duration(.seconds(3600), previous: 1) == .seconds(5400))
    }
}

@Suite struct ActionTemplateTests {
    @Test func unknownFieldsAreLoadErrors() {
        #expect(throws: ValueError.self) { try ActionTemplate("--ip {{vlue}}", output: .text) }
        do {
            _ = try ActionTemplate("{{vlue}}", output: .text)
        } catch {
            #expect(error.message.contains("did you mean 'value'?"))
        }
        #expect(throws: Never.self) { try ActionTemplate("{{value}} {{#tags}}{{.}},{{/tags}} {{playbook}}", output: .text) }
    }

    @Test func textIsVerbatimAndJSONIsEscaped() throws {
        let indicator = try Indicator(
            json: JSONValue.parse(Array(#"{"value": "8.8.8.8", "description": "a \"quoted\" <b>\n", "tags": ["x", "y"]}"#.utf8)),
            defaults: IndicatorDefaults(), now: Date())
        let item = Item(id: "i1", payload: .indicator(indicator), via: "api:t", origin: "n1", receivedAt: Date())
        #expect(try ActionTemplate("{{description}}", output: .text).render(item, playbook: "p") == "a \"quoted\" <b>\n")
        #expect(try ActionTemplate(#"{"text": "{{description}}"}"#, output: .json).render(item, playbook: "p") == #"{"text": "a \"quoted\" <b>\n"}"#)
        #expect(try ActionTemplate("{{#tags}}{{.}};{{/tags}}{{playbook}}", output: .text).render(item, playbook: "p") == "x;y;p")
    }
}

@Suite struct RuleFileNameTests {
    @Test func namesCannotEscapeTheRulesDirectory() {
        #expect(RuleAction.fileName(playbook: "p", value: "2a0e:1c80::/29") == "p-2a0e_1c80___29")
        #expect(RuleAction.fileName(playbook: "..", value: "../../etc/passwd") == "-.._.._etc_passwd")
        #expect(!RuleAction.fileName(playbook: "a", value: "x/\u{0}y\nz").contains("/"))
        #expect(RuleAction.fileName(playbook: "p", value: String(repeating: "a", count: 1000)).count == 128)
    }
}

/// Playbooks no index holds are turned away by their confidence, severity and TLP conditions
/// before their condition tree is walked: for every combination of those, the set matches
/// exactly what a full evaluation of every playbook matches.
@Suite struct PrefilterTests {
    @Test func theSetMatchesWhatAFullEvaluationMatches() throws {
        let conditions = [
            "confidence: {min: 61}", "confidence: {max: 40}", "confidence: {min: 30, max: 70}", "severity: {min: high}",
            "severity: {max: low}", "tlp: [green, clear]", "not: {tlp: [amber]}", "not: {tlp: [red, amber+strict]}",
            "any: [{severity: {min: critical}}, {confidence: {min: 90}}]", "all: [{tlp: [amber]}, {severity: {min: medium}}]",
            "not: {severity: {min: high}}",
        ]
        var playbooks: [Playbook] = []
        for (i, first) in conditions.enumerated() {
            for (j, second) in conditions.enumerated() where j >= i {
                let yaml = "name: p\(i)-\(j)\nmatch:\n  kind: ipv4\n  all: [{\(first)}, {\(second)}]\nactions: []\n"
                playbooks.append(try PlaybookLoader.parse(YAMLSource.parse(yaml, file: "p.yaml"), file: "p.yaml", lists: [:]))
                let flat = "name: q\(i)-\(j)\nmatch:\n  kind: ipv4\n  \(first)\nactions: []\n"
                if i == j { playbooks.append(try PlaybookLoader.parse(YAMLSource.parse(flat, file: "q.yaml"), file: "q.yaml", lists: [:])) }
            }
        }
        let set = PlaybookSet(playbooks)
        var matched = 0
        for confidence in [0, 30, 40, 41, 60, 61, 70, 71, 90, 100] {
            for severity in Severity.allCases {
                for tlp in TLP.allCases {
                    let indicator = Indicator(kind: .ipv4, value: "77.90.185.20", confidence: confidence, severity: severity, tlp: tlp)
                    let subject = Subject(indicator, via: "api:test")
                    let linear = set.playbooks.filter { $0.match.holds(for: subject) }.map(\.name)
                    #expect(set.matches(for: subject).map(\.name) == linear, "confidence \(confidence), \(severity), \(tlp)")
                    matched += linear.count
                }
            }
        }
        #expect(matched > 0)
    }
}
