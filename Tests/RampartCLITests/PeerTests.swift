import Foundation
import GRDB
import RampartCore
import Testing

/// A node of a test mesh: a daemon on a loopback port of its own, with its own state directory
/// and key pair, started and stopped as a real process.
final class MeshNode {
    let name: String
    let port: Int
    let sandbox: Sandbox
    let keyPath: String
    let publicKey: String
    private(set) var daemon: DaemonProcess?

    /// - Parameter playbooks: file name to YAML.
    init(_ name: String, playbooks: [String: String]) throws {
        self.name = name
        port = try freePort()
        sandbox = try Sandbox(node: name, listen: "127.0.0.1:\(port)")
        keyPath = sandbox.directory.appendingPathComponent("node.key").path
        let out = try rampart("keygen", "--out", keyPath)
        publicKey = try #require(out.stdout.split(separator: "\n").last?.trimmingCharacters(in: .whitespaces))
        for (file, yaml) in playbooks {
            try yaml.write(to: sandbox.directory.appendingPathComponent("playbooks/\(file)"), atomically: true, encoding: .utf8)
        }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// Writes the configuration with these peers; `entry` adds lines to each peer's entry.
    func connect(_ peers: [MeshNode], entry: (MeshNode) -> String = { _ in "accept: {suggested: [block]}" }) throws {
        let list = peers.map { peer in
            """
              - name: \(peer.name)
                url: \(peer.url)/v1/peer/events
                public_key: \(peer.publicKey)
                \(entry(peer))
            """
        }
        try configure(peers: list.joined(separator: "\n"))
    }

    func configure(peers: String) throws {
        try """
            node: {id: \(name)}
            listen: 127.0.0.1:\(port)
            state_dir: state
            playbooks: playbooks
            safety: {allow_non_global: [198.18.0.0/15]}
            api_keys:
              - {name: ops, roles: [ingest, read, admin], token_sha256: 613168ee730e9cd635b49f16ecf9b532025da96f3ad0103455b04e5b476508cf}
            signing: {key_file: node.key}
            log: {level: info}
            peers:
            \(peers)
            """.write(toFile: sandbox.configPath, atomically: true, encoding: .utf8)
    }

    func start() throws { daemon = try DaemonProcess(sandbox) }

    func stop() {
        _ = daemon?.stop()
        daemon = nil
    }

    func kill9() {
        guard let daemon else { return }
        kill(daemon.process.processIdentifier, SIGKILL)
        daemon.process.waitUntilExit()
        self.daemon = nil
    }

    func api(_ method: String, _ path: String, _ body: String? = nil, contentType: String = "application/json") throws -> (Int, JSONValue?) {
        var argv = ["-sS", "-X", method, "-w", "\n%{http_code}", "-H", "Authorization: Bearer \(Sandbox.adminToken)"]
        if let body { argv += ["-H", "Content-Type: \(contentType)", "--data-binary", body] }
        let out = try run("/usr/bin/curl", argv + [url + path])
        let lines = out.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, try? JSONValue.parse(Array(lines.dropLast().joined(separator: "\n").utf8), maxDepth: 64))
    }

    /// Posts indicators as text; the acknowledged ids.
    @discardableResult
    func ingest(_ lines: [String], _ query: String = "confidence=90") throws -> [String] {
        let (status, answer) = try api("POST", "/v1/indicators?\(query)", lines.joined(separator: "\n"), contentType: "text/plain")
        #expect(status == 202, "ingest at \(name): \(status)")
        guard case .array(let ids)? = answer?["ids"] else { return [] }
        return ids.compactMap { if case .string(let id) = $0 { id } else { nil } }
    }

    /// Reads the node's database (also while it is stopped).
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        let queue = try DatabaseQueue(path: sandbox.databasePath)
        defer { try? queue.close() }
        return try queue.read(body)
    }

    /// Items this node stored that came from a peer, each counted once per acceptance audit entry.
    func acceptedFromPeers() throws -> [String: Int] {
        try read { db in
            var counts: [String: Int] = [:]
            for subject in try String.fetchAll(db, sql: "SELECT subject FROM audit WHERE event = 'item.accepted' AND detail LIKE '%\"via\":\"peer:%'") {
                counts[subject, default: 0] += 1
            }
            return counts
        }
    }

    func activeValues() throws -> Set<String> {
        try read { db in Set(try String.fetchAll(db, sql: "SELECT value FROM decision WHERE state = 'active'")) }
    }

    func auditCount(_ event: String) throws -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit WHERE event = ?", arguments: [event]) ?? 0 }
    }
}

/// A free loopback TCP port, for daemons that must know each other's address before they start.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw DaemonProcess.DaemonError(message: "no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return try condition()
}

/// Real daemons exchanging items over loopback: propagation, durability across stops and
/// `kill -9`, signatures, sharing policy, revocations, loops.
@Suite(.serialized) struct PeerTests {
    static let share = """
        name: share-c2
        match: {kind: [ipv4], confidence: {min: 80}}
        actions:
          - block: {duration: 1h}
          - propagate: {to: all, suggest: [block]}
        """
    static let blockSuggested = """
        name: block-suggested
        match: {kind: [ipv4], from: [peer:a, peer:b, peer:c], suggested: [block]}
        actions:
          - block: {duration: 30m}
        """

    static func addresses(_ count: Int, from base: Int) -> [String] {
        (base..<base + count).map { "198.18.\($0 / 256 % 256).\($0 % 256)" }
    }

    @Test func triangleSharesAndAStoppedPeerGetsEverythingOnceOnReturn() throws {
        let a = try MeshNode("a", playbooks: ["share.yaml": Self.share])
        let b = try MeshNode("b", playbooks: ["block.yaml": Self.blockSuggested])
        let c = try MeshNode("c", playbooks: ["block.yaml": Self.blockSuggested])
        try a.connect([b, c])
        try b.connect([a, c])
        try c.connect([a, b])
        for node in [a, b, c] { try node.start() }
        defer { for node in [a, b, c] { node.stop() } }

        try a.ingest(["198.18.7.1"])
        #expect(try eventually(5) { try b.activeValues().contains("198.18.7.1") && c.activeValues().contains("198.18.7.1") })

        c.stop()
        let more = Self.addresses(1000, from: 10_000)
        let ids = try a.ingest(more)
        #expect(ids.count == 1000)
        #expect(try eventually(15) { try b.activeValues().isSuperset(of: more) })
        let (_, waiting) = try a.api("GET", "/v1/peers")
        let queued = (waiting?["peers"]).flatMap { if case .array(let list) = $0 { list.first { $0["name"] == .string("c") } } else { nil } }
        #expect(queued?["queue_depth"] == .number(1000), "a's outbox for the stopped c: \(String(describing: queued))")

        try c.start()
        #expect(try eventually(15) { try c.activeValues().isSuperset(of: more) })
        let atC = try c.acceptedFromPeers()
        #expect(atC.count == 1001 && atC.values.allSatisfy { $0 == 1 }, "each item once at c: \(atC.count) items, max \(atC.values.max() ?? 0)")
        #expect(Set(ids).isSubset(of: Set(atC.keys)))
        // b and c hold them from a, not from each other: nothing is relayed by default.
        #expect(try b.acceptedFromPeers().count == 1001)

        let list = try run(rampartBinary, ["peers", "list", "--config", a.sandbox.configPath, "--token", Sandbox.adminToken])
        #expect(list.status == 0 && list.stdout.contains("QUEUED") && list.stdout.contains("1001"), "\(list.stdout)\(list.stderr)")
        for node in [a, b, c] {
            #expect(try rampart("audit", "verify", "--config", node.sandbox.configPath).status == 0)
        }
    }

    @Test func killDashNineDuringDeliveryLosesAndDoublesNothing() throws {
        let a = try MeshNode("a", playbooks: ["share.yaml": Self.share])
        let b = try MeshNode("b", playbooks: ["block.yaml": Self.blockSuggested])
        try a.connect([b])
        try b.connect([a])
        try a.start()
        try b.start()
        defer {
            a.stop()
            b.stop()
        }
        var acknowledged: [String] = []
        for batch in 0..<10 { acknowledged += try a.ingest(Self.addresses(2000, from: 20_000 + batch * 2000)) }
        a.kill9()
        let before = try b.acceptedFromPeers().count
        #expect(before < acknowledged.count, "delivery had finished before the kill; the test proves nothing")
        try a.start()
        #expect(try eventually(30) { try b.acceptedFromPeers().count >= acknowledged.count })
        let atB = try b.acceptedFromPeers()
        #expect(Set(acknowledged) == Set(atB.keys))
        #expect(atB.values.allSatisfy { $0 == 1 })
        #expect(try b.activeValues().count == acknowledged.count)
    }

    @Test func forgedReplayedStaleAndUnknownRequestsApplyNothing() throws {
        let a = try MeshNode("a", playbooks: [:])
        let b = try MeshNode("b", playbooks: ["block.yaml": Self.blockSuggested])
        try b.connect([a])
        try b.start()
        defer { b.stop() }
        let key = try WebhookSignature.SigningKey(text: String(contentsOfFile: a.keyPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
        func item(_ value: String) -> [UInt8] {
            Item(
                id: IDGenerator.shared.next(), payload: .indicator(Indicator(kind: .ipv4, value: value, confidence: 90)), via: "api:x",
                origin: "a", suggested: ["block"], receivedAt: Date()
            ).wireJSON
        }
        func send(_ body: [UInt8], id: String = "msg_\(UUID().uuidString)", at: Date = Date(), key: WebhookSignature.SigningKey, tamper: Bool = false) throws -> Int {
            let timestamp = Int(at.timeIntervalSince1970)
            let signature = try WebhookSignature.sign(id: id, timestamp: timestamp, body: body, key: key)
            let sent = tamper ? Array(String(decoding: body, as: UTF8.self).replacingOccurrences(of: "198.18.5.1", with: "198.18.5.9").utf8) : body
            let out = try run(
                "/usr/bin/curl",
                [
                    "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/json", "-H", "webhook-id: \(id)",
                    "-H", "webhook-timestamp: \(timestamp)", "-H", "webhook-signature: \(signature)", "--data-binary", String(decoding: sent, as: UTF8.self),
                    b.url + "/v1/peer/events",
                ]
            )
            return Int(out.stdout) ?? 0
        }
        let good = PeerMessage.encode(path: ["a"], hopsLeft: 0, entries: [item("198.18.5.1")], at: Date())
        #expect(try send(good, id: "msg_first", key: key) == 200)
        #expect(try send(good, id: "msg_first", key: key) == 409)  // replayed
        #expect(try send(PeerMessage.encode(path: ["a"], hopsLeft: 0, entries: [item("198.18.5.2")], at: Date()), at: Date().addingTimeInterval(-600), key: key) == 401)
        #expect(try send(good, key: key, tamper: true) == 401)  // forged: the body changed after signing
        #expect(try send(PeerMessage.encode(path: ["a"], hopsLeft: 0, entries: [item("198.18.5.3")], at: Date()), key: WebhookSignature.SigningKey()) == 401)
        // Signed by a, but claiming to come from elsewhere.
        #expect(try send(PeerMessage.encode(path: ["z"], hopsLeft: 0, entries: [item("198.18.5.4")], at: Date()), key: key) == 400)
        #expect(try b.acceptedFromPeers().count == 1)
        #expect(try b.activeValues() == ["198.18.5.1"])
        let metrics = try run("/usr/bin/curl", ["-sS", b.url + "/metrics"]).stdout
        for (reason, count) in [("replayed", 1), ("stale-timestamp", 1), ("bad-signature", 2), ("invalid-body", 1)] {
            #expect(metrics.contains("rampart_peer_requests_refused_total{reason=\"\(reason)\"} \(count)"), "\(reason)")
        }
    }

    @Test func peersAddressesAreNeverBlocked() throws {
        let a = try MeshNode("a", playbooks: [:])
        try a.configure(
            peers: """
                  - name: far
                    url: http://198.18.44.4:9/v1/peer/events
                    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
                """
        )
        try a.start()
        defer { a.stop() }
        for value in ["198.18.44.4", "198.18.44.0/24"] {
            let (status, answer) = try a.api("POST", "/v1/decisions", #"{"value": "\#(value)", "duration": "1h"}"#)
            #expect(status == 422, "\(value): \(String(describing: answer))")
            #expect(answer?["detail"].map { "\($0)" }?.contains("peer far") == true)
        }
        #expect(try a.api("POST", "/v1/decisions", #"{"value": "198.18.45.4", "duration": "1h"}"#).0 == 201)
    }

    @Test func tlpRedReachesNoPeerAndPoliciesApply() throws {
        let a = try MeshNode("a", playbooks: ["share.yaml": Self.share])
        let b = try MeshNode("b", playbooks: ["block.yaml": Self.blockSuggested])
        let c = try MeshNode("c", playbooks: ["block.yaml": Self.blockSuggested])
        // b may hear of anything up to amber+strict, c only green, with descriptions redacted.
        try a.connect([b, c]) { peer in
            peer.name == "b" ? "share: {max_tlp: amber+strict}" : "share: {max_tlp: green, redact: [description]}"
        }
        try b.connect([a])
        try c.connect([a]) { _ in "accept: {suggested: [block], max_duration: 10m, min_confidence: 95}" }
        for node in [a, b, c] { try node.start() }
        defer { for node in [a, b, c] { node.stop() } }

        try a.ingest(["198.18.6.1"], "confidence=90&tlp=red")
        try a.ingest(["198.18.6.2"], "confidence=90&tlp=amber")
        try a.ingest(["198.18.6.3"], "confidence=99&tlp=green")
        try a.ingest(["198.18.6.4"], "confidence=90&tlp=green")
        #expect(try eventually(5) { try b.activeValues() == ["198.18.6.2", "198.18.6.3", "198.18.6.4"] })
        // c: only green reaches it, and its trust policy refuses confidence below 95 and caps blocks at 10 minutes.
        #expect(try eventually(5) { try c.activeValues() == ["198.18.6.3"] })
        #expect(try c.auditCount("item.refused") == 1)
        let expiry = try c.read { db in try Int64.fetchOne(db, sql: "SELECT expires_at - created_at FROM decision") }
        #expect(expiry == 600_000)
        let red = try a.read { db in
            try String.fetchAll(db, sql: "SELECT detail FROM audit WHERE event = 'action.propagate'").filter { $0.contains("tlp_red") }
        }
        #expect(red.count == 1 && red[0].contains("b:tlp_red") && red[0].contains("c:tlp_red"))
        for node in [b, c] { #expect(try !node.acceptedFromPeers().isEmpty && node.read { db in try String.fetchAll(db, sql: "SELECT detail FROM audit") }.allSatisfy { !$0.contains("198.18.6.1") }) }
    }

    @Test func revocationsFollowTheItemAndPurgeRemovesWhatAPeerSent() throws {
        let a = try MeshNode("a", playbooks: ["share.yaml": Self.share])
        let b = try MeshNode("b", playbooks: ["block.yaml": Self.blockSuggested])
        try a.connect([b])
        try b.connect([a])
        try a.start()
        try b.start()
        defer {
            a.stop()
            b.stop()
        }
        try a.ingest(["198.18.9.1", "198.18.9.2", "198.18.9.3"])
        #expect(try eventually(5) { try b.activeValues().count == 3 })
        #expect(try a.api("DELETE", "/v1/decisions?value=198.18.9.1&reason=false%20positive").0 == 200)
        #expect(try eventually(5) { try b.activeValues() == ["198.18.9.2", "198.18.9.3"] })
        let reason = try b.read { db in try String.fetchOne(db, sql: "SELECT detail FROM audit WHERE event = 'decision.revoked'") }
        #expect(reason?.contains("false positive") == true && reason?.contains("peer:a") == true)

        let purge = try run(rampartBinary, ["peers", "purge", "a", "--config", b.sandbox.configPath, "--token", Sandbox.adminToken])
        #expect(purge.status == 0 && purge.stdout.contains("2 decisions revoked"), "\(purge.stdout)\(purge.stderr)")
        #expect(try b.activeValues().isEmpty)
    }

    @Test func aRingOfFiveAppliesEachItemOncePerNodeWithoutStorms() throws {
        let relay = """
            name: relay
            match: {kind: [ipv4]}
            actions:
              - block: {duration: 1h}
              - propagate: {to: all, relay: true, suggest: [block]}
            """
        let nodes = try (0..<5).map { try MeshNode("n\($0)", playbooks: ["relay.yaml": relay]) }
        for (index, node) in nodes.enumerated() {
            try node.connect([nodes[(index + 4) % 5], nodes[(index + 1) % 5]])
        }
        for node in nodes { try node.start() }
        defer { for node in nodes { node.stop() } }
        let values = Self.addresses(100, from: 30_000)
        let ids = try nodes[0].ingest(values)
        #expect(try eventually(10) { try nodes.dropFirst().allSatisfy { try $0.acceptedFromPeers().count == 100 } })
        Thread.sleep(forTimeInterval: 0.5)  // let any stray request arrive
        var requests = 0
        for node in nodes.dropFirst() {
            let accepted = try node.acceptedFromPeers()
            #expect(Set(accepted.keys) == Set(ids) && accepted.values.allSatisfy { $0 == 1 }, "\(node.name)")
            #expect(try node.activeValues() == Set(values))
            requests += try node.auditCount("peer.received")
        }
        // Each node hears the batch from at most its two neighbours, and n0 never hears it back.
        #expect(requests <= 8, "\(requests) requests for one batch across the ring")
        #expect(try nodes[0].auditCount("peer.received") == 0)
    }
}
