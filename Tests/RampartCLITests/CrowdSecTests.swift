import Foundation
import RampartTesting
import Testing

/// A bouncer key as `rampart bouncers add` prints it: the key, and the line for `bouncers`.
struct BouncerKey {
    let key: String
    let line: String

    init(name: String) throws {
        let out = try rampart("bouncers", "add", name)
        let lines = out.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        guard out.status == 0, lines.count == 4, lines[3].hasPrefix("- {name: \(name), key_sha256: ") else {
            throw DaemonProcess.DaemonError(message: "rampart bouncers add printed:\n\(out.stdout)\(out.stderr)")
        }
        key = lines[1]
        line = lines[3]
    }
}

/// Rampart's CrowdSec bouncer API with the real consumers: Debian's crowdsec-firewall-bouncer
/// (nftables mode) in a network namespace, pycrowdsec, and curl sending exactly what both
/// generations of the Go bouncers send (query strings from their source).
@Suite(.serialized) struct CrowdSecTests {
    static let bouncerBinary = "/usr/bin/crowdsec-firewall-bouncer"
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    /// Why the firewall bouncer cannot run here, or nil.
    static let firewallBouncerUnavailable: String? =
        NamespacePair.unavailable
        ?? (FileManager.default.isExecutableFile(atPath: bouncerBinary)
            ? nil : "\(bouncerBinary) is missing (deploy/setup-dev.sh installs Debian's crowdsec-firewall-bouncer)")

    static let pycrowdsecUnavailable: String? =
        Venv.python(importing: "pycrowdsec.client") == nil
        ? "pycrowdsec is not in .venv (deploy/setup-dev.sh installs it from PyPI; it could not here)" : nil

    static func config(crowdsec: String, keys: [BouncerKey], extra: String = "") -> String {
        """
        crowdsec: {listen: \(crowdsec)}
        bouncers:
        \(keys.map { "  \($0.line)" }.joined(separator: "\n"))
        \(extra)
        """
    }

    @Test func curlSendsWhatBothBouncerGenerationsSend() async throws {
        try await onOwnThread { try Self.curlBody() }
    }

    static func curlBody() throws {
        let key = try BouncerKey(name: "edge")
        let heldKey = try BouncerKey(name: "held")
        let port = try freePort()
        let sandbox = try Sandbox(
            extra: config(crowdsec: "127.0.0.1:\(port)", keys: [key]).replacingOccurrences(
                of: "bouncers:\n", with: "bouncers:\n  \(heldKey.line.dropLast()), hold: 60s}\n"))
        let daemon = try DaemonProcess(sandbox)
        var stopped = false
        defer { if !stopped { _ = daemon.stop() } }
        #expect(daemon.log.contains("bouncer_api.ready"))
        let api = ["--config", sandbox.configPath, "--url", daemon.url, "--token", Sandbox.adminToken]
        func curl(_ query: String, from source: String = "127.0.0.1", key apiKey: String? = nil, _ options: [String] = []) throws -> String {
            let out = try run(
                "/usr/bin/curl", ["-s", "--interface", source, "-H", "X-Api-Key: \(apiKey ?? key.key)", "http://127.0.0.1:\(port)\(query)"] + options)
            return out.stdout
        }
        func json(_ text: String) -> (new: [String], deleted: [String]) {
            let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
            func values(_ name: String) -> [String] { (object?[name] as? [[String: Any]] ?? []).compactMap { $0["value"] as? String } }
            return (values("new"), values("deleted"))
        }
        // The documented key probe, a wrong key, nothing matching.
        #expect(try curl("/v1/decisions", ["-I"]).hasPrefix("HTTP/1.1 200"))
        #expect(try curl("/v1/decisions", key: "wrong", ["-w", " %{http_code}"]) == #"{"message":"access forbidden"} 403"#)
        #expect(try curl("/v1/decisions?ip=77.90.185.50") == "null")

        #expect(try run(rampartBinary, ["decisions", "add", "77.90.185.50", "--duration", "4h"] + api).status == 0)
        // 0.0.25 (apiclient 1.4.1): startup=true first, then an empty query.
        #expect(json(try curl("/v1/decisions/stream?startup=true")).new == ["77.90.185.50"])
        #expect(try curl("/v1/decisions/stream?") == #"{"new":[],"deleted":[]}"#)
        // Its filters, comma-joined and %2C-encoded: no decision has those origins.
        #expect(json(try curl("/v1/decisions/stream?origins=crowdsec%2Ccscli&scopes=ip%2Crange&startup=true")).new.isEmpty)
        // Current bouncers (apiclient 1.7), from another address: a place of its own in the stream.
        let current = "/v1/decisions/stream?additional_pull=false&community_pull=false"
        #expect(json(try curl(current + "&startup=true", from: "127.0.0.2")).new == ["77.90.185.50"])
        #expect(try run(rampartBinary, ["decisions", "add", "77.90.185.51", "--duration", "1h"] + api).status == 0)
        #expect(json(try curl(current + "&scopes=ip%2Crange%2Cas%2Ccountry", from: "127.0.0.2")).new == ["77.90.185.51"])
        #expect(json(try curl("/v1/decisions/stream?")).new == ["77.90.185.51"], "the first consumer still has its own place")
        #expect(try run(rampartBinary, ["decisions", "delete", "--value", "77.90.185.50"] + api).status == 0)
        #expect(json(try curl(current, from: "127.0.0.2")).deleted == ["77.90.185.50"])

        let list = try run(rampartBinary, ["bouncers", "list"] + api)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("127.0.0.1") && list.stdout.contains("127.0.0.2") && list.stdout.contains("curl/"))

        // A held pull (hold: 60s) does not hold up a shutdown: it is answered at once.
        _ = try curl("/v1/decisions/stream", key: heldKey.key)
        let held = Process()
        held.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        held.arguments = ["-s", "-H", "X-Api-Key: \(heldKey.key)", "http://127.0.0.1:\(port)/v1/decisions/stream"]
        held.standardOutput = FileHandle.nullDevice
        try held.run()
        Thread.sleep(forTimeInterval: 0.5)
        #expect(held.isRunning, "the pull is held")
        let stopping = Date()
        stopped = true
        #expect(daemon.stop() == 0)
        #expect(Date().timeIntervalSince(stopping) < 5)
        held.waitUntilExit()
    }

    @Test(.enabled(if: pycrowdsecUnavailable == nil, "\(pycrowdsecUnavailable ?? "")"))
    func pycrowdsecFollowsTheStream() async throws {
        try await onOwnThread { try Self.pycrowdsecBody() }
    }

    static func pycrowdsecBody() throws {
        let key = try BouncerKey(name: "python")
        let port = try freePort()
        let sandbox = try Sandbox(extra: config(crowdsec: "127.0.0.1:\(port)", keys: [key]))
        let daemon = try DaemonProcess(sandbox)
        defer { _ = daemon.stop() }
        // Through env: Process resolves symbolic links, and the venv's python3 is one.
        let out = try run(
            "/usr/bin/env", [Venv.python, fixtures + "/pycrowdsec_follow.py", "http://127.0.0.1:\(port)/", daemon.url, Sandbox.adminToken, key.key])
        #expect(out.status == 0, "\(out.stdout)\(out.stderr)")
        #expect(out.stdout.hasSuffix("ok\n"))
    }

    /// The recipe of a real deployment: the daemon and Debian's crowdsec-firewall-bouncer (0.0.25,
    /// nftables mode, polling every second) in namespace `a`, another host in `b`.
    @Test(.enabled(if: firewallBouncerUnavailable == nil, "\(firewallBouncerUnavailable ?? "")"))
    func theFirewallBouncerEnforcesRampartsDecisions() async throws {
        try await onOwnThread { try Self.firewallBouncerBody() }
    }

    static func firewallBouncerBody() throws {
        let pair = try NamespacePair()
        let key = try BouncerKey(name: "edge-fw")
        let sandbox = try Sandbox(
            listen: "0.0.0.0:0",
            extra: config(crowdsec: "127.0.0.1:8080", keys: [key], extra: "safety: {allow_non_global: [198.18.0.0/15, 2001:2::/48]}"))
        let daemon = try DaemonProcess(sandbox, namespace: pair.a)
        defer { _ = daemon.stop() }
        let settings = sandbox.directory.appendingPathComponent("crowdsec-firewall-bouncer.yaml").path
        try """
        mode: nftables
        update_frequency: 1s
        log_mode: stdout
        log_level: debug
        api_url: http://127.0.0.1:8080/
        api_key: \(key.key)
        disable_ipv6: false
        deny_action: DROP
        deny_log: false
        supported_decisions_types: [ban]
        blacklists_ipv4: crowdsec-blacklists
        blacklists_ipv6: crowdsec6-blacklists
        nftables:
          ipv4: {enabled: true, set-only: false, table: crowdsec, chain: crowdsec-chain}
          ipv6: {enabled: true, set-only: false, table: crowdsec6, chain: crowdsec6-chain}
        prometheus: {enabled: false, listen_addr: 127.0.0.1, listen_port: "60601"}
        """.write(toFile: settings, atomically: true, encoding: .utf8)
        let checked = try pair.exec(pair.a, [bouncerBinary, "-c", settings, "-t"])
        #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")

        let logPath = sandbox.directory.appendingPathComponent("bouncer.log").path
        func log() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
        func startBouncer() throws -> Process {
            // Appended to across restarts, so the log holds what each run said.
            if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", pair.a, bouncerBinary, "-c", settings]
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            log.seekToEndOfFile()
            process.standardOutput = log
            process.standardError = log
            process.standardInput = FileHandle.nullDevice
            try process.run()
            return process
        }
        var bouncer = try startBouncer()
        defer {
            bouncer.terminate()
            bouncer.waitUntilExit()
        }
        let api = ["--config", sandbox.configPath, "--url", "http://127.0.0.1:\(daemon.port)", "--token", Sandbox.adminToken]
        func rampart(_ arguments: [String]) throws {
            let out = try pair.exec(pair.a, [rampartBinary] + arguments + api)
            #expect(out.status == 0, "rampart \(arguments.joined(separator: " ")): \(out.stderr)")
        }
        /// The elements of the bouncer's set, with the seconds each has left.
        func elements(_ family: String, _ table: String, _ set: String) throws -> [String: Double] {
            let out = try pair.exec(pair.a, ["/usr/sbin/nft", "-j", "list", "set", family, table, set])
            let root = try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]
            var found: [String: Double] = [:]
            for object in root?["nftables"] as? [[String: Any]] ?? [] {
                for entry in (object["set"] as? [String: Any])?["elem"] as? [Any] ?? [] {
                    if let elem = (entry as? [String: Any])?["elem"] as? [String: Any], let value = elem["val"] as? String {
                        found[value] = (elem["expires"] as? Double) ?? Double(elem["expires"] as? Int ?? 0)
                    } else if let value = entry as? String {
                        found[value] = 0
                    }
                }
            }
            return found
        }
        func v4() throws -> [String: Double] { try elements("ip", "crowdsec", "crowdsec-blacklists") }
        func v6() throws -> [String: Double] { try elements("ip6", "crowdsec6", "crowdsec6-blacklists") }
        #expect(
            try eventually(10) { try v4().isEmpty && !(try pair.exec(pair.a, ["/usr/sbin/nft", "list", "table", "ip", "crowdsec"]).stdout.isEmpty) })
        #expect(try pair.reachable("198.18.0.1", port: daemon.port).tcp, "b reaches a before any decision")

        let blocked = Date()
        try rampart(["decisions", "add", "198.18.0.2", "--duration", "4h"])
        #expect(try eventually(5) { try v4()["198.18.0.2"] != nil }, "the bouncer's set holds the decision")
        print("crowdsec-firewall-bouncer: decision to element in \(Int(Date().timeIntervalSince(blocked) * 1000)) ms (polling every 1 s)")
        #expect(try v4()["198.18.0.2"].map { $0 > 3 * 3600 && $0 <= 4 * 3600 } == true)
        #expect(try !pair.reachable("198.18.0.1", port: daemon.port).tcp, "b can no longer connect")

        try rampart(["decisions", "add", "2001:2::2", "--duration", "1h"])
        #expect(try eventually(5) { try v6()["2001:2::2"] != nil }, "an IPv6 decision reaches the ip6 set")

        // An extension refreshes the element's timeout: sent as deleted and new in one answer.
        try rampart(["decisions", "add", "198.18.0.2", "--duration", "48h"])
        #expect(try eventually(5) { try (v4()["198.18.0.2"] ?? 0) > 47 * 3600 }, "the element's timeout is ~48h: \((try? v4()) ?? [:])")

        // A revocation removes it, and b connects again.
        try rampart(["decisions", "delete", "--value", "198.18.0.2"])
        #expect(try eventually(5) { try v4()["198.18.0.2"] == nil })
        #expect(try eventually(3) { try pair.reachable("198.18.0.1", port: daemon.port).tcp })

        // More decisions, then a restart of the bouncer: its first pull brings it to exactly
        // Rampart's bans in force.
        for host in 10..<15 { try rampart(["decisions", "add", "198.18.1.\(host)", "--duration", "2h"]) }
        try rampart(["decisions", "delete", "--value", "198.18.1.14"])
        bouncer.terminate()
        bouncer.waitUntilExit()
        let firstRun = log()
        #expect(firstRun.contains("1 decision added"), "\(firstRun.suffix(2000))")
        bouncer = try startBouncer()
        let expected = Set((10..<14).map { "198.18.1.\($0)" })
        let resynced = try eventually(10) { try Set(v4().keys) == expected && Set(v6().keys) == ["2001:2::2"] }
        #expect(resynced, "\((try? v4()) ?? [:]) \((try? v6()) ?? [:])")

        // The restarted bouncer's first pull adds the five bans in force (it logs so after making them).
        #expect(eventually(5) { log().dropFirst(firstRun.count).contains("5 decisions added") }, "\(log().suffix(2000))")
        #expect(!log().contains("panic"), "\(log().suffix(2000))")
        #expect(!log().contains("unable to"), "\(log().suffix(2000))")
    }
}
