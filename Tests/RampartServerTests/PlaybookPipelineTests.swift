import Foundation
import HummingbirdTesting
import Logging
import RampartCore
import RampartServer
import RampartStore
import RampartTesting
import Testing

@Suite struct PlaybookPipelineTests {
    static let playbooks = [
        "c2": """
        name: block-c2
        priority: 10
        match:
          kind: [ipv4, ipv6, cidr]
          confidence: {min: 80}
          tags: {any: [c2]}
        actions:
          - block: {duration: 4h, direction: inbound}
        """,
        "trial": """
        name: trial-feed
        mode: simulate
        priority: 20
        match:
          kind: ipv4
          from: [api:feeder]
        actions:
          - block: {duration: 1h}
        """,
    ]

    @Test func matchingItemsCreateDecisionsInTheSameCommit() async throws {
        let node = try TestNode(playbooks: Self.playbooks)
        try await node.run { client, _ in
            let body =
                #"[{"value": "77.90.185.20", "confidence": 90, "tags": ["c2"]}, {"value": "127.0.0.1", "confidence": 90, "tags": ["c2"]}, {"value": "77.90.185.21", "confidence": 10, "tags": ["c2"]}]"#
            let answer = try await client.call(.post, "/v1/indicators", as: "admin", contentType: "application/json", body: body)
            #expect(answer.status == .accepted)
            let ids = try #require(answer["ids"] as? [String])
            #expect(ids.count == 3)

            // Committed with the 202: the decision is listed at once, naming playbook and item.
            let listed = try await client.call(.get, "/v1/decisions?active=true", as: "read")
            let decisions = try #require(listed["decisions"] as? [[String: Any]])
            #expect(decisions.count == 1)
            #expect(decisions.first?["value"] as? String == "77.90.185.20")
            #expect(decisions.first?["playbook"] as? String == "block-c2")
            #expect(decisions.first?["item"] as? String == ids[0])
            #expect(decisions.first?["direction"] as? String == "inbound")
            try await waitUntil { node.firewall.current.map(\.target.description) == ["77.90.185.20"] }

            // One audit entry per item tells what it caused; the loopback block was refused, not dropped.
            let audit = try await client.call(.get, "/v1/audit?limit=1000", as: "read")
            let entries = try #require(audit["entries"] as? [[String: Any]])
            #expect(entries.map { $0["event"] as? String } == ["item.accepted", "item.accepted", "item.accepted"])
            #expect(entries.map { $0["subject"] as? String } == ids)
            let caused = entries.map { ($0["caused"] as? [[String: Any]])?.map { $0["event"] as? String ?? "" } }
            #expect(caused == [["playbook.matched", "decision.created"], ["playbook.matched", "decision.refused"], nil])
            let created = try #require((entries[0]["caused"] as? [[String: Any]])?.last)
            let id = try #require(decisions.first?["id"] as? String)
            #expect(created["id"] as? String == id && created["value"] as? String == "77.90.185.20" && created["playbook"] as? String == "block-c2")
            let refused = try #require((entries[1]["caused"] as? [[String: Any]])?.last)
            #expect(refused["code"] as? String == "protected" && refused["value"] as? String == "127.0.0.1")

            // Found again by the decision and by the item.
            let byDecision = try await client.call(.get, "/v1/audit?decision=\(id)", as: "read")
            #expect((byDecision["entries"] as? [[String: Any]])?.map { $0["subject"] as? String } == [ids[0]])
            let byItem = try await client.call(.get, "/v1/audit?item=\(ids[1])", as: "read")
            #expect((byItem["entries"] as? [[String: Any]])?.map { $0["seq"] as? Int } == [entries[1]["seq"] as? Int])
            let both = try await client.call(.get, "/v1/audit?item=\(ids[1])&decision=\(id)", as: "read")
            #expect(both.problemCode == "invalid_parameter")
        }
    }

    @Test func simulatePlaybooksRecordWithoutEnforcing() async throws {
        let node = try TestNode(playbooks: Self.playbooks)
        try await node.run { client, _ in
            let answer = try await client.call(.post, "/v1/indicators", as: "ingest", contentType: "text/plain", body: "45.9.148.3\n")
            #expect(answer.status == .accepted)
            let listed = try await client.call(.get, "/v1/decisions", as: "read")
            let decision = try #require((listed["decisions"] as? [[String: Any]])?.first)
            #expect(decision["playbook"] as? String == "trial-feed")
            #expect(decision["simulated"] as? Bool == true)
            try await Task.sleep(for: .milliseconds(100))
            #expect(node.firewall.current.isEmpty)
        }
    }

    @Test func invalidPlaybooksStopStartUpWithEveryError() throws {
        let node = try TestNode(playbooks: ["bad": "name: bad\nmatch: {kind: domain, confidense: {min: 1}}\nactions: [{block: {duration: 1h}}]\n"])
        do {
            _ = try Daemon.build(config: node.config, logger: .init(label: "test"))
            Issue.record("the daemon started with an invalid playbook")
        } catch let error as Diagnostics {
            #expect(error.items.count == 2)
            #expect(error.items.allSatisfy { $0.file.hasSuffix("bad.yaml") && $0.line == 2 || $0.line == 3 })
        }
    }
}

@Suite struct PlaybookAPITests {
    @Test func listTestAndReload() async throws {
        let node = try TestNode(playbooks: ["c2": PlaybookPipelineTests.playbooks["c2"]!])
        try await node.run { client, _ in
            let listed = try await client.call(.get, "/v1/playbooks", as: "read")
            let playbooks = try #require(listed["playbooks"] as? [[String: Any]])
            #expect(playbooks.map { $0["name"] as? String } == ["block-c2"])
            #expect(playbooks.first?["actions"] as? [String] == ["block"])

            // Dry run: explained, nothing stored.
            let tested = try await client.call(
                .post, "/v1/playbooks/test", as: "read", contentType: "application/json",
                body:
                    #"[{"value": "77.90.185.20", "confidence": 90, "tags": ["c2"]}, {"value": "77.90.185.20", "confidence": 20, "tags": ["c2"]}, {"value": "1.2.3.4/8"}]"#
            )
            #expect(tested.status == .ok)
            let items = try #require(tested["items"] as? [[String: Any]])
            let first = try #require((items[0]["playbooks"] as? [[String: Any]])?.first)
            #expect(first["verdict"] as? String == "matched")
            #expect(first["would"] as? [String] == ["block: block 77.90.185.20 for 4h, inbound"])
            let second = try #require((items[1]["playbooks"] as? [[String: Any]])?.first)
            #expect(second["verdict"] as? String == "no_match")
            #expect(second["reason"] as? String == "confidence 20 is below 80")
            #expect((items[2]["error"] as? String)?.contains("host bits") == true)
            #expect((try await client.call(.get, "/v1/decisions", as: "read")["decisions"] as? [Any])?.isEmpty == true)

            // A new playbook file, then a reload: in force for the next request.
            let directory = URL(fileURLWithPath: node.config.playbooksDirectory)
            try "name: scanners\nmatch: {kind: ipv4, tags: {any: [scanner]}}\nactions: [{block: {duration: 1h}}]\n"
                .write(to: directory.appendingPathComponent("scanners.yaml"), atomically: true, encoding: .utf8)
            let reloaded = try await client.call(.post, "/v1/reload")
            #expect(reloaded.status == .ok)
            #expect(reloaded["playbooks"] as? Int == 2)
            _ = try await client.call(.post, "/v1/indicators?tags=scanner", as: "ingest", contentType: "text/plain", body: "45.9.148.3\n")
            let decisions = try await client.call(.get, "/v1/decisions", as: "read")
            #expect((decisions["decisions"] as? [[String: Any]])?.first?["playbook"] as? String == "scanners")

            // An invalid set is refused, every error listed, and the old set stays in force.
            try "name: broken\nmatch: {kind: ipv4, confidense: 1}\nactions: []\n"
                .write(to: directory.appendingPathComponent("broken.yaml"), atomically: true, encoding: .utf8)
            let refused = try await client.call(.post, "/v1/reload")
            #expect(refused.status == .unprocessableContent)
            #expect(refused.problemCode == "reload_failed")
            let errors = try #require(refused["errors"] as? [[String: Any]])
            #expect((errors.first?["error"] as? String)?.contains("broken.yaml:2:21: unknown key 'confidense'") == true)
            #expect((try await client.call(.get, "/v1/playbooks", as: "read")["playbooks"] as? [Any])?.count == 2)
            #expect(try await client.call(.post, "/v1/reload", as: "read").status == .forbidden)

            let audit = try await client.call(.get, "/v1/audit?limit=1000", as: "read")
            let events = (audit["entries"] as? [[String: Any]])?.compactMap { $0["event"] as? String } ?? []
            #expect(events.filter { $0.hasPrefix("config.") } == ["config.reloaded", "config.reload_failed"])
        }
    }
}

/// Reloads run one at a time in the reloader's service, each answered; once the daemon has
/// stopped, a reload is refused rather than left waiting.
@Suite struct ReloaderTests {
    @Test func concurrentReloadsAreEachAnsweredAndAudited() async throws {
        let node = try TestNode()
        let reloader = try await node.runReturningParts { client, _ in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 { group.addTask { Int(try await client.call(.post, "/v1/reload").status.code) } }
                for try await status in group { #expect(status == 200) }
            }
            let events = try await client.auditEvents().compactMap { $0["event"] as? String }
            #expect(events.filter { $0 == "config.reloaded" }.count == 4)
        }.reloader
        await #expect(throws: Reloader.Stopped.self) { _ = try await reloader.reload(by: "test") }
    }
}

@Suite struct EscalationTests {
    @Test func repeatOffendersAreBlockedLongerUpToTheCap() async throws {
        let clock = ManualClock()
        let playbook = """
            name: scanners
            match: {kind: ipv4, tags: {any: [scanner]}}
            actions:
              - block: {duration: 1h, escalate: {factor: 2, max: 3h}}
            """
        let node = try TestNode(playbooks: ["scanners": playbook], clock: clock)
        try await node.run { client, _ in
            var lifetimes: [TimeInterval] = []
            for _ in 0..<3 {
                let start = clock.wallTime
                _ = try await client.call(.post, "/v1/indicators?tags=scanner", as: "ingest", contentType: "text/plain", body: "45.9.148.3\n")
                let listed = try await client.call(.get, "/v1/decisions?active=true", as: "read")
                let expires = try #require((listed["decisions"] as? [[String: Any]])?.first?["expires_at"] as? String)
                lifetimes.append(try Timestamp.parse(expires).timeIntervalSince(start))
                clock.advance(by: .seconds(4 * 3600))  // past every block, so the next sighting is a new episode
            }
            #expect(lifetimes.map { ($0 / 60).rounded() } == [60, 120, 180])
        }
    }
}

@Suite struct ExecActionTests {
    func auditEntries(_ client: TestClientProtocol, event: String) async throws -> [[String: Any]] {
        try await client.auditEvents().filter { $0["event"] as? String == event }
    }

    @Test func runsArgvWithTheItemOnStdinAndAuditsTheOutcome() async throws {
        let out = Scratch.directory("rampart-exec").path
        let playbooks = [
            "ticket": """
            name: ticket
            match: {kind: ipv4, tags: {any: [c2]}}
            actions:
              - exec: {argv: [/bin/sh, -c, 'cat > "$1"; printf "%s|%s|%s" "$2" "$RAMPART_VALUE" "${HOME:-no-home}"', sh, \(out), '{{description}}'], timeout: 5s}
            """,
            "slow": """
            name: slow
            match: {kind: ipv4, tags: {any: [slow]}}
            actions:
              - exec: {argv: [/bin/sleep, '30'], timeout: 300ms}
            """,
        ]
        let node = try TestNode(playbooks: playbooks)
        try await node.run { client, _ in
            let hostile = #"$(touch /tmp/rampart-pwned); `id`; rm -rf /"#
            let body = #"{"value": "77.90.185.20", "tags": ["c2"], "description": "\#(hostile)"}"#
            let answer = try await client.call(.post, "/v1/indicators", as: "ingest", contentType: "application/json", body: body)
            let id = try #require((answer["ids"] as? [String])?.first)
            try await waitUntil { try await !auditEntries(client, event: "action.exec").isEmpty }
            let entry = try #require(try await auditEntries(client, event: "action.exec").first)
            #expect(entry["subject"] as? String == id)
            let detail = try #require(entry["detail"] as? [String: Any])
            #expect(detail["exit_status"] as? Int == 0)
            #expect(detail["timed_out"] as? Bool == false)
            // The template value is one argument, never interpreted; the daemon's environment is not passed on.
            #expect(detail["stdout"] as? String == "\(hostile)|77.90.185.20|no-home")
            #expect(!FileManager.default.fileExists(atPath: "/tmp/rampart-pwned"))
            let stdin = try #require(FileManager.default.contents(atPath: out))
            let item = try #require(try JSONSerialization.jsonObject(with: stdin) as? [String: Any])
            #expect(item["id"] as? String == id)

            _ = try await client.call(.post, "/v1/indicators?tags=slow", as: "ingest", contentType: "text/plain", body: "45.9.148.3\n")
            try await waitUntil(seconds: 5) { try await auditEntries(client, event: "action.exec").count == 2 }
            let slow = try #require(try await auditEntries(client, event: "action.exec").last?["detail"] as? [String: Any])
            #expect(slow["timed_out"] as? Bool == true)
            #expect(slow["signal"] as? Int == Int(SIGTERM))
            #expect((slow["duration_ms"] as? Int ?? 0) < 2000)
        }
    }

    /// Jobs that do not fit in the queue are audited as dropped by the runner's own loop, and
    /// those it holds still run.
    @Test func jobsBeyondTheQueueAreAuditedAsDropped() async throws {
        let store = try Store(path: Scratch.directory("rampart-exec").path + "/rampart.sqlite")
        store.start()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let runner = ExecRunner(store: store, logger: logger, maxRunning: 1, maxQueued: 1, now: Date.init)
        let item = Item(
            id: "item-1", payload: .indicator(Indicator(kind: .ipv4, value: "45.9.148.3")), via: "api:test", origin: "here", receivedAt: Date())
        runner.submit((0..<3).map { _ in ExecJob(item: item, input: [], playbook: "p", argv: ["/bin/true"], timeout: .seconds(5)) })
        let running = Task { try await runner.run() }
        func details() throws -> [[String: Any]] {
            try store.auditEntries(.all, limit: 100).filter { $0.event == "action.exec" }.compactMap {
                try JSONSerialization.jsonObject(with: Data($0.detail.utf8)) as? [String: Any]
            }
        }
        try await waitUntil(seconds: 30) { try details().count == 3 }
        let entries = try details()
        #expect(entries.compactMap { $0["error"] as? String } == Array(repeating: "dropped: 1 exec actions were already waiting", count: 2))
        #expect(entries.compactMap { $0["exit_status"] as? Int } == [0])
        running.cancel()
        try? await running.value
        await store.close()
    }

    @Test func simulatedExecIsRecordedNotRun() async throws {
        let out = Scratch.directory("rampart-exec").path
        let node = try TestNode(playbooks: [
            "sim": "name: sim\nmode: simulate\nmatch: {kind: ipv4}\nactions:\n  - exec: {argv: [/usr/bin/touch, \(out)]}\n"
        ])
        try await node.run { client, _ in
            _ = try await client.call(.post, "/v1/indicators", as: "ingest", contentType: "text/plain", body: "45.9.148.3\n")
            let entry = try #require(try await auditEntries(client, event: "action.exec").first?["detail"] as? [String: Any])
            #expect(entry["simulated"] as? Bool == true)
            #expect(entry["argv"] as? [String] == ["/usr/bin/touch", out])
            try await Task.sleep(for: .milliseconds(200))
            #expect(!FileManager.default.fileExists(atPath: out))
        }
    }
}

@Suite struct RuleActionTests {
    static let playbook = """
        name: c2-suricata
        match: {kind: [ipv4, ipv6], tags: {any: [c2]}}
        actions:
          - rule:
              format: suricata
              template: 'drop ip {{value}} any -> $HOME_NET any (msg:"rampart {{playbook}}: {{description}}"; sid:{{sid}}; rev:1;)'
        """

    @Test func rendersOneFilePerValueAndKeepsTheSidAcrossVersions() async throws {
        let node = try TestNode(playbooks: ["c2": Self.playbook])
        let directory = URL(fileURLWithPath: node.config.stateDirectory).appendingPathComponent("rules/suricata")
        try await node.run { client, _ in
            let body =
                #"[{"value": "77.90.185.20", "tags": ["c2"], "description": "say \"hi\"; then\\leave"}, {"value": "2a0e:1c80::1", "tags": ["c2"]}]"#
            let answer = try await client.call(.post, "/v1/indicators", as: "ingest", contentType: "application/json", body: body)
            #expect(answer["accepted"] as? Int == 2)
            let first = try String(contentsOf: directory.appendingPathComponent("c2-suricata-77.90.185.20.rules"), encoding: .utf8)
            // Quotes, semicolons and backslashes in field values are escaped for a rule option.
            #expect(first == #"drop ip 77.90.185.20 any -> $HOME_NET any (msg:"rampart c2-suricata: say \"hi\"\; then\\leave"; sid:1000000; rev:1;)"#)
            let second = try String(contentsOf: directory.appendingPathComponent("c2-suricata-2a0e_1c80__1.rules"), encoding: .utf8)
            #expect(second.contains("sid:1000001;"))

            // The same value again: the same file and sid, the new content.
            _ = try await client.call(
                .post, "/v1/indicators", as: "ingest", contentType: "application/json",
                body: #"{"value": "77.90.185.20", "tags": ["c2"], "description": "v2"}"#)
            let replaced = try String(contentsOf: directory.appendingPathComponent("c2-suricata-77.90.185.20.rules"), encoding: .utf8)
            #expect(replaced.contains("rampart c2-suricata: v2\""))
            #expect(replaced.contains("sid:1000000;"))
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == [
                    "c2-suricata-2a0e_1c80__1.rules", "c2-suricata-77.90.185.20.rules",
                ])

            let written = try await client.auditEvents().filter { $0["event"] as? String == "rule.installed" }
            #expect(written.count == 3)
            #expect((written.last?["detail"] as? [String: Any])?["replaced_item"] as? String == written.first?["subject"] as? String)
        }
        // A lost file comes back from the store at the next start.
        try FileManager.default.removeItem(at: directory.appendingPathComponent("c2-suricata-2a0e_1c80__1.rules"))
        try await node.run { _, _ in
            #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("c2-suricata-2a0e_1c80__1.rules").path))
        }
    }
}

@Suite struct SightingsTests {
    @Test func actsOnlyOnceEnoughDistinctSourcesSawTheValueWithinTheWindow() async throws {
        let clock = ManualClock()
        let playbook = """
            name: corroborated
            match:
              kind: ipv4
              sightings: {min: 2, distinct: source, within: 1h}
            actions:
              - block: {duration: 1h}
            """
        let node = try TestNode(playbooks: ["corroborated": playbook], clock: clock)
        try await node.run { client, _ in
            func post(_ value: String, source: String) async throws {
                let answer = try await client.call(.post, "/v1/indicators?source=\(source)", as: "ingest", contentType: "text/plain", body: value)
                #expect(answer.status == .accepted)
            }
            func blocked() async throws -> [String] {
                let listed = try await client.call(.get, "/v1/decisions", as: "read")
                return (listed["decisions"] as? [[String: Any]] ?? []).compactMap { $0["value"] as? String }
            }
            try await post("45.9.148.3", source: "feed-a")
            try await post("45.9.148.3", source: "feed-a")
            #expect(try await blocked().isEmpty)
            try await post("45.9.148.3", source: "feed-b")
            #expect(try await blocked() == ["45.9.148.3"])

            // Two sources, but an hour and a half apart: not corroborated.
            try await post("45.9.148.4", source: "feed-a")
            clock.advance(by: .seconds(5400))
            try await post("45.9.148.4", source: "feed-b")
            #expect(try await blocked() == ["45.9.148.3"])
        }
    }
}
