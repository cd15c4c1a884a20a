import Foundation
import RampartTesting
import Testing

/// Two network namespaces joined by a veth pair: `a` (198.18.0.1, 2001:2::1) runs the daemon with
/// the nftables backend, `b` (198.18.0.2, 2001:2::2) is the other host. Benchmarking ranges only
/// (RFC 2544, RFC 5180), listed in `allow_non_global` for the test.
final class NamespacePair {
    let a: String
    let b: String

    /// Why these tests cannot run here, or nil when they can.
    static let unavailable: String? = {
        guard getuid() == 0 else { return "needs root to create network namespaces and change nftables" }
        for tool in ["/usr/sbin/nft", "/usr/sbin/ip", "/usr/bin/ping", "/usr/bin/curl"] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing (deploy/setup-dev.sh installs it)"
        }
        let probe = "rampart-probe-\(getpid())"
        guard let made = try? run("/usr/sbin/ip", ["netns", "add", probe]), made.status == 0 else {
            return "cannot create a network namespace here"
        }
        _ = try? run("/usr/sbin/ip", ["netns", "del", probe])
        return nil
    }()

    init() throws {
        let tag = String(UInt32.random(in: 0..<UInt32.max), radix: 36)
        a = "rampart-a-\(tag)"
        b = "rampart-b-\(tag)"
        let steps: [[String]] = [
            ["netns", "add", a], ["netns", "add", b],
            ["link", "add", "ra\(tag)", "netns", a, "type", "veth", "peer", "name", "rb\(tag)", "netns", b],
            ["-n", a, "addr", "add", "198.18.0.1/24", "dev", "ra\(tag)"], ["-n", b, "addr", "add", "198.18.0.2/24", "dev", "rb\(tag)"],
            ["-n", a, "addr", "add", "2001:2::1/64", "dev", "ra\(tag)", "nodad"],
            ["-n", b, "addr", "add", "2001:2::2/64", "dev", "rb\(tag)", "nodad"],
            ["-n", a, "link", "set", "ra\(tag)", "up"], ["-n", b, "link", "set", "rb\(tag)", "up"],
            ["-n", a, "link", "set", "lo", "up"], ["-n", b, "link", "set", "lo", "up"],
        ]
        for step in steps {
            let out = try run("/usr/sbin/ip", step)
            guard out.status == 0 else { throw DaemonProcess.DaemonError(message: "ip \(step.joined(separator: " ")): \(out.stderr)") }
        }
    }

    deinit {
        _ = try? run("/usr/sbin/ip", ["netns", "del", a])
        _ = try? run("/usr/sbin/ip", ["netns", "del", b])
    }

    func exec(_ namespace: String, _ argv: [String]) throws -> Output {
        try run("/usr/sbin/ip", ["netns", "exec", namespace] + argv)
    }

    /// Whether `b` reaches `a`: one ping, and a TCP connection to the daemon's port.
    func reachable(_ address: String, port: Int) throws -> (ping: Bool, tcp: Bool) {
        let ping = try exec(b, ["/usr/bin/ping", "-c", "1", "-W", "1", address]).status == 0
        let host = address.contains(":") ? "[\(address)]" : address
        let tcp = try exec(b, ["/usr/bin/curl", "-s", "-o", "/dev/null", "--connect-timeout", "1", "http://\(host):\(port)/healthz"]).status == 0
        return (ping, tcp)
    }

    /// The elements of the daemon's sets in `a`: set name to element text.
    func elements() throws -> [String: Set<String>] {
        let out = try exec(a, ["/usr/sbin/nft", "-j", "list", "table", "inet", "rampart"])
        let root = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]
        var sets: [String: Set<String>] = [:]
        for object in root?["nftables"] as? [[String: Any]] ?? [] {
            guard let set = object["set"] as? [String: Any], let name = set["name"] as? String else { continue }
            var found: Set<String> = []
            for entry in set["elem"] as? [Any] ?? [] {
                let value = ((entry as? [String: Any])?["elem"] as? [String: Any])?["val"] ?? entry
                if let text = value as? String {
                    found.insert(text)
                } else if let prefix = (value as? [String: Any])?["prefix"] as? [String: Any] {
                    found.insert("\(prefix["addr"] ?? "?")/\(prefix["len"] ?? "?")")
                }
            }
            sets[name] = found
        }
        return sets
    }

    /// The whole ruleset of `a`, without element lists and counters.
    func rulesetShape() throws -> String {
        let out = try exec(a, ["/usr/sbin/nft", "list", "ruleset"])
        return out.stdout.split(separator: "\n").filter { !$0.contains("elements") && !$0.contains("expires") }
            .map { $0.replacingOccurrences(of: #"counter packets \d+ bytes \d+"#, with: "counter", options: .regularExpression) }
            .joined(separator: "\n")
    }
}

@Suite(.serialized, .enabled(if: NamespacePair.unavailable == nil, "\(NamespacePair.unavailable ?? "")"))
struct NFTablesTests {
    static let config = """
        firewall: {backend: nftables}
        safety: {allow_non_global: [198.18.0.0/15, 2001:2::/48]}
        """

    func api(_ pair: NamespacePair, _ daemon: DaemonProcess, _ method: String, _ path: String, _ body: String? = nil) throws -> Output {
        var argv = ["/usr/bin/curl", "-sS", "-X", method, "-H", "Authorization: Bearer \(Sandbox.adminToken)", "-w", "\n%{http_code}"]
        if let body { argv += ["-H", "Content-Type: application/json", "--data-binary", body] }
        return try pair.exec(pair.a, argv + ["http://127.0.0.1:\(daemon.port)\(path)"])
    }

    @Test func blocksDropRealPacketsAndLiftOnRevocationAndExpiry() async throws {
        try await onOwnThread { [self] in try self.blocksDropRealPacketsAndLiftOnRevocationAndExpiryBody() }
    }

    func blocksDropRealPacketsAndLiftOnRevocationAndExpiryBody() throws {
        let pair = try NamespacePair()
        let sandbox = try Sandbox(listen: "\"[::]:0\"", extra: Self.config)
        let daemon = try DaemonProcess(sandbox, namespace: pair.a)
        defer { _ = daemon.stop() }
        let port = daemon.port

        #expect(try pair.reachable("198.18.0.1", port: port) == (true, true))
        #expect(try pair.reachable("2001:2::1", port: port) == (true, true))

        let created = try api(pair, daemon, "POST", "/v1/decisions", #"{"value": "198.18.0.2", "duration": "1h"}"#)
        #expect(created.stdout.hasSuffix("201"), "\(created.stdout)")
        // A block goes to the kernel while its commit is synced, an unblock once its commit is
        // synced: either may land just after the answer, so each is waited for there.
        #expect(try eventually(5) { try pair.elements()["in4"] == ["198.18.0.2"] })
        #expect(try pair.reachable("198.18.0.1", port: port) == (false, false))
        #expect(try pair.reachable("2001:2::1", port: port) == (true, true))

        let revoked = try api(pair, daemon, "DELETE", "/v1/decisions?value=198.18.0.2")
        #expect(revoked.stdout.hasSuffix("200"), "\(revoked.stdout)")
        #expect(try eventually(5) { try pair.elements()["in4"] == [] })
        #expect(try pair.reachable("198.18.0.1", port: port) == (true, true))

        _ = try api(pair, daemon, "POST", "/v1/decisions", #"{"value": "2001:2::2", "duration": "1h"}"#)
        #expect(try eventually(5) { try pair.elements().values.contains { $0.contains("2001:2::2") } })
        #expect(try pair.reachable("2001:2::1", port: port) == (false, false))
        _ = try api(pair, daemon, "DELETE", "/v1/decisions?value=2001:2::2")
        #expect(try eventually(5) { try !pair.elements().values.contains { $0.contains("2001:2::2") } })
        #expect(try pair.reachable("2001:2::1", port: port) == (true, true))

        // A network that holds this host's own address is refused.
        let own = try api(pair, daemon, "POST", "/v1/decisions", #"{"value": "198.18.0.0/24", "duration": "1h"}"#)
        #expect(own.stdout.hasSuffix("422") && own.stdout.contains("an address of this host"), "\(own.stdout)")

        // A short block of a network lapses in the kernel on time, and the store closes it. (3 s:
        // the blocked probes take up to 2 s, one for ping and one for the TCP connect.)
        _ = try api(pair, daemon, "POST", "/v1/decisions", #"{"value": "198.18.0.2/31", "duration": "3s"}"#)
        #expect(try eventually(5) { try pair.elements()["in4_net0"] == ["198.18.0.2/31"] })
        #expect(try pair.reachable("198.18.0.1", port: port) == (false, false))
        Thread.sleep(forTimeInterval: 1.2)
        #expect(try pair.reachable("198.18.0.1", port: port) == (true, true))
        #expect(try eventually(3) { try api(pair, daemon, "GET", "/v1/decisions?active=true").stdout.contains(#""decisions":[]"#) })
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try pair.elements()["in4_net0"] == [])
        #expect(!daemon.log.contains("firewall.apply_failed"), "\(daemon.log)")
    }

    @Test func hostileValuesNeverReachTheRuleset() async throws {
        try await onOwnThread { [self] in try self.hostileValuesNeverReachTheRulesetBody() }
    }

    func hostileValuesNeverReachTheRulesetBody() throws {
        let pair = try NamespacePair()
        let sandbox = try Sandbox(extra: Self.config)
        let daemon = try DaemonProcess(sandbox, namespace: pair.a)
        defer { _ = daemon.stop() }
        _ = try api(pair, daemon, "POST", "/v1/decisions", #"{"value": "198.18.0.9", "duration": "1h"}"#)
        #expect(try eventually(5) { try pair.elements()["in4"] == ["198.18.0.9"] })
        let before = try pair.rulesetShape()
        let hostile = [
            "1.2.3.4; flush ruleset", "1.2.3.4\nflush ruleset", "1.2.3.4 }", "$(reboot)", "flush ruleset", "1.2.3.4\u{0}",
            "198.18.0.10 } ; add rule inet rampart input accept ; {", "0.0.0.0/0", "::/0", "::ffff:127.0.0.1", "198.18.0.0/8",
        ]
        for value in hostile {
            let body = String(decoding: try JSONSerialization.data(withJSONObject: ["value": value, "duration": "1h"]), as: UTF8.self)
            let answer = try api(pair, daemon, "POST", "/v1/decisions", body)
            #expect(!answer.stdout.hasSuffix("201"), "\(value.debugDescription) was accepted: \(answer.stdout)")
            let line = String(decoding: try JSONSerialization.data(withJSONObject: [value]), as: UTF8.self)
            _ = try pair.exec(
                pair.a,
                [
                    "/usr/bin/curl", "-sS", "-H", "Authorization: Bearer \(Sandbox.adminToken)", "-H", "Content-Type: application/json",
                    "--data-binary", line, "http://127.0.0.1:\(daemon.port)/v1/indicators",
                ]
            )
        }
        #expect(try pair.rulesetShape() == before)
        let elements = try pair.elements()
        #expect(elements.values.reduce(0) { $0 + $1.count } == 2)
        #expect(elements["in4"] == ["198.18.0.9"] && elements["out4"] == ["198.18.0.9"])
    }

    @Test func aRestartedDaemonBringsTheKernelToTheStoreWithoutRebanning() async throws {
        try await onOwnThread { [self] in try self.aRestartedDaemonBringsTheKernelToTheStoreWithoutRebanningBody() }
    }

    func aRestartedDaemonBringsTheKernelToTheStoreWithoutRebanningBody() throws {
        let pair = try NamespacePair()
        let sandbox = try Sandbox(extra: Self.config)
        var daemon = try DaemonProcess(sandbox, namespace: pair.a)
        for value in ["198.18.0.20", "198.18.0.21", "198.18.4.0/22", "198.18.5.0/24"] {
            _ = try api(pair, daemon, "POST", "/v1/decisions", "{\"value\": \"\(value)\", \"duration\": \"1h\", \"direction\": \"both\"}")
        }
        #expect(try eventually(5) { try pair.elements()["in4_net0"] == ["198.18.4.0/22"] && pair.elements()["in4_net1"] == ["198.18.5.0/24"] })
        kill(daemon.process.processIdentifier, SIGKILL)
        daemon.process.waitUntilExit()
        // Behind the store's back: one element goes, a stranger arrives.
        _ = try pair.exec(
            pair.a, ["/usr/sbin/nft", "delete element inet rampart in4 { 198.18.0.20 }; add element inet rampart in4 { 198.18.0.99 timeout 1h }"])
        let started = Date()
        daemon = try DaemonProcess(sandbox, namespace: pair.a)
        defer { _ = daemon.stop() }
        let elements = try pair.elements()
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(elements["in4"] == ["198.18.0.20", "198.18.0.21"])
        #expect(elements["out4"] == ["198.18.0.20", "198.18.0.21"])
        #expect(elements["in4_net0"] == ["198.18.4.0/22"])
        #expect(elements["in4_net1"] == ["198.18.5.0/24"])
        #expect(daemon.log.contains("firewall.reconciled"))
    }
}
