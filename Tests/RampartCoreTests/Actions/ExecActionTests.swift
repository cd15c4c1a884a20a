import Foundation
import Testing

@testable import RampartCore

@Suite struct ExecActionTests {
    @Test func plansTheRenderedArgvAndExplainsIt() throws {
        let playbook = try ActionFixture.playbook(
            "name: ticket\nmatch: {kind: ipv4}\nactions:\n  - exec: {argv: [/usr/local/bin/ticket, --value, \"{{value}}\", \"two words\"], timeout: 5s}\n"
        )
        let item = try ActionFixture.item("77.90.185.20")
        let intents = playbook.plan(item, in: ActionFixture.context()).map(\.intent)
        guard case .exec(let argv, let timeout)? = intents.first else { Issue.record("no exec: \(intents)"); return }
        #expect(argv == ["/usr/local/bin/ticket", "--value", "77.90.185.20", "two words"])
        #expect(timeout == .seconds(5))
        #expect(
            playbook.explain(item, in: ActionFixture.context()) == [
                "exec: run /usr/local/bin/ticket --value 77.90.185.20 'two words' with the item as JSON on stdin, timeout 5s"
            ])
    }

    @Test func parseIsStrict() {
        #expect(
            ActionFixture.errors("name: p\nmatch: {kind: ipv4}\nactions:\n  - exec: {argv: [ticket]}\n") == [
                "p.yaml:4:19: actions[0].exec.argv[0] must be the program's absolute path, without template fields, such as /usr/local/bin/ticket"
            ])
        #expect(
            ActionFixture.errors("name: p\nmatch: {kind: ipv4}\nactions:\n  - exec: {argv: [/bin/true], timeout: 10m}\n") == [
                "p.yaml:4:40: actions[0].exec.timeout must be at most 5m"
            ])
    }
}
