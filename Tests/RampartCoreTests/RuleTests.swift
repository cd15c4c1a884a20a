import Foundation
import RampartCore
import Testing

/// Real SigmaHQ rules (Fixtures/sigma, see SOURCE.md there) and broken variants of them; rules in
/// the other formats written here.
@Suite struct RuleSyntaxTests {
    static let sigmaDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/sigma")

    static func sigma(_ file: String) throws -> String {
        try String(contentsOf: sigmaDirectory.appendingPathComponent(file), encoding: .utf8)
    }

    static func problems(_ format: RuleFormat, _ content: String, maxBytes: Int = Rule.defaultMaxBytes) -> [String] {
        do {
            _ = try Rule(format: format, content: content, maxBytes: maxBytes)
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    @Test(arguments: [
        ("net_dns_mal_cobaltstrike.yml", "2975af79-28c4-4d2f-a951-9095f229df29", "2022-10-09", Severity.critical, "cobalt_strike_dns_beaconing"),
        ("net_dns_wannacry_killswitch_domain.yml", "3eaf6218-3bed-4d8a-8707-274096f12a18", "2022-03-24", .high, "wannacry_killswitch_domain"),
        ("net_firewall_apt_equationgroup_c2.yml", "881834a4-6659-4773-821e-1c151789d873", "2021-11-27", .high, "equation_group_c2_communication"),
        ("net_firewall_cleartext_protocols.yml", "d7fb8f0e-bd5f-45c2-b467-19571c490d7e", "2022-10-10", .low, "cleartext_protocol_usage"),
        ("proxy_telegram_api.yml", "b494b165-6634-483d-8c47-2026a6c52372", "2023-05-18", .medium, "telegram_api_access"),
        ("zeek_rdp_public_listener.yml", "1fc0809e-06bf-4de3-ad52-25e5263b7623", "2024-03-13", .high, "publicly_accessible_rdp_service"),
    ])
    func realSigmaRulesAreValidAndSayWhoTheyAre(file: String, id: String, version: String, level: Severity, name: String) throws {
        let rule = try Rule(format: .sigma, content: Self.sigma(file))
        #expect(rule.ruleID == id)
        #expect(rule.version == version)
        #expect(rule.severity == level)
        #expect(rule.name == name)
        #expect(rule.relativePath == "rules/sigma/\(name).yml")
    }

    @Test func brokenSigmaRulesSayWhereAndWhat() throws {
        let good = try Self.sigma("net_dns_mal_cobaltstrike.yml")
        func broken(_ from: String, _ to: String) -> [String] {
            #expect(good.contains(from))
            return Self.problems(.sigma, good.replacingOccurrences(of: from, with: to))
        }
        #expect(
            broken("level: critical", "level: severe") == ["26:8: 'level' must be one of informational, low, medium, high, critical; found 'severe'"])
        #expect(
            broken("status: test", "status: beta") == [
                "3:9: 'status' must be one of stable, test, experimental, deprecated, unsupported; found 'beta'"
            ])
        #expect(
            broken("id: 2975af79-28c4-4d2f-a951-9095f229df29", "id: 42") == [
                "2:5: 'id' must be a UUID, such as 2975af79-28c4-4d2f-a951-9095f229df29; found '42'"
            ])
        #expect(
            broken("modified: 2022-10-09", "modified: last tuesday") == ["10:11: 'modified' must be a date such as 2024-05-10; found 'last tuesday'"])
        #expect(broken("    condition: 1 of selection*\n", "") == ["17:5: 'detection' needs a 'condition', such as 'condition: selection'"])
        #expect(
            broken("condition: 1 of selection*", "condition: selection1 or filter")
                == ["23:16: 'detection.condition' names 'filter', which is not a search identifier of detection (it has selection1, selection2)"]
        )
        #expect(
            broken("condition: 1 of selection*", "condition: (selection1 or selection2") == [
                "23:16: 'detection.condition' has unbalanced parentheses: '(selection1 or selection2'"
            ])
        #expect(broken("logsource:\n    category: dns\n", "") == ["1:1: a Sigma rule needs 'logsource'"])
        #expect(broken("title: Cobalt Strike DNS Beaconing\n", "") == ["1:1: a Sigma rule needs 'title'"])
        #expect(broken("    category: dns", "    definition: dns") == ["15:5: 'logsource' must name a category, a product or a service"])
        // Several problems at once, in the order of the text.
        #expect(broken("status: test", "status: beta").count == 1)
        let two = Self.problems(
            .sigma, good.replacingOccurrences(of: "level: critical", with: "level: x").replacingOccurrences(of: "status: test", with: "status: y"))
        #expect(two.map { $0.prefix(3) } == ["3:9", "26:"])
        #expect(Self.problems(.sigma, "- just\n- a list\n") == ["1:1: a Sigma rule is a mapping of keys (title, logsource, detection, ...)"])
        #expect(Self.problems(.sigma, "title: [unclosed\n").first?.contains("invalid YAML") == true)
    }

    @Test func hostileOrOversizedRulesAreRefused() throws {
        let bomb = "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n"
        #expect(Self.problems(.sigma, bomb) == ["1:4: anchors (&name) are not supported; write the value out"])
        #expect(Self.problems(.sigma, String(repeating: "[", count: 10_000)).first?.contains("nesting") == true)
        let big = try Self.sigma("proxy_telegram_api.yml") + "\n# " + String(repeating: "x", count: 300_000) + "\n"
        #expect(Self.problems(.sigma, big) == ["the rule is \(big.utf8.count) bytes; at most 262144 are accepted"])
        #expect(
            Self.problems(.suricata, "alert ip any any -> any any (msg:\"x\"; sid:1;)", maxBytes: 20) == [
                "the rule is 45 bytes; at most 20 are accepted"
            ])
        #expect(Self.problems(.suricata, "alert ip any any -> any any (msg:\"a\u{0}b\"; sid:1;)") == ["1:36: control character U+0 in the rule"])
        // A second document (a rule collection) is not one rule.
        let two = try Self.sigma("proxy_telegram_api.yml") + "\n---\n" + Self.sigma("proxy_telegram_api.yml")
        #expect(!Self.problems(.sigma, two).isEmpty)
    }

    @Test func suricataAndSnortRules() throws {
        let rule = try Rule(
            format: .suricata,
            content:
                #"alert http $HOME_NET any -> $EXTERNAL_NET any (msg:"ET MALWARE beacon \"x\"; (y)"; flow:established,to_server; content:"GET"; http_method; sid:2024217; rev:3;)"#
        )
        #expect(rule.ruleID == "sid:2024217" && rule.version == "3" && rule.name == "sid-2024217" && rule.title == #"ET MALWARE beacon \"x\"; (y)"#)
        let commented = "# written by hand\n\ndrop ip [198.51.100.0/24,!198.51.100.7] any <> any any (msg:\"x\"; gid:1; sid:7; rev:1;)\n"
        #expect(try Rule(format: .suricata, content: commented).ruleID == "gid:1:sid:7")
        #expect(try Rule(format: .snort, content: #"alert http (msg:"snort 3 service rule"; sid:1000001;)"#).ruleID == "sid:1000001")

        #expect(
            Self.problems(.suricata, #"alert ip any any -> any any (msg:"x; sid:1;)"#) == [
                #"1:34: unterminated quoted text (a '"' inside a value is written \")"#
            ])
        #expect(
            Self.problems(.suricata, #"alert ip any any -> any any (msg:"x"; rev:1;)"#) == [
                "1:29: a Suricata rule needs a sid option, such as sid:1000001"
            ])
        #expect(Self.problems(.suricata, #"alert ip any any -> any any (sid:1;)"#) == ["1:29: a Suricata rule needs a msg option"])
        #expect(
            Self.problems(.suricata, #"alert ip any any -> any any (msg:"x"; sid:abc;)"#) == [
                "1:39: 'sid' must be a positive whole number, found 'abc'"
            ])
        #expect(
            Self.problems(.suricata, #"alert ip any any -> any any (msg:"x"; sid:1)"#) == [
                "1:39: option 'sid:1' does not end with ';' before the closing parenthesis"
            ])
        #expect(Self.problems(.suricata, #"alert ip any any -> any any (msg:"x"; sid:1; "#) == ["1:45: the options are not closed with ')'"])
        #expect(
            Self.problems(.suricata, #"alert ip any any -> any any (msg:"x"; sid:1;) trailing"#) == [
                "1:47: text after the closing parenthesis of the options"
            ])
        #expect(Self.problems(.suricata, #"alarm ip any any -> any any (msg:"x"; sid:1;)"#).first?.hasPrefix("1:1: unknown action 'alarm'") == true)
        #expect(
            Self.problems(.suricata, #"alert ip any any <- any any (msg:"x"; sid:1;)"#) == [
                "1:1: the header's direction must be -> or <> or =>, found '<-'"
            ])
        #expect(
            Self.problems(.suricata, #"alert ip [1.2.3.4 any -> any any (msg:"x"; sid:1;)"#) == ["1:1: unbalanced brackets in the header: '[1.2.3.4'"]
        )
        #expect(Self.problems(.suricata, #"alert http (msg:"x"; sid:1;)"#).first?.contains("found 2 words") == true)
        let twoRules = "alert ip any any -> any any (msg:\"a\"; sid:1;)\nalert ip any any -> any any (msg:\"b\"; sid:2;)\n"
        #expect(Self.problems(.suricata, twoRules) == ["2:1: one rule per request: found 2 rules, on lines 1, 2"])
        #expect(Self.problems(.snort, "# nothing\n") == ["no rule found (only blank or comment lines)"])
    }

    @Test func yaraRules() throws {
        let text = """
            import "pe"
            /* a comment with a { brace */
            private rule Beacon_2024 : apt c2 {
                meta:
                    author = "soc } team"
                strings:
                    $a = "GET /{id}" ascii wide // not a } brace
                    $h = { 6A 40 [2-4] ( 01 | 02 ) }
                    $r = /beacon\\/[a-z]{8}/ nocase
                condition:
                    pe.is_pe and any of them
            }
            """
        let rule = try Rule(format: .yara, content: text)
        #expect(rule.ruleID == "Beacon_2024" && rule.name == "beacon_2024" && rule.relativePath == "rules/yara/beacon_2024.yar")
        #expect(Self.problems(.yara, "rule X {\n  condition: true\n") == ["1:8: the '{' of rule X is never closed"])
        #expect(Self.problems(.yara, "rule X {\n  strings: $a = \"x\"\n}\n") == ["rule X has no 'condition:' section"])
        #expect(Self.problems(.yara, "rule X { condition: true }\nrule Y { condition: true }") == ["one rule per request: found 2 rules (X, Y)"])
        #expect(Self.problems(.yara, "rule X { strings: $a = \"unterminated\n condition: $a }") == ["1:24: unterminated string"])
        #expect(
            Self.problems(.yara, "rule condition { condition: true }") == [
                "1:1: 'rule' must be followed by the rule's name (letters, digits, '_', not a keyword)"
            ])
        #expect(Self.problems(.yara, "rule X { condition: true } }") == ["1:28: expected import, include or a rule, found '}'"])
        #expect(Self.problems(.yara, "") == ["no rule found; a YARA rule reads rule NAME { condition: ... }"])
    }

    @Test func namesCannotNameAPathOutsideTheRulesDirectory() throws {
        let content = #"alert ip any any -> any any (msg:"x"; sid:1;)"#
        for bad in ["../../etc/passwd", "a/b", ".hidden", "", "x\u{0}y", String(repeating: "a", count: 129)] {
            #expect(throws: RuleError.self) { try Rule(format: .suricata, content: content, name: bad) }
        }
        #expect(try Rule(format: .suricata, content: content, name: "ok-name_1.2").relativePath == "rules/suricata/ok-name_1.2.rules")
        // A derived name is made safe: a Sigma title with slashes and dots.
        let sigma = try Self.sigma("proxy_telegram_api.yml").replacingOccurrences(
            of: "title: Telegram API Access", with: "title: ../../etc/Passwd Ünïcode")
        #expect(try Rule(format: .sigma, content: sigma).name == "_.._etc_passwd__n_code")
    }

    @Test func aRuleItemRoundTripsThroughItsJSON() throws {
        let rule = try Rule(
            format: .sigma, content: Self.sigma("proxy_telegram_api.yml"), tlp: .green, confidence: 80, tags: ["c2"],
            parent: IDGenerator.shared.next())
        let item = Item(id: IDGenerator.shared.next(), payload: .rule(rule), via: "api:soc", origin: "a", receivedAt: Date())
        let back = try Item(stored: JSONValue.parse(item.json), now: Date())
        #expect(back.rule == rule)
        // On the wire, a rule whose content was tampered with into something invalid is refused.
        let wire = String(decoding: item.wireJSON, as: UTF8.self).replacingOccurrences(of: "level: medium", with: "level: urgent")
        let message = PeerMessage.encode(path: ["a"], hopsLeft: 1, entries: [Array(wire.utf8)], at: Date())
        let decoded = try PeerMessage.decode(message, via: "peer:a", maxItems: 10, now: Date())
        #expect(throws: ValueError.self) { try decoded.entries[0].get() }
        if case .failure(let error) = decoded.entries[0] { #expect(error.code == .invalidRule && error.message.contains("'level' must be one of")) }
    }
}

@Suite struct RulePlaybookTests {
    static func load(_ yaml: String) throws(Diagnostics) -> Playbook {
        try PlaybookLoader.parse(YAMLSource.parse(yaml, file: "p.yaml"), file: "p.yaml", lists: [:])
    }

    static func errors(_ yaml: String) -> [String] {
        do {
            _ = try load(yaml)
            return []
        } catch {
            return error.items.map(\.description)
        }
    }

    @Test func rulePlaybooksMatchRulesOnly() throws {
        let install = try Self.load("name: install\non: rule\nmatch: {format: [sigma], severity: {min: high}}\nactions:\n  - rule: {}\n")
        let block = try Self.load("name: block\nmatch: {kind: [ipv4]}\nactions:\n  - block: {duration: 1h}\n")
        let set = PlaybookSet([install, block])
        let sigma = try Rule(format: .sigma, content: RuleSyntaxTests.sigma("net_dns_mal_cobaltstrike.yml"))
        let low = try Rule(format: .sigma, content: RuleSyntaxTests.sigma("net_firewall_cleartext_protocols.yml"))
        let suricata = try Rule(format: .suricata, content: #"alert ip any any -> any any (msg:"x"; sid:1;)"#)
        #expect(set.matches(for: Subject(sigma, via: "api:x")).map(\.name) == ["install"])
        #expect(set.matches(for: Subject(low, via: "api:x")).isEmpty)
        #expect(set.matches(for: Subject(suricata, via: "api:x")).isEmpty)
        #expect(set.matches(for: Subject(Indicator(kind: .ipv4, value: "192.0.2.1"), via: "api:x")).map(\.name) == ["block"])
        let verdicts = set.explain(Subject(low, via: "api:x"))
        #expect(verdicts.map(\.verdict) == [.failed("it runs on indicator items"), .failed("severity low is below high")])
        let item = Item(id: "x", payload: .rule(sigma), via: "api:x", origin: "a", receivedAt: Date())
        #expect(
            install.explain(item, in: PlanContext(nodeID: "a", peers: [], policy: SafetyPolicy(), at: Date())) == [
                "rule: install rules/sigma/cobalt_strike_dns_beaconing.yml (sigma rule 2975af79-28c4-4d2f-a951-9095f229df29, version 2022-10-09)"
            ])
    }

    @Test func mistakesInRulePlaybooksAreReportedWithTheirPlace() {
        #expect(
            Self.errors("name: p\non: rule\nmatch: {kind: [ipv4]}\nactions:\n  - rule: {}\n")
                == [
                    "p.yaml:3:9: match.kind applies to indicators; a playbook on: rule can match format, confidence, severity, tlp, tags, from and suggested"
                ]
        )
        #expect(
            Self.errors("name: p\non: rule\nmatch: {}\nactions:\n  - block: {duration: 1h}\n")
                == ["p.yaml:5:5: block acts on addresses and networks; a playbook on: rule can rule (install), propagate, notify or exec"]
        )
        #expect(
            Self.errors("name: p\non: rule\nmatch: {}\nactions:\n  - rule: {format: suricata, template: x}\n")
                == ["p.yaml:5:11: on: rule, actions[0].rule installs the rule as received and takes no keys: write rule: {}"]
        )
        #expect(
            Self.errors("name: p\nmatch: {format: [sigma]}\nactions:\n  - exec: {argv: [/bin/true]}\n") == [
                "p.yaml:2:9: match.format applies to rules; add on: rule to the playbook to match rules"
            ])
        #expect(
            Self.errors("name: p\non: rule\nmatch: {format: [sigmaa]}\nactions:\n  - rule: {}\n").first?.contains("unknown rule format 'sigmaa'")
                == true)
        #expect(
            Self.errors("name: p\nmatch: {kind: [ipv4]}\nactions:\n  - rule: {}\n").first?.contains("is missing the required key 'format'") == true)
    }
}
