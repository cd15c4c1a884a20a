import Foundation
import Testing

@testable import RampartCore

@Suite struct NotifyActionTests {
    @Test func plansTheRenderedBodyForItsURL() throws {
        let playbook = try ActionFixture.playbook(
            "name: chat\nmatch: {kind: ipv4}\nactions:\n  - notify: {url: \"https://chat.example/hooks/soc\", template: '{\"text\": \"blocked {{value}}\"}'}\n"
        )
        let item = try ActionFixture.item("77.90.185.20")
        let intents = playbook.plan(item, in: ActionFixture.context()).map(\.intent)
        guard case .notify(let url, let body)? = intents.first else { Issue.record("no notify: \(intents)"); return }
        #expect(url == "https://chat.example/hooks/soc")
        #expect(body == #"{"text": "blocked 77.90.185.20"}"#)
        #expect(Destination.notify(url: url).key == "notify:https://chat.example/hooks/soc")
        #expect(
            playbook.explain(item, in: ActionFixture.context()) == [
                #"notify: POST {"text": "blocked 77.90.185.20"} to https://chat.example/hooks/soc"#
            ])
    }

    @Test func parseIsStrict() {
        let errors = ActionFixture.errors(
            "name: p\nmatch: {kind: ipv4}\nactions:\n  - notify: {url: \"https://u:p@chat.example/\", template: 'text'}\n")
        #expect(errors.count == 2)
        #expect(errors.first?.contains("without credentials") == true)
        #expect(errors.last?.contains("does not make a JSON document") == true)
    }
}
