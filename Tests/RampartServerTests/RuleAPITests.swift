import Foundation
import Hummingbird
import HummingbirdTesting
import RampartCore
import RampartServer
import RampartTesting
import Testing

/// `POST /v1/rules`, `GET /v1/rules`, `DELETE /v1/rules/{item}` and the rule items that `rule`
/// actions render, on one in-process daemon.
@Suite struct RuleAPITests {
    static let sigmaDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../RampartCoreTests/Fixtures/sigma").standardizedFileURL

    static func sigma(_ file: String) throws -> String {
        try String(contentsOf: sigmaDirectory.appendingPathComponent(file), encoding: .utf8)
    }

    static let install = """
        name: install-sigma
        on: rule
        match: {format: [sigma, suricata]}
        actions:
          - rule: {}
        """
    static let render = """
        name: c2-suricata
        match: {kind: [ipv4], tags: {any: [c2]}}
        actions:
          - rule:
              format: suricata
              template: 'drop ip {{value}} any -> $HOME_NET any (msg:"rampart {{playbook}}"; sid:{{sid}}; rev:1;)'
        """
    static let broken = """
        name: broken-yara
        match: {kind: [ipv4], tags: {any: [broken]}}
        actions:
          - rule: {format: yara, template: 'rule x_{{sid}} { strings: $a = "{{value}}" }'}
        """
    /// A rule playbook reacting to rendered rules too: records each rule item's id.
    static let seen = """
        name: seen
        on: rule
        match: {format: [suricata]}
        actions:
          - exec: {argv: [/bin/sh, -c, 'echo "$RAMPART_ITEM_ID" >> "$0"', OUT]}
        """

    @Test func aPostedSigmaRuleIsInstalledByteForByteAndANewerVersionReplacesIt() async throws {
        let node = try TestNode(playbooks: ["install": Self.install])
        let rules = URL(fileURLWithPath: node.config.stateDirectory).appendingPathComponent("rules/sigma")
        let text = try Self.sigma("net_dns_mal_cobaltstrike.yml")
        try await node.run { client, _ in
            let posted = try await client.call(
                .post, "/v1/rules?tlp=green&tags=c2", as: "ingest", contentType: "application/x-sigma+yaml", body: text)
            #expect(posted.status == .accepted)
            #expect(posted["rule_id"] as? String == "2975af79-28c4-4d2f-a951-9095f229df29" && posted["version"] as? String == "2022-10-09")
            let file = rules.appendingPathComponent("cobalt_strike_dns_beaconing.yml")
            #expect(try Data(contentsOf: file) == Data(text.utf8))

            let listed = try await client.call(.get, "/v1/rules", as: "read")
            let entry = try #require((listed["rules"] as? [[String: Any]])?.first)
            #expect(entry["item"] as? String == posted["id"] as? String)
            #expect(entry["path"] as? String == "rules/sigma/cobalt_strike_dns_beaconing.yml" && entry["via"] as? String == "api:feeder")

            // A newer version (later `modified`) replaces it; an older one is refused and audited.
            let newer = text.replacingOccurrences(of: "modified: 2022-10-09", with: "modified: 2024-01-01").replacingOccurrences(
                of: "post.1", with: "post.2")
            #expect(try await client.call(.post, "/v1/rules?format=sigma", as: "ingest", body: newer).status == .accepted)
            #expect(try String(contentsOf: file, encoding: .utf8) == newer)
            #expect(try await client.call(.post, "/v1/rules?format=sigma", as: "ingest", body: text).status == .accepted)
            #expect(try String(contentsOf: file, encoding: .utf8) == newer)
            // Another rule under a name that is taken is refused too.
            let other = text.replacingOccurrences(of: "2975af79-28c4-4d2f-a951-9095f229df29", with: "11111111-2222-4333-8444-555555555555")
            #expect(try await client.call(.post, "/v1/rules?format=sigma", as: "ingest", body: other).status == .accepted)
            let refusals = try await client.auditEvents().filter { $0["event"] as? String == "rule.refused" }.compactMap {
                ($0["detail"] as? [String: Any])?["reason"] as? String
            }
            let installed = (try await client.call(.get, "/v1/rules", as: "read")["rules"] as? [[String: Any]])?.first?["item"] as? String ?? ""
            #expect(
                refusals == [
                    "version 2022-10-09 is older than the installed version 2024-01-01 (item \(installed))",
                    "the name cobalt_strike_dns_beaconing belongs to the installed rule 2975af79-28c4-4d2f-a951-9095f229df29",
                ])
            #expect(try FileManager.default.contentsOfDirectory(atPath: rules.path) == ["cobalt_strike_dns_beaconing.yml"])
        }
    }

    @Test func badRulesGetProblemsThatSayWhere() async throws {
        let node = try TestNode(extraYAML: "http: {max_rule: 2KiB}", playbooks: ["install": Self.install])
        try await node.run { client, _ in
            let broken = try Self.sigma("proxy_telegram_api.yml").replacingOccurrences(of: "level: medium", with: "level: urgent")
            let refused = try await client.call(.post, "/v1/rules?format=sigma", as: "ingest", body: broken)
            #expect(refused.status == .unprocessableContent && refused.problemCode == "invalid_rule")
            let errors = refused["errors"] as? [[String: Any]] ?? []
            #expect(
                errors.count == 1 && errors[0]["line"] as? Int == 29
                    && (errors[0]["error"] as? String)?.hasPrefix("29:8: 'level' must be one of") == true)
            let big = try Self.sigma("proxy_telegram_api.yml") + "# " + String(repeating: "x", count: 3000)
            let tooBig = try await client.call(.post, "/v1/rules?format=sigma", as: "ingest", body: big)
            #expect(tooBig.status == .contentTooLarge)
            let unknown = try await client.call(.post, "/v1/rules", as: "ingest", contentType: "text/plain", body: "rule x { condition: true }")
            #expect(unknown.status == .unsupportedMediaType && unknown.problemCode == "unknown_rule_format")
            #expect(
                try await client.call(.post, "/v1/rules?format=yara&colour=red", as: "ingest", body: "rule x { condition: true }").problemCode
                    == "invalid_parameter")
            #expect(
                try await client.call(.post, "/v1/rules?format=yara&name=../x", as: "ingest", body: "rule x { condition: true }").problemCode
                    == "invalid_rule")
            #expect(try await client.call(.post, "/v1/rules?format=yara", as: "read", body: "rule x { condition: true }").status == .forbidden)
            // Nothing refused was stored.
            #expect((try await client.call(.get, "/v1/rules", as: "read")["rules"] as? [[String: Any]])?.isEmpty == true)
        }
    }

    @Test func aRenderedRuleIsARuleItemOfItsOwnThatRulePlaybooksSeeAndRevocationRemoves() async throws {
        let out = Scratch.directory("seen").path
        let node = try TestNode(playbooks: [
            "render": Self.render, "broken": Self.broken, "seen": Self.seen.replacingOccurrences(of: "OUT", with: out),
        ])
        let state = URL(fileURLWithPath: node.config.stateDirectory)
        try await node.run { client, _ in
            let posted = try await client.call(.post, "/v1/indicators?tags=c2", as: "ingest", contentType: "text/plain", body: "77.90.185.20")
            let indicator = try #require((posted["ids"] as? [String])?.first)
            // The same indicator again renders the same rule: no second rule item.
            _ = try await client.call(.post, "/v1/indicators?tags=c2", as: "ingest", contentType: "text/plain", body: "77.90.185.20")
            let listed = try await client.call(.get, "/v1/rules?content=true", as: "read")
            let rule = try #require((listed["rules"] as? [[String: Any]])?.first)
            #expect((listed["rules"] as? [[String: Any]])?.count == 1)
            #expect(
                rule["parent"] as? String == indicator && rule["rule_id"] as? String == "sid:1000000" && rule["playbook"] as? String == "c2-suricata")
            let item = try #require(rule["item"] as? String)
            #expect(try await eventually { (try? String(contentsOfFile: out, encoding: .utf8)) == "\(item)\n" })
            let path = state.appendingPathComponent("rules/suricata/c2-suricata-77.90.185.20.rules").path
            #expect(FileManager.default.fileExists(atPath: path))

            // A template that renders an invalid rule: audited, nothing written.
            _ = try await client.call(.post, "/v1/indicators?tags=broken", as: "ingest", contentType: "text/plain", body: "77.90.185.21")
            let invalid = try await client.auditEvents().filter { $0["event"] as? String == "rule.invalid" }
            #expect(
                invalid.count == 1 && ((invalid.first?["detail"] as? [String: Any])?["error"] as? String)?.contains("no 'condition:' section") == true
            )
            #expect(!FileManager.default.fileExists(atPath: state.appendingPathComponent("rules/yara").path))

            let revoked = try await client.call(.delete, "/v1/rules/\(item)", as: "admin")
            #expect(revoked["removed"] as? [String] == ["rules/suricata/c2-suricata-77.90.185.20.rules"])
            #expect(!FileManager.default.fileExists(atPath: path))
            #expect(try await client.call(.delete, "/v1/rules/\(indicator)", as: "admin").status == .notFound)
        }
        // A file no installed rule names is removed at the next start; a missing one comes back.
        try "stray".write(toFile: state.appendingPathComponent("rules/suricata/stray.rules").path, atomically: true, encoding: .utf8)
        try await node.run { _, _ in
            let left = try FileManager.default.contentsOfDirectory(atPath: state.appendingPathComponent("rules/suricata").path)
            #expect(left.isEmpty)
        }
    }
}
