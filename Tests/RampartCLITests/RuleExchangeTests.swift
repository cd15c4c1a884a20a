import Foundation
import GRDB
import RampartCore
import Testing

/// Detection rules between two real daemons: a posts or renders rules and shares them, b installs
/// what it receives.
@Suite(.serialized) struct RuleExchangeTests {
    static let sigmaDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../RampartCoreTests/Fixtures/sigma").standardizedFileURL
    static let sigmaFiles = try! FileManager.default.contentsOfDirectory(atPath: sigmaDirectory.path).filter { $0.hasSuffix(".yml") }.sorted()

    /// a: every rule (posted, or rendered from a C2 indicator) goes to its peers.
    static let shareRules = """
        name: share-rules
        on: rule
        match: {}
        actions:
          - propagate: {to: all, suggest: [rule]}
        """
    static let renderC2 = """
        name: c2-suricata
        match: {kind: [ipv4], tags: {any: [c2]}}
        actions:
          - rule:
              format: suricata
              template: 'drop ip {{value}} any -> $HOME_NET any (msg:"rampart {{playbook}} {{value}}"; sid:{{sid}}; rev:1;)'
        """
    /// b: installs what a sends.
    static let installFromA = """
        name: install-from-a
        on: rule
        match: {from: [peer:a]}
        actions:
          - rule: {}
        """

    static func startedPair() throws -> (MeshNode, MeshNode) {
        let a = try MeshNode("a", playbooks: ["share.yaml": shareRules, "render.yaml": renderC2])
        let b = try MeshNode("b", playbooks: ["install.yaml": installFromA])
        try a.connect([b]) { _ in "share: {max_tlp: amber}" }
        try b.connect([a]) { _ in "accept: {items: [indicator, rule, revoke], suggested: [rule]}" }
        try a.start()
        try b.start()
        return (a, b)
    }

    static func installed(at node: MeshNode) throws -> [String: String] {
        let root = node.sandbox.directory.appendingPathComponent("state/rules")
        var files: [String: String] = [:]
        for format in ["sigma", "suricata", "snort", "yara"] {
            let directory = root.appendingPathComponent(format)
            // Not the temporary file of an atomic write in progress (hidden, renamed once written).
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] where !name.hasPrefix(".") {
                files["\(format)/\(name)"] = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            }
        }
        return files
    }

    func post(_ text: String, to node: MeshNode, _ query: String) throws -> (Int, JSONValue?) {
        try node.api("POST", "/v1/rules?\(query)", text, contentType: "text/plain")
    }

    @Test func sigmaAndRenderedSuricataRulesReachThePeerByteForByteAndRevocationRemovesThem() throws {
        let (a, b) = try Self.startedPair()
        defer {
            a.stop()
            b.stop()
        }
        var items: [String: String] = [:]
        for file in Self.sigmaFiles {
            let text = try String(contentsOf: Self.sigmaDirectory.appendingPathComponent(file), encoding: .utf8)
            let (status, answer) = try post(text, to: a, "format=sigma&tlp=green")
            #expect(status == 202, "\(file)")
            if case .string(let name)? = answer?["name"], case .string(let id)? = answer?["id"] { items["sigma/\(name).yml"] = id }
        }
        // TLP:RED never leaves a.
        let red = try String(contentsOf: Self.sigmaDirectory.appendingPathComponent(Self.sigmaFiles[0]), encoding: .utf8)
            .replacingOccurrences(of: "2975af79-28c4-4d2f-a951-9095f229df29", with: "00000000-0000-4000-8000-000000000001")
        #expect(try post(red, to: a, "format=sigma&tlp=red&name=red-rule").0 == 202)
        // A C2 indicator at a: the Suricata rule it renders goes to b too.
        try a.ingest(["198.18.7.1"], "confidence=90&tags=c2")

        #expect(
            try eventually(10) {
                let files = try Self.installed(at: b)
                return files.count == Self.sigmaFiles.count + 1 && files["suricata/c2-suricata-198.18.7.1.rules"] != nil
            })
        let atB = try Self.installed(at: b)
        for file in Self.sigmaFiles {
            let original = try Data(contentsOf: Self.sigmaDirectory.appendingPathComponent(file))
            let installed = atB.first { $0.value.utf8.elementsEqual(original) }
            #expect(installed?.key.hasPrefix("sigma/") == true, "\(file) is installed byte for byte at b")
        }
        let suricata = try #require(atB["suricata/c2-suricata-198.18.7.1.rules"])
        #expect(suricata == #"drop ip 198.18.7.1 any -> $HOME_NET any (msg:"rampart c2-suricata 198.18.7.1"; sid:1000000; rev:1;)"#)
        // a installs the rule it rendered (it has no playbook installing posted ones); the red rule went nowhere.
        #expect(try Self.installed(at: a) == ["suricata/c2-suricata-198.18.7.1.rules": suricata])
        #expect(
            try !b.auditText().contains {
                $0.contains("00000000-0000-4000-8000-000000000001")
            })
        let withheld = try a.auditDetails("action.propagate").filter { $0.contains("tlp_red") }
        #expect(withheld.count == 1)

        // `rampart rules list` at b shows where each came from.
        let listed = try run(rampartBinary, ["rules", "list", "--config", b.sandbox.configPath, "--token", Sandbox.adminToken])
        #expect(
            listed.status == 0 && listed.stdout.contains("cobalt_strike_dns_beaconing") && listed.stdout.contains("peer:a"),
            "\(listed.stdout)\(listed.stderr)")

        // Withdrawn at a: gone at b.
        let cobalt = try #require(items["sigma/cobalt_strike_dns_beaconing.yml"])
        let deleted = try run(
            rampartBinary, ["rules", "delete", cobalt, "--reason", "superseded", "--config", a.sandbox.configPath, "--token", Sandbox.adminToken])
        #expect(deleted.status == 0, "\(deleted.stdout)\(deleted.stderr)")
        #expect(try eventually(5) { try Self.installed(at: b)["sigma/cobalt_strike_dns_beaconing.yml"] == nil })
        let removal = try b.auditDetails("rule.removed").first
        #expect(removal?.contains("superseded") == true && removal?.contains("peer:a") == true)
        #expect(try Self.installed(at: b).count == Self.sigmaFiles.count)
    }

    @Test func aMalformedRuleFromAPeerIsRefusedAndAudited() throws {
        let a = try MeshNode("a", playbooks: [:])
        let b = try MeshNode("b", playbooks: ["install.yaml": Self.installFromA])
        try b.connect([a])
        try b.start()
        defer { b.stop() }
        func ruleItem(_ format: RuleFormat, _ content: String, name: String) -> [UInt8] {
            var w = JSONWriter()
            w.beginObject()
            w.field("id", IDGenerator.shared.next())
            w.field("type", "rule")
            w.key("rule")
            w.beginObject()
            w.field("format", format.rawValue)
            w.field("name", name)
            w.field("content", content)
            w.endObject()
            w.field("origin", "a")
            w.endObject()
            return w.bytes
        }
        let good = #"alert ip any any -> any any (msg:"from a"; sid:9000001; rev:1;)"#
        let entries = [
            ruleItem(.suricata, good, name: "good"),
            ruleItem(.suricata, #"alert ip any any -> any any (msg:"unterminated; sid:9000002;)"#, name: "bad-quote"),
            ruleItem(.yara, "rule X { strings: $a = \"x\" }", name: "no-condition"),
            ruleItem(.suricata, good.replacingOccurrences(of: "9000001", with: "9000003"), name: "../../../etc/cron.d/evil"),
        ]
        let message = PeerMessage.encode(path: ["a"], hopsLeft: 0, entries: entries, at: Date())
        #expect(try PeerTests.postSigned(message, to: b, key: PeerTests.key(of: a)) == 200)
        #expect(try eventually(5) { try Self.installed(at: b).keys.sorted() == ["suricata/good.rules"] })
        let refused = try b.auditDetails("item.refused")
        #expect(refused.count == 3)
        #expect(refused.allSatisfy { $0.contains(#""code":"invalid_rule""#) })
        #expect(
            refused[0].contains("unterminated quoted text") && refused[1].contains("no 'condition:' section")
                && refused[2].contains("must be 1-128 letters"))
        // Nothing escaped the rules directory.
        #expect(!FileManager.default.fileExists(atPath: b.sandbox.directory.appendingPathComponent("state/etc").path))
    }

    /// pySigma's own checks (sigma-cli, in .venv from deploy/setup-dev.sh) on what b installed.
    @Test(.enabled(if: sigmaCLI != nil, "sigma-cli is not in .venv (deploy/setup-dev.sh installs it from PyPI; it could not here)"))
    func installedSigmaRulesPassSigmaCheck() throws {
        let (a, b) = try Self.startedPair()
        defer {
            a.stop()
            b.stop()
        }
        for file in Self.sigmaFiles {
            let text = try String(contentsOf: Self.sigmaDirectory.appendingPathComponent(file), encoding: .utf8)
            #expect(try post(text, to: a, "format=sigma&tlp=green").0 == 202)
        }
        #expect(try eventually(10) { try Self.installed(at: b).count == Self.sigmaFiles.count })
        let directory = b.sandbox.directory.appendingPathComponent("state/rules/sigma").path
        let excluded = ["attacktag", "d3_fendtag", "fieldname_logsource", "specific_instead_of_generic_logsource"].flatMap { ["--exclude", $0] }
        let checked = try run(sigmaCLI!, ["check", "--fail-on-error", "--fail-on-issues"] + excluded + [directory])
        #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")
        #expect(checked.stdout.contains("Found 0 errors, 0 condition errors and 0 issues"), "\(checked.stdout)")
        // And it does fail on a rule it finds wrong: the check can fail.
        let broken = URL(fileURLWithPath: directory).appendingPathComponent("zz-broken.yml")
        try "title: x\nlogsource: {category: dns}\ndetection: {sel: {query: a}, condition: nosuch}\n".write(
            to: broken, atomically: true, encoding: .utf8)
        #expect(try run(sigmaCLI!, ["check", "--fail-on-error", "--fail-on-issues"] + excluded + [directory]).status != 0)
    }
}

/// `.venv/bin/sigma`, when deploy/setup-dev.sh could install it.
let sigmaCLI: String? = {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.venv/bin/sigma").standardizedFileURL.path
    return FileManager.default.isExecutableFile(atPath: path) ? path : nil
}()
