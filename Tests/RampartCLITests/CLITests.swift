import Foundation
import Synchronization
import GRDB
import RampartTesting
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite struct CLITests {
    @Test func checkNamesFileLineAndColumn() throws {
        let sandbox = try Sandbox()
        #expect(try rampart("check", "--config", sandbox.configPath).status == 0)

        let bad = sandbox.directory.appendingPathComponent("bad.yaml").path
        try "node: {id: n}\nstate_dir: s\nplaybooks: p\nlisten: 127.0.0.1:1\nfirewall:\n  backnd: dry-run\n".write(
            toFile: bad, atomically: true, encoding: .utf8)
        let text = try rampart("check", bad)
        #expect(text.status == 1)
        #expect(text.stderr.contains("\(bad):6:3:"))
        #expect(text.stderr.contains("backend"))

        let json = try rampart("check", "--format", "json", bad)
        #expect(json.status == 1)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(report["ok"] as? Bool == false)
        #expect((report["errors"] as? [[String: Any]])?.first?["line"] as? Int == 6)

        // The daemon refuses to start on it, with the same message.
        let serve = try rampart("serve", "--config", bad)
        #expect(serve.status != 0)
        #expect(serve.stderr.contains("\(bad):6:3:"))
    }

    /// A daemon that cannot listen (its address is taken) says why and exits non-zero, rather than
    /// hanging on without its API.
    @Test func aTakenListenAddressStopsTheDaemonWithAnError() throws {
        let first = try DaemonProcess(try Sandbox())
        defer { _ = first.stop() }
        let second = try Sandbox(listen: "127.0.0.1:\(first.port)")
        let log = second.directory.appendingPathComponent("serve.log").path
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: rampartBinary)
        process.arguments = ["serve", "--config", second.configPath]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: log)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        let exited = eventually(15) { !process.isRunning }
        if !exited { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        #expect(exited, "still running 15 s after failing to listen")
        #expect(process.terminationStatus != 0)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("cannot listen on 127.0.0.1:\(first.port): Address already in use"), "\(text)")
    }

    @Test func tokenPrintsATokenAndItsConfigLine() throws {
        let output = try rampart("token", "--name", "soc", "--roles", "ingest,read")
        #expect(output.status == 0)
        let lines = output.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let token = try #require(lines.first { $0.hasPrefix("rmp_") })
        #expect(token.count >= 40)
        let configLine = try #require(lines.first { $0.hasPrefix("- {name: soc") })
        #expect(configLine.contains("roles: [ingest, read]"))
        #expect(!configLine.contains(token))
        #expect(try rampart("token", "--roles", "root").status != 0)
    }

    @Test func decisionsCommandsTalkToTheRunningDaemon() throws {
        let sandbox = try Sandbox()
        let daemon = try DaemonProcess(sandbox)
        let api = ["--config", sandbox.configPath, "--url", daemon.url, "--token", Sandbox.adminToken]

        let add = try run(rampartBinary, ["decisions", "add", "77.90.185.20", "--duration", "2h", "--reason", "scanner"] + api)
        #expect(add.status == 0, "\(add.stderr)")
        #expect(add.stdout.hasPrefix("created: 77.90.185.20"))

        let refused = try run(rampartBinary, ["decisions", "add", "127.0.0.1"] + api)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("loopback"))

        let list = try run(rampartBinary, ["decisions", "list", "--active"] + api)
        #expect(list.status == 0)
        #expect(list.stdout.contains("77.90.185.20"))

        let json = try run(rampartBinary, ["decisions", "list", "--json", "--value", "77.90.185.20"] + api)
        let id = try #require(
            (try JSONSerialization.jsonObject(with: Data(json.stdout.split(separator: "\n").first.map(String.init)?.utf8 ?? "".utf8))
                as? [String: Any])?["id"] as? String
        )

        let unauthorised = try run(rampartBinary, ["decisions", "list", "--config", sandbox.configPath, "--url", daemon.url, "--token", "wrong"])
        #expect(unauthorised.status != 0)
        #expect(unauthorised.stderr.contains("401") || unauthorised.stderr.contains("not valid"))

        let delete = try run(rampartBinary, ["decisions", "delete", id] + api)
        #expect(delete.status == 0, "\(delete.stderr)")
        #expect(delete.stdout.contains("revoked 77.90.185.20"))
        let after = try run(rampartBinary, ["decisions", "list", "--active"] + api)
        #expect(!after.stdout.contains("77.90.185.20"))

        #expect(daemon.stop() == 0)
        #expect(daemon.log.contains("daemon.stopped"))
    }

    @Test func auditVerifyNamesTheFirstAlteredEntry() throws {
        let sandbox = try Sandbox()
        let daemon = try DaemonProcess(sandbox)
        var ids: [String] = []
        for value in ["45.9.148.1", "45.9.148.2", "45.9.148.3", "45.9.148.4"] {
            let (status, answer) = try post(daemon.url + "/v1/indicators", "text/plain", value)
            #expect(status == 202)
            ids += answer["ids"] as? [String] ?? []
        }
        #expect(daemon.stop() == 0)
        let intact = try rampart("audit", "verify", "--config", sandbox.configPath)
        #expect(intact.status == 0, "\(intact.stderr)")
        #expect(intact.stdout.contains("4 entries"))

        // One item's entry, found by its id.
        let shown = try rampart("audit", "show", "--item", ids[2], "--config", sandbox.configPath)
        #expect(shown.status == 0 && shown.stdout.split(separator: "\n").count == 1, "\(shown.stdout)\(shown.stderr)")
        #expect(shown.stdout.contains(#""subject":"\#(ids[2])""#) && shown.stdout.contains("45.9.148.3"))
        let unknown = try rampart("audit", "show", "--decision", "dec_none", "--config", sandbox.configPath)
        #expect(unknown.status == 1 && unknown.stderr.contains("no audit entries for decision dec_none"))

        // Someone rewrites history with sqlite3.
        let sqlite = try run(
            "/usr/bin/sqlite3", [sandbox.databasePath, "UPDATE audit SET detail = replace(detail, '45.9.148.3', '45.9.148.9') WHERE seq = 3"])
        #expect(sqlite.status == 0, "\(sqlite.stderr)")
        let broken = try rampart("audit", "verify", "--config", sandbox.configPath)
        #expect(broken.status == 1)
        #expect(broken.stderr.contains("entry 3"))

        // Deleting an entry is found too.
        _ = try run(
            "/usr/bin/sqlite3",
            [
                sandbox.databasePath,
                "UPDATE audit SET detail = replace(detail, '45.9.148.9', '45.9.148.3') WHERE seq = 3; DELETE FROM audit WHERE seq = 2",
            ])
        let missing = try rampart("audit", "verify", "--config", sandbox.configPath)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("entry 2 is missing"))
    }

    @Test func sighupAndRampartReload() throws {
        let sandbox = try Sandbox()
        let daemon = try DaemonProcess(sandbox)
        let api = ["--config", sandbox.configPath, "--url", daemon.url, "--token", Sandbox.adminToken]
        let playbooks = sandbox.directory.appendingPathComponent("playbooks")
        try "name: c2\nmatch: {kind: ipv4, tags: {any: [c2]}}\nactions: [{block: {duration: 1h}}]\n"
            .write(to: playbooks.appendingPathComponent("c2.yaml"), atomically: true, encoding: .utf8)

        kill(daemon.process.processIdentifier, SIGHUP)
        let deadline = Date().addingTimeInterval(10)
        while !daemon.log.contains("msg=config.reloaded"), Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        #expect(daemon.log.contains("msg=config.reloaded rampart.by=signal:SIGHUP rampart.playbooks=1"))
        let (status, _) = try post(daemon.url + "/v1/indicators?tags=c2", "text/plain", "45.9.148.3")
        #expect(status == 202)
        #expect(try run(rampartBinary, ["decisions", "list", "--active"] + api).stdout.contains("45.9.148.3"))

        try "name: bad\nmatch: {kind: ipv4}\nactions: [{block: {duraton: 1h}}]\n"
            .write(to: playbooks.appendingPathComponent("bad.yaml"), atomically: true, encoding: .utf8)
        let refused = try run(rampartBinary, ["reload"] + api)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("bad.yaml:3:20: unknown key 'duraton'"), "\(refused.stderr)")
        try FileManager.default.removeItem(at: playbooks.appendingPathComponent("bad.yaml"))
        let accepted = try run(rampartBinary, ["reload"] + api)
        #expect(accepted.status == 0)
        #expect(accepted.stdout == "reloaded: 1 playbook in force\n")
        #expect(daemon.stop() == 0)
    }

    /// keygen writes a whsk_ key readable by its owner only, prints the whpk_ key, and never
    /// overwrites a key.
    @Test func keygenWritesAPrivateKeyOnceAndPrintsThePublicOne() throws {
        let path = Scratch.directory("rampart-key").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let made = try rampart("keygen", "--out", path)
        #expect(made.status == 0, "\(made.stderr)")
        let key = try String(contentsOfFile: path, encoding: .utf8)
        #expect(key.hasPrefix("whsk_") && Data(base64Encoded: String(key.dropFirst(5).dropLast()))?.count == 32)
        let permissions = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(permissions == 0o600)
        let printed = made.stdout.split(separator: "\n").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        #expect(printed.hasPrefix("whpk_") && Data(base64Encoded: String(printed.dropFirst(5)))?.count == 32, "\(made.stdout)")
        #expect(!made.stdout.contains(key.dropLast()), "the private key was printed")

        let again = try rampart("keygen", "--out", path)
        #expect(again.status != 0 && again.stderr.contains("never overwrites"))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == key)
    }

    /// Eight clients post 100-line batches until the daemon stops answering; `signal` is sent once
    /// 2,000 items are acknowledged (not after a fixed time: on a loaded machine too few requests
    /// might have completed to prove anything). Returns the acknowledged ids and how long the
    /// daemon took to exit after the signal.
    func signalUnderLoad(_ daemon: DaemonProcess, _ signal: Int32) async throws -> (ids: [String], exit: Duration) {
        let url = daemon.url + "/v1/indicators"
        let pid = daemon.process.processIdentifier
        let count = Tally()
        let acknowledged = try await withThrowingTaskGroup(of: [String].self) { group in
            for client in 0..<8 {
                group.addTask {
                    var ids: [String] = []
                    for round in 0..<10_000 {
                        let body = (0..<100).map { "\(40 + client).\(round / 200).\(round % 200).\($0 + 1)" }.joined(separator: "\n")
                        guard let (status, answer) = try? await postAsync(url, body), status == 202 else { break }
                        let new = answer["ids"] as? [String] ?? []
                        ids += new
                        count.add(new.count)
                    }
                    return ids
                }
            }
            group.addTask {
                let deadline = ContinuousClock.now + .seconds(60)
                while count.total < 2_000, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
                kill(pid, signal)
                return []
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let signalled = ContinuousClock.now
        daemon.process.waitUntilExit()
        return (acknowledged, ContinuousClock.now - signalled)
    }

    /// Every acknowledged id is stored, the audit chain verifies, and the daemon starts again.
    func expectNothingLost(_ acknowledged: [String], in sandbox: Sandbox) async throws {
        #expect(acknowledged.count > 1000, "too few requests completed before the signal to prove anything")
        let queue = try DatabaseQueue(path: sandbox.databasePath)
        let stored = try await queue.read { db in Set(try String.fetchAll(db, sql: "SELECT id FROM item")) }
        let lost = acknowledged.filter { !stored.contains($0) }
        #expect(lost.isEmpty, "\(lost.count) of \(acknowledged.count) acknowledged items are missing")
        try queue.close()
        let verify = try rampart("audit", "verify", "--config", sandbox.configPath)
        #expect(verify.status == 0, "\(verify.stderr)")
        let restarted = try DaemonProcess(sandbox)
        #expect(restarted.stop() == 0)
    }

    /// SIGKILL mid-stream loses nothing that was acknowledged.
    @Test func killDashNineLosesNothingAcknowledged() async throws {
        let sandbox = try Sandbox()
        let daemon = try DaemonProcess(sandbox)
        let (acknowledged, _) = try await signalUnderLoad(daemon, SIGKILL)
        #expect(daemon.process.terminationReason == .uncaughtSignal)
        try await expectNothingLost(acknowledged, in: sandbox)
    }

    /// SIGTERM under load: in-flight requests are answered or refused, queued commits finish, and
    /// the daemon exits 0 within 10 s (the unit gives it 30).
    @Test func sigtermDrainsAndExitsZero() async throws {
        let sandbox = try Sandbox()
        let daemon = try DaemonProcess(sandbox)
        let (acknowledged, exit) = try await signalUnderLoad(daemon, SIGTERM)
        #expect(daemon.process.terminationReason == .exit && daemon.process.terminationStatus == 0, "\(daemon.log)")
        #expect(exit < .seconds(10), "exit took \(exit)")
        #expect(daemon.log.contains("daemon.stopped"))
        try await expectNothingLost(acknowledged, in: sandbox)
    }
}

/// POSTs with the admin token; the status and the JSON answer.
func post(_ url: String, _ contentType: String, _ body: String) throws -> (Int, [String: Any]) {
    let output = try run(
        "/usr/bin/curl",
        [
            "-sS", "-w", "\n%{http_code}", "-H", "Authorization: Bearer \(Sandbox.adminToken)", "-H", "Content-Type: \(contentType)", "--data-binary",
            body, url,
        ]
    )
    let lines = output.stdout.split(separator: "\n")
    let status = Int(lines.last ?? "") ?? 0
    let json = lines.dropLast().joined().data(using: .utf8).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] } ?? [:]
    return (status, json)
}

func postAsync(_ url: String, _ body: String) async throws -> (Int, [String: Any]) {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = "POST"
    request.setValue("Bearer \(Sandbox.adminToken)", forHTTPHeaderField: "Authorization")
    request.setValue("text/plain", forHTTPHeaderField: "Content-Type")
    request.httpBody = Data(body.utf8)
    let (data, response) = try await URLSession.shared.data(for: request)
    let json = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, json)
}

@Suite struct CheckoutTests {
    static let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path

    /// `main` stays green: the shipped configuration and playbooks pass `rampart check`.
    @Test func shippedConfigAndPlaybooksPassCheck() throws {
        let config = try rampart("check", "--config", Self.checkout + "/deploy/rampart.dev.yaml")
        #expect(config.status == 0, "\(config.stderr)")
        let playbooks = try rampart("check", Self.checkout + "/playbooks")
        #expect(playbooks.status == 0, "\(playbooks.stderr)")
    }

    /// `rampart test` explains what the shipped playbooks do with an indicator and with a rule,
    /// and names where a broken rule is wrong.
    @Test func testExplainsIndicatorsAndRules() throws {
        let playbooks = Self.checkout + "/playbooks"
        let item = try rampart(
            "test", "--playbooks", playbooks, "--item", #"{"value": "45.9.148.3", "confidence": 90, "severity": "high", "tags": ["c2"]}"#)
        #expect(
            item.status == 0 && item.stdout.contains("+ block-partner-c2")
                && item.stdout.contains("- install-received-sigma: no match: it runs on rule items"), "\(item.stdout)")
        let sigma = Self.checkout + "/Tests/RampartCoreTests/Fixtures/sigma/net_dns_mal_cobaltstrike.yml"
        let rule = try rampart("test", "--playbooks", playbooks, "--rule", sigma)
        #expect(rule.status == 0, "\(rule.stderr)")
        #expect(
            rule.stdout.contains("+ install-received-sigma") && rule.stdout.contains("install rules/sigma/cobalt_strike_dns_beaconing.yml"),
            "\(rule.stdout)")
        let broken = Scratch.directory("broken").appendingPathExtension("rules").path
        try #"alert ip any any -> any any (msg:"x"; rev:1;)"#.write(toFile: broken, atomically: true, encoding: .utf8)
        let refused = try rampart("test", "--playbooks", playbooks, "--rule", broken)
        #expect(refused.status == 1 && refused.stderr.contains("\(broken):1:29: a Suricata rule needs a sid option"), "\(refused.stderr)")
    }
}

/// A count shared by concurrent tasks.
final class Tally: Sendable {
    private let value = Mutex(0)
    func add(_ n: Int) { value.withLock { $0 += n } }
    var total: Int { value.withLock { $0 } }
}
