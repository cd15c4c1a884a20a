import Foundation
import Testing

@testable import RampartCore

@Suite struct RuleActionTests {
    @Test func rendersOneFilePerPlaybookAndValueAndExplainsWhatTheEngineWrites() throws {
        let playbook = try ActionFixture.playbook(
            "name: ids\nmatch: {kind: ipv4}\nactions:\n  - rule: {format: suricata, template: 'alert ip {{value}} any -> any any (msg:\"c2\"; sid:{{sid}};)'}\n"
        )
        let item = try ActionFixture.item("77.90.185.20")
        guard case .renderRule(let rendering)? = playbook.plan(item, in: ActionFixture.context()).first?.intent else {
            Issue.record("no rule"); return
        }
        #expect(rendering.name == RuleAction.fileName(playbook: "ids", value: "77.90.185.20"))
        #expect(rendering.content(sid: 1_000_007) == #"alert ip 77.90.185.20 any -> any any (msg:"c2"; sid:1000007;)"#)
        let line = try #require(playbook.explain(item, in: ActionFixture.context()).first)
        #expect(line.hasPrefix("rule: write \(RuleFormat.suricata.relativePath(name: rendering.name)), as a rule item of its own: "))
    }

    @Test func onRulesItInstallsTheRuleItself() throws {
        let playbook = try ActionFixture.playbook("name: install\non: rule\nmatch: {format: [suricata]}\nactions:\n  - rule: {}\n")
        let rule = try Rule(format: .suricata, content: #"alert ip any any -> any any (msg:"x"; sid:1;)"#)
        let item = Item(id: "x", payload: .rule(rule), via: "api:x", origin: "a", receivedAt: ActionFixture.at)
        guard case .installRule(let path)? = playbook.plan(item, in: ActionFixture.context()).first?.intent else {
            Issue.record("no install"); return
        }
        #expect(path == rule.relativePath)
    }

    @Test func parseIsStrict() {
        #expect(
            ActionFixture.errors("name: p\non: rule\nmatch: {format: [sigma]}\nactions:\n  - rule: {format: sigma}\n") == [
                "p.yaml:5:11: on: rule, actions[0].rule installs the rule as received and takes no keys: write rule: {}"
            ])
        #expect(!ActionFixture.errors("name: p\nmatch: {kind: ipv4}\nactions:\n  - rule: {format: pdf, template: x}\n").isEmpty)
    }
}
