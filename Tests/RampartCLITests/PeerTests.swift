import Foundation
import RampartTesting
import GRDB
import RampartCore
import Testing

/// A node of a test mesh: a daemon on a loopback port of its own, with its own state directory
/// and key pair, started and stopped as a real process.
final class MeshNode {
    let name: String
    let host: String
    let port: Int
    /// A network namespace to run in (then the firewall is nftables), or nil for loopback.
    let namespace: String?
    let sandbox: Sandbox
    let keyPath: String
    let publicKey: String
    private(set) var daemon: DaemonProcess?

    /// - Parameter playbooks: file name to YAML.
    init(_ name: String, playbooks: [String: String], namespace: String? = nil, host: String = "127.0.0.1") throws {
        self.name = name
        self.namespace = namespace
        self.host = host
        port = namespace == nil ? try freePort() : 8470
        sandbox = try Sandbox(node: name, listen: "\(host):\(port)")
        keyPath = sandbox.directory.appendingPathComponent("node.key").path
        let out = try rampart("keygen", "--out", keyPath)
        publicKey = try #require(out.stdout.split(separator: "\n").last?.trimmingCharacters(in: .whitespaces))
        for (file, yaml) in playbooks {
            try yaml.write(to: sandbox.directory.appendingPathComponent("playbooks/\(file)"), atomically: true, encoding: .utf8)
        }
    }

    var url: String { "http://\(host):\(port)" }

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
        listen: \(namespace == nil ? "127.0.0.1" : "0.0.0.0"):\(port)
        firewall: {backend: \(namespace == nil ? "dry-run" : "nftables")}
        state_dir: state
        playbooks: playbooks
        safety: {allow_non_global: [198.18.0.0/15]}
        \(TestKeys.apiKeysYAML(adminOnly: true))
        signing: {key_file: node.key}
        log: {level: info}
        peers:
        \(peers)
        """.write(toFile: sandbox.configPath, atomically: true, encoding: .utf8)
    }

    func start() throws { daemon = try DaemonProcess(sandbox, namespace: namespace) }

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
        let command = ["/usr/bin/curl"] + argv + [url + path]
        let out = try namespace.map { try run("/usr/sbin/ip", ["netns", "exec", $0] + command) } ?? run(command[0], Array(command.dropFirst()))
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
            for subject in try String.fetchAll(db, sql: "SELECT subject FROM audit WHERE event = 'item.accepted' AND detail LIKE '%\"via\":\"peer:%'")
            {
                counts[subject, default: 0] += 1
            }
            return counts
        }
    }

    func activeValues() throws -> Set<String> {
        try read { db in Set(try String.fetchAll(db, sql: "SELECT value FROM decision WHERE state = 'active'")) }
    }

    /// The details of an audit event, oldest first: entries of their own, and the events recorded
    /// in items' entries (each an object with its `event`).
    func auditDetails(_ event: String) throws -> [String] {
        try read { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT detail FROM (
                        SELECT seq, 0 AS k, detail FROM audit WHERE event = ?1
                        UNION ALL SELECT audit.seq, json_each.key + 1, json_each.value FROM audit, json_each(audit.caused)
                            WHERE json_extract(json_each.value, '$.event') = ?1)
                    ORDER BY seq, k
                    """, arguments: [event])
        }
    }

    /// Everything the audit log says, entry by entry (details and what items caused).
    func auditText() throws -> [String] {
        try read { db in try String.fetchAll(db, sql: "SELECT detail || coalesce(caused, '') FROM audit ORDER BY seq") }
    }

    func auditCount(_ event: String) throws -> Int {
        try auditDetails(event).count
    }
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

    /// a shares what it is sure of with b, which blocks what a suggests; both running.
    static func startedPair(entry: String = "accept: {suggested: [block]}") throws -> (MeshNode, MeshNode) {
        let a = try MeshNode("a", playbooks: ["share.yaml": share])
        let b = try MeshNode("b", playbooks: ["block.yaml": blockSuggested])
        try a.connect([b]) { _ in entry }
        try b.connect([a]) { _ in entry }
        try a.start()
        try b.start()
        return (a, b)
    }

    /// POSTs a body to a node's /v1/peer/events, signed with `key` (the body altered after signing
    /// when `tamper`); the HTTP status.
    static func postSigned(
        _ body: [UInt8], to node: MeshNode, id: String = "msg_\(UUID().uuidString)", at: Date = Date(), key: WebhookSignature.SigningKey,
        tamper: ((String) -> String)? = nil
    ) throws -> Int {
        let timestamp = Int(at.timeIntervalSince1970)
        let signature = try WebhookSignature.sign(id: id, timestamp: timestamp, body: body, key: key)
        let text = String(decoding: body, as: UTF8.self)
        let out = try run(
            "/usr/bin/curl",
            [
                "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/json", "-H", "webhook-id: \(id)",
                "-H", "webhook-timestamp: \(timestamp)", "-H", "webhook-signature: \(signature)", "--data-binary", tamper?(text) ?? text,
                node.url + "/v1/peer/events",
            ]
        )
        return Int(out.stdout) ?? 0
    }

    static func key(of node: MeshNode) throws -> WebhookSignature.SigningKey {
        try WebhookSignature.SigningKey(text: String(contentsOfFile: node.keyPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    static func addresses(_ count: Int, from base: Int) -> [String] {
        (base..<base + count).map { "198.18.\($0 / 256 % 256).\($0 % 256)" }
    }

    @Test func triangleSharesAndAStoppedPeerGetsEverythingOnceOnReturn() async throws {
        try await onOwnThread { [self] in try self.triangleSharesAndAStoppedPeerGetsEverythingOnceOnReturnBody() }
    }

    func triangleSharesAndAStoppedPeerGetsEverythingOnceOnReturnBody() throws {
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
        let metrics = try run("/usr/bin/curl", ["-sS", a.url + "/metrics"]).stdout
        #expect(metrics.contains(#"rampart_peer_outbox_depth{peer="c"} 1000"#), "\(metrics)")
        #expect(metrics.contains(#"rampart_peer_deliveries_total{peer="b",outcome="delivered"}"#))

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

    @Test func killDashNineDuringDeliveryLosesAndDoublesNothing() async throws {
        try await onOwnThread { [self] in try self.killDashNineDuringDeliveryLosesAndDoublesNothingBody() }
    }

    func killDashNineDuringDeliveryLosesAndDoublesNothingBody() throws {
        let (a, b) = try Self.startedPair()
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

    @Test func forgedReplayedStaleAndUnknownRequestsApplyNothing() async throws {
        try await onOwnThread { [self] in try self.forgedReplayedStaleAndUnknownRequestsApplyNothingBody() }
    }

    func forgedReplayedStaleAndUnknownRequestsApplyNothingBody() throws {
        let a = try MeshNode("a", playbooks: [:])
        let b = try MeshNode("b", playbooks: ["block.yaml": Self.blockSuggested])
        try b.connect([a])
        try b.start()
        defer { b.stop() }
        let key = try Self.key(of: a)
        func item(_ value: String) -> [UInt8] {
            Item(
                id: IDGenerator.shared.next(), payload: .indicator(Indicator(kind: .ipv4, value: value, confidence: 90)), via: "api:x",
                origin: "a", suggested: ["block"], receivedAt: Date()
            ).wireJSON
        }
        func send(
            _ body: [UInt8], id: String = "msg_\(UUID().uuidString)", at: Date = Date(), key: WebhookSignature.SigningKey, tamper: Bool = false
        ) throws -> Int {
            try Self.postSigned(
                body, to: b, id: id, at: at, key: key, tamper: tamper ? { $0.replacingOccurrences(of: "198.18.5.1", with: "198.18.5.9") } : nil)
        }
        let good = PeerMessage.encode(path: ["a"], hopsLeft: 0, entries: [item("198.18.5.1")], at: Date())
        #expect(try send(good, id: "msg_first", key: key) == 200)
        #expect(try send(good, id: "msg_first", key: key) == 409)  // replayed
        #expect(
            try send(
                PeerMessage.encode(path: ["a"], hopsLeft: 0, entries: [item("198.18.5.2")], at: Date()), at: Date().addingTimeInterval(-600), key: key
            ) == 401)
        #expect(try send(good, key: key, tamper: true) == 401)  // forged: the body changed after signing
        #expect(
            try send(PeerMessage.encode(path: ["a"], hopsLeft: 0, entries: [item("198.18.5.3")], at: Date()), key: WebhookSignature.SigningKey())
                == 401)
        // Signed by a, but claiming to come from elsewhere.
        #expect(try send(PeerMessage.encode(path: ["z"], hopsLeft: 0, entries: [item("198.18.5.4")], at: Date()), key: key) == 400)
        // Sync requests are signed, checked and refused on replay the same way.
        let digests = PeerSync.encode(.digests(PeerSync.digests([]), reciprocate: false), node: "a", at: Date())
        #expect(try send(digests, id: "msg_sync", key: key) == 200)
        #expect(try send(digests, id: "msg_sync", key: key) == 409)
        #expect(try send(digests, key: WebhookSignature.SigningKey()) == 401)
        #expect(try send(PeerSync.encode(.digests(PeerSync.digests([]), reciprocate: false), node: "z", at: Date()), key: key) == 400)
        #expect(try b.acceptedFromPeers().count == 1)
        #expect(try b.activeValues() == ["198.18.5.1"])
        let metrics = try run("/usr/bin/curl", ["-sS", b.url + "/metrics"]).stdout
        for (reason, count) in [("replayed", 2), ("stale_timestamp", 1), ("bad_signature", 3), ("invalid_body", 2)] {
            #expect(metrics.contains("rampart_peer_requests_refused_total{reason=\"\(reason)\"} \(count)"), "\(reason)")
        }
    }

    /// A peer answering 410, one redirecting, one asking to retry later: a stand-in HTTP server
    /// (Python's http.server) records when each was called.
    @Test func goneDisablesRedirectsAreNotFollowedAndRetryAfterIsHonoured() async throws {
        try await onOwnThread { [self] in try self.goneDisablesRedirectsAreNotFollowedAndRetryAfterIsHonouredBody() }
    }

    func goneDisablesRedirectsAreNotFollowedAndRetryAfterIsHonouredBody() throws {
        let server = try StandInServer()
        let port = server.port
        let a = try MeshNode("a", playbooks: ["share.yaml": Self.share])
        try a.configure(
            peers: ["gone", "moved", "busy"].map {
                "  - {name: \($0), url: \"http://127.0.0.1:\(port)/\($0)\", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}"
            }.joined(separator: "\n")
        )
        try a.start()
        defer { a.stop() }
        func hits() throws -> [String: [Double]] { try server.calls().mapValues { $0.map(\.at) } }
        func peers() throws -> [String: JSONValue] {
            guard case .array(let list)? = try a.api("GET", "/v1/peers").1?["peers"] else { return [:] }
            return Dictionary(
                uniqueKeysWithValues: list.compactMap { peer in peer["name"].flatMap { if case .string(let n) = $0 { (n, peer) } else { nil } } })
        }
        try a.ingest(["198.18.8.8"])
        #expect(try eventually(5) { try hits()["busy"]?.count == 2 })
        Thread.sleep(forTimeInterval: 1)
        let seen = try hits()
        // 410: one attempt, then the peer is disabled and its entry waits.
        #expect(seen["gone"]?.count == 1)
        #expect(try peers()["gone"]?["disabled"] == .bool(true) && peers()["gone"]?["queue_depth"] == .number(1))
        // 307: a failure each time, retried within the backoff, and the Location never called.
        #expect((seen["moved"]?.count ?? 0) >= 2 && seen["sink"] == nil)
        #expect(try peers()["moved"]?["reachable"] == .bool(false))
        // 429 with Retry-After: 2: the second attempt waited for it, and succeeded.
        let busy = seen["busy"] ?? []
        #expect(busy.count == 2 && (busy.last ?? 0) - (busy.first ?? 0) >= 1.9, "\(busy)")
        #expect(try peers()["busy"]?["queue_depth"] == .number(0) && peers()["busy"]?["sent"] == .number(1))
        // Disabled it stays, across a restart.
        a.stop()
        try a.start()
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try hits()["gone"]?.count == 1)
        #expect(try peers()["gone"]?["disabled"] == .bool(true))
        // A replay enables the disabled peer: it is tried again.
        let replay = try run(rampartBinary, ["peers", "replay", "gone", "--config", a.sandbox.configPath, "--token", Sandbox.adminToken])
        #expect(replay.status == 0, "\(replay.stderr)")
        #expect(try eventually(5) { try hits()["gone"]?.count == 2 })
    }

    /// A peer that drips its answer's body fails the delivery at its `timeout`, which is retried,
    /// and `GET /v1/peers` says so: the outbox is never held by one request.
    @Test func aPeerDrippingItsAnswerTimesOutAndIsRetried() async throws {
        try await onOwnThread { [self] in try self.aPeerDrippingItsAnswerTimesOutAndIsRetriedBody() }
    }

    func aPeerDrippingItsAnswerTimesOutAndIsRetriedBody() throws {
        let server = try StandInServer()
        let a = try MeshNode("a", playbooks: ["share.yaml": Self.share])
        try a.configure(peers: "  - {name: drip, url: \"\(server.url("drip"))\", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, timeout: 1s}")
        try a.start()
        defer { a.stop() }
        try a.ingest(["198.18.8.9"])
        #expect(try eventually(10) { (try server.calls()["drip"]?.count ?? 0) >= 2 })
        guard case .array(let peers)? = try a.api("GET", "/v1/peers").1?["peers"], let drip = peers.first else {
            Issue.record("no peers listed")
            return
        }
        #expect(drip["reachable"] == .bool(false))
        #expect(drip["queue_depth"] == .number(1))
        guard case .string(let error)? = drip["last_error"] else {
            Issue.record("no last_error: \(drip)")
            return
        }
        #expect(error.contains("no complete answer within 1s"), "\(error)")
    }

    /// Unauthenticated bodies cost little: headers that fail are refused before the body is read,
    /// and one address has at most two bodies read and verified at once (a third gets 503).
    @Test func unverifiedBodiesAreBoundedAndBadHeadersCostNoBody() async throws {
        try await onOwnThread { [self] in try self.unverifiedBodiesAreBoundedAndBadHeadersCostNoBodyBody() }
    }

    func unverifiedBodiesAreBoundedAndBadHeadersCostNoBodyBody() throws {
        let (a, b) = try Self.startedPair()
        defer {
            a.stop()
            b.stop()
        }
        let probe = try run(
            "/usr/bin/python3",
            [
                "-c",
                """
                import socket, time
                def head(length, stamp=None):
                    return (f"POST /v1/peer/events HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\n"
                            f"webhook-id: msg_{time.time_ns()}\\r\\nwebhook-timestamp: {stamp or int(time.time())}\\r\\n"
                            f"webhook-signature: v1,AAAA\\r\\nContent-Length: {length}\\r\\n\\r\\n").encode()
                def status(s):
                    s.settimeout(5)
                    return s.recv(64).split(b"\\r\\n")[0].decode()
                # A stale timestamp: refused with the body never sent.
                s = socket.create_connection(("127.0.0.1", \(b.port))); s.sendall(head(1000000, stamp=1)); print(status(s)); s.close()
                # Two bodies trickling in from this address, then a third request.
                slow = []
                for _ in range(2):
                    c = socket.create_connection(("127.0.0.1", \(b.port))); c.sendall(head(1000) + b"{"); slow.append(c)
                time.sleep(0.5)
                s = socket.create_connection(("127.0.0.1", \(b.port))); s.sendall(head(2) + b"{}"); print(status(s)); s.close()
                for c in slow: c.close()
                time.sleep(0.5)
                s = socket.create_connection(("127.0.0.1", \(b.port))); s.sendall(head(2) + b"{}"); print(status(s)); s.close()
                """,
            ]
        )
        #expect(
            probe.stdout.split(separator: "\n") == ["HTTP/1.1 401 Unauthorized", "HTTP/1.1 503 Service Unavailable", "HTTP/1.1 401 Unauthorized"],
            "\(probe.stdout)\(probe.stderr)")
    }

    @Test func anExpiredPeerGetsNothingAndIsNotHeard() async throws {
        try await onOwnThread { [self] in try self.anExpiredPeerGetsNothingAndIsNotHeardBody() }
    }

    func anExpiredPeerGetsNothingAndIsNotHeardBody() throws {
        let (a, b) = try Self.startedPair(entry: "expires: 2020-01-01")
        defer {
            a.stop()
            b.stop()
        }
        try a.ingest(["198.18.12.1"])
        let propagated = try a.auditDetails("action.propagate").first
        #expect(propagated?.contains("b:expired") == true, "\(propagated ?? "")")
        // Signed by a's key, but b's entry for a has expired.
        let body = PeerMessage.encode(path: ["a"], hopsLeft: 0, entries: [], at: Date())
        #expect(try Self.postSigned(body, to: b, key: Self.key(of: a)) == 403)
        #expect(try b.acceptedFromPeers().isEmpty)
    }

    /// `notify` posts its rendered body (fields escaped as JSON strings) through the outbox, and a
    /// failed post is retried.
    @Test func notifyPostsTheRenderedBodyAndRetries() async throws {
        try await onOwnThread { [self] in try self.notifyPostsTheRenderedBodyAndRetriesBody() }
    }

    func notifyPostsTheRenderedBodyAndRetriesBody() throws {
        let server = try StandInServer()
        let playbook = """
            name: tell-the-soc
            match: {kind: [ipv4]}
            actions:
              - notify: {url: "\(server.url("hook"))", template: '{"text": "blocked {{value}}: {{description}}", "tags": "{{#tags}}{{.}} {{/tags}}"}'}
              - notify: {url: "\(server.url("flaky"))", template: '{"value": "{{value}}"}'}
            """
        let a = try MeshNode("a", playbooks: ["notify.yaml": playbook])
        try a.configure(peers: "  []")
        try a.start()
        defer { a.stop() }
        let (status, _) = try a.api(
            "POST", "/v1/indicators", #"{"value": "198.18.14.1", "description": "said \"hi\" \\ then\nleft", "tags": ["c2", "tor"]}"#
        )
        #expect(status == 202)
        #expect(try eventually(5) { try server.calls()["flaky"]?.count == 2 && server.calls()["hook"]?.count == 1 })
        let body = try #require(server.calls()["hook"]?.first?.body)
        let json = try JSONValue.parse(Array(body.utf8))
        #expect(json["text"] == .string("blocked 198.18.14.1: said \"hi\" \\ then\nleft"), "\(body)")
        #expect(json["tags"] == .string("c2 tor "))
        #expect(try server.calls()["flaky"]?.last?.body == #"{"value": "198.18.14.1"}"#)
        #expect(try a.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox WHERE state = 'pending'") } == 0)
        #expect(try a.auditCount("action.notify") == 2)
    }

    @Test func peersAddressesAreNeverBlocked() async throws { try await onOwnThread { [self] in try self.peersAddressesAreNeverBlockedBody() } }

    func peersAddressesAreNeverBlockedBody() throws {
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

    @Test func tlpRedReachesNoPeerAndPoliciesApply() async throws {
        try await onOwnThread { [self] in try self.tlpRedReachesNoPeerAndPoliciesApplyBody() }
    }

    func tlpRedReachesNoPeerAndPoliciesApplyBody() throws {
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
        // 198.18.6.4 (confidence 90) may reach c in a later request than 198.18.6.3: wait for its refusal.
        #expect(try eventually(5) { try c.auditCount("item.refused") == 1 })
        let expiry = try c.read { db in try Int64.fetchOne(db, sql: "SELECT expires_at - created_at FROM decision") }
        #expect(expiry == 600_000)
        let red = try a.auditDetails("action.propagate").filter { $0.contains("tlp_red") }
        #expect(red.count == 1 && red[0].contains("b:tlp_red") && red[0].contains("c:tlp_red"))
        for node in [b, c] {
            #expect(
                try !node.acceptedFromPeers().isEmpty
                    && node.auditText().allSatisfy { !$0.contains("198.18.6.1") })
        }
    }

    @Test func revocationsFollowTheItemAndPurgeRemovesWhatAPeerSent() async throws {
        try await onOwnThread { [self] in try self.revocationsFollowTheItemAndPurgeRemovesWhatAPeerSentBody() }
    }

    func revocationsFollowTheItemAndPurgeRemovesWhatAPeerSentBody() throws {
        let (a, b) = try Self.startedPair()
        defer {
            a.stop()
            b.stop()
        }
        try a.ingest(["198.18.9.1", "198.18.9.2", "198.18.9.3"])
        #expect(try eventually(5) { try b.activeValues().count == 3 })
        #expect(try a.api("DELETE", "/v1/decisions?value=198.18.9.1&reason=false%20positive").0 == 200)
        #expect(try eventually(5) { try b.activeValues() == ["198.18.9.2", "198.18.9.3"] })
        let reason = try b.auditDetails("decision.revoked").first
        #expect(reason?.contains("false positive") == true && reason?.contains("peer:a") == true)
        // b's own operator blocked 198.18.9.2 too: a's revocation of its item leaves that decision.
        #expect(try b.api("POST", "/v1/decisions", #"{"value": "198.18.9.2", "duration": "1h"}"#).0 == 200)
        #expect(try a.api("DELETE", "/v1/decisions?value=198.18.9.2").0 == 200)
        #expect(try eventually(5) { try b.auditCount("revocation.kept") == 1 })
        #expect(try b.activeValues() == ["198.18.9.2", "198.18.9.3"])

        let purge = try run(rampartBinary, ["peers", "purge", "a", "--config", b.sandbox.configPath, "--token", Sandbox.adminToken])
        #expect(purge.status == 0 && purge.stdout.contains("2 decisions revoked"), "\(purge.stdout)\(purge.stderr)")
        #expect(try b.activeValues().isEmpty)
    }

    @Test func aPeerAboveItsRateIsToldToRetryAndNothingIsLost() async throws {
        try await onOwnThread { [self] in try self.aPeerAboveItsRateIsToldToRetryAndNothingIsLostBody() }
    }

    func aPeerAboveItsRateIsToldToRetryAndNothingIsLostBody() throws {
        let (a, b) = try Self.startedPair(entry: "accept: {suggested: [block], rate: 2/s}")
        defer {
            a.stop()
            b.stop()
        }
        for value in ["198.18.13.1", "198.18.13.2", "198.18.13.3"] {
            try a.ingest([value])
            #expect(try eventually(5) { try b.activeValues().contains(value) }, "\(value)")
        }
        let metrics = try run("/usr/bin/curl", ["-sS", b.url + "/metrics"]).stdout
        #expect(metrics.contains(#"rampart_peer_requests_refused_total{reason="rate_limited"}"#), "the third request was not limited")
        #expect(try b.acceptedFromPeers().count == 3)
    }

    /// Blocks what it gets and shares it on, whoever it came from.
    static let relay = """
        name: relay
        match: {kind: [ipv4]}
        actions:
          - block: {duration: 1h}
          - propagate: {to: all, relay: true, suggest: [block]}
        """

    /// With relaying on, a full triangle and a ring of five: every node applies each item once,
    /// and the origin never hears it back.
    @Test(arguments: [3, 5]) func relayingAppliesEachItemOncePerNodeWithoutStorms(_ size: Int) throws {
        let nodes = try (0..<size).map { try MeshNode("n\($0)", playbooks: ["relay.yaml": Self.relay]) }
        for (index, node) in nodes.enumerated() {
            try node.connect([nodes[(index + size - 1) % size], nodes[(index + 1) % size]])
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
        #expect(requests <= 2 * (size - 1), "\(requests) requests for one batch across the ring")
        #expect(try nodes[0].auditCount("peer.received") == 0)
    }

    /// A triangle with relaying on and a's link to c down (its entry points where nothing
    /// listens): c gets a's items through b. Once the link is mended (a reloads with c's real
    /// address), a's queue reaches c too, and c, having them both ways, still applies each once.
    @Test func relayingRoutesAroundADeadLink() throws {
        let (a, b, c) = try (
            MeshNode("a", playbooks: ["relay.yaml": Self.relay]), MeshNode("b", playbooks: ["relay.yaml": Self.relay]),
            MeshNode("c", playbooks: ["relay.yaml": Self.relay])
        )
        func entries(_ peers: [(MeshNode, String)]) -> String {
            peers.map { peer, url in
                "  - {name: \(peer.name), url: \"\(url)/v1/peer/events\", public_key: \(peer.publicKey), accept: {suggested: [block]}}"
            }.joined(separator: "\n")
        }
        try a.configure(peers: entries([(b, b.url), (c, "http://127.0.0.1:\(try freePort())")]))
        try b.connect([a, c])
        try c.connect([a, b])
        for node in [a, b, c] { try node.start() }
        defer { for node in [a, b, c] { node.stop() } }
        let values = Self.addresses(50, from: 40_000)
        let ids = try a.ingest(values)
        #expect(try eventually(10) { try c.acceptedFromPeers().count == 50 }, "c did not get a's items through b")
        #expect(
            try c.read { db in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM audit WHERE event = 'item.accepted' AND detail LIKE '%\"via\":\"peer:b\"%'")
            } == 50)

        // a's queue for c empties only as c acknowledges it.
        func queued() throws -> JSONValue? {
            try a.api("GET", "/v1/peers").1?["peers"]?.arrayValues.first { $0["name"] == .string("c") }?["queue_depth"]
        }
        #expect(try queued() == .number(50))

        try a.configure(peers: entries([(b, b.url), (c, c.url)]))
        kill(try #require(a.daemon).process.processIdentifier, SIGHUP)
        #expect(try eventually(60) { try queued() == .number(0) }, "a's queue did not reach c once the link was mended")
        let accepted = try c.acceptedFromPeers()
        #expect(Set(accepted.keys) == Set(ids) && accepted.values.allSatisfy { $0 == 1 })
        #expect(try c.activeValues() == Set(values))
    }
}

/// Four network namespaces on one bridge (198.18.1.0/24, benchmarking addresses): nodes a, b and
/// c run daemons with the nftables backend; x is a host they may decide to block.
final class NamespaceMesh {
    let tag = String(UInt32.random(in: 0..<UInt32.max), radix: 36)
    let names = ["a", "b", "c", "x"]
    var hub: String { "rampart-hub-\(tag)" }
    func namespace(_ name: String) -> String { "rampart-\(name)-\(tag)" }
    func address(_ name: String) -> String { "198.18.1.\(name == "x" ? 99 : names.firstIndex(of: name)! + 1)" }

    init() throws {
        var steps: [[String]] = [
            ["netns", "add", hub], ["-n", hub, "link", "add", "br0", "type", "bridge"], ["-n", hub, "link", "set", "br0", "up"],
        ]
        for name in names {
            let (inner, outer) = ("v\(name)\(tag)", "h\(name)\(tag)")
            steps += [
                ["netns", "add", namespace(name)],
                ["link", "add", inner, "netns", namespace(name), "type", "veth", "peer", "name", outer, "netns", hub],
                ["-n", namespace(name), "addr", "add", "\(address(name))/24", "dev", inner],
                ["-n", namespace(name), "link", "set", inner, "up"], ["-n", namespace(name), "link", "set", "lo", "up"],
                ["-n", hub, "link", "set", outer, "master", "br0"], ["-n", hub, "link", "set", outer, "up"],
            ]
        }
        for step in steps {
            let out = try run("/usr/sbin/ip", step)
            guard out.status == 0 else { throw DaemonProcess.DaemonError(message: "ip \(step.joined(separator: " ")): \(out.stderr)") }
        }
    }

    deinit {
        for name in names { _ = try? run("/usr/sbin/ip", ["netns", "del", namespace(name)]) }
        _ = try? run("/usr/sbin/ip", ["netns", "del", hub])
    }

    /// Whether x reaches a node: one ping, and a TCP connection to its daemon.
    func xReaches(_ name: String) throws -> (ping: Bool, tcp: Bool) {
        let ping = try run("/usr/sbin/ip", ["netns", "exec", namespace("x"), "/usr/bin/ping", "-c", "1", "-W", "1", address(name)]).status == 0
        let tcp =
            try run(
                "/usr/sbin/ip",
                [
                    "netns", "exec", namespace("x"), "/usr/bin/curl", "-s", "-o", "/dev/null", "--connect-timeout", "1",
                    "http://\(address(name)):8470/healthz",
                ]
            ).status == 0
        return (ping, tcp)
    }
}

@Suite(.serialized, .enabled(if: NamespacePair.unavailable == nil, "\(NamespacePair.unavailable ?? "")"))
struct PeerNamespaceTests {
    /// A block decided at a (an indicator matching its playbook) drops x's packets at b and c,
    /// whose playbooks act on what a suggests.
    @Test func aBlockDecidedAtOneNodeDropsPacketsAtTheOthers() async throws {
        try await onOwnThread { [self] in try self.aBlockDecidedAtOneNodeDropsPacketsAtTheOthersBody() }
    }

    func aBlockDecidedAtOneNodeDropsPacketsAtTheOthersBody() throws {
        let mesh = try NamespaceMesh()
        let nodes = try ["a", "b", "c"].map { name in
            try MeshNode(
                name, playbooks: ["p.yaml": name == "a" ? PeerTests.share : PeerTests.blockSuggested], namespace: mesh.namespace(name),
                host: mesh.address(name)
            )
        }
        for node in nodes { try node.connect(nodes.filter { $0 !== node }) }
        for node in nodes { try node.start() }
        defer { for node in nodes { node.stop() } }
        for name in ["a", "b", "c"] { #expect(try mesh.xReaches(name) == (true, true), "x reaches \(name) before") }

        try nodes[0].ingest([mesh.address("x")])
        for (index, name) in ["b", "c"].enumerated() {
            let node = nodes[index + 1]
            #expect(try eventually(5) { try node.activeValues().contains(mesh.address("x")) })
            // The decision is visible in the store once committed, a moment before the enforcer
            // has put it in the kernel: wait for the element there too.
            var set = Output(status: 0, stdout: "", stderr: "")
            let inKernel = try eventually(5) {
                set = try run("/usr/sbin/ip", ["netns", "exec", mesh.namespace(name), "/usr/sbin/nft", "list", "set", "inet", "rampart", "in4"])
                return set.stdout.contains(mesh.address("x"))
            }
            #expect(inKernel, "\(name)'s kernel set: \(set.stdout)\(set.stderr)")
            #expect(try mesh.xReaches(name) == (false, false), "x still reaches \(name)")
        }
        // The nodes still reach each other: peers are never blocked.
        #expect(
            try run("/usr/sbin/ip", ["netns", "exec", mesh.namespace("b"), "/usr/bin/ping", "-c", "1", "-W", "1", mesh.address("a")]).status == 0)
    }
}

/// A stand-in HTTP server (Python's http.server) for what peers and webhooks answer: POST /gone
/// gets 410, /moved a 307 to /sink, /busy a 429 with Retry-After: 2 the first time and /flaky a
/// 500 the first time, /drip a 200 whose body comes a byte every 250 ms (for a minute), anything
/// else 200. GET / tells every call: path, time and body.
final class StandInServer {
    let port: Int
    private let process = Process()

    init() throws {
        port = try freePort()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [
            "-c",
            """
            import http.server, json, sys, time
            calls = {}
            class H(http.server.BaseHTTPRequestHandler):
                def log_message(self, *a): pass
                def do_POST(self):
                    body = self.rfile.read(int(self.headers.get("content-length", 0))).decode("utf-8", "replace")
                    if '"type":"rampart.sync.v1"' in body:
                        # A stand-in for a peer, not a Rampart node: it takes no part in syncs.
                        self.send_response(400); self.send_header("Content-Length", "0"); self.end_headers()
                        return
                    name = self.path.strip("/")
                    calls.setdefault(name, []).append({"at": time.time(), "body": body})
                    first = len(calls[name]) == 1
                    if name == "gone": self.send_response(410)
                    elif name == "moved": self.send_response(307); self.send_header("Location", "/sink")
                    elif name == "busy" and first: self.send_response(429); self.send_header("Retry-After", "2")
                    elif name == "flaky" and first: self.send_response(500)
                    elif name == "drip":
                        self.send_response(200); self.send_header("Content-Length", "240"); self.end_headers()
                        try:
                            for _ in range(240): self.wfile.write(b" "); self.wfile.flush(); time.sleep(0.25)
                        except OSError: pass
                        return
                    else: self.send_response(200)
                    self.send_header("Content-Length", "0"); self.end_headers()
                def do_GET(self):
                    body = json.dumps(calls).encode()
                    self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
            http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
            """,
            String(port),
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        guard eventually(5, { (try? run("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/"]))?.status == 0 }) else {
            throw DaemonProcess.DaemonError(message: "the stand-in server did not start")
        }
    }

    deinit { process.terminate() }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)/\(path)" }

    /// Each path's calls, oldest first.
    func calls() throws -> [String: [(at: Double, body: String)]] {
        let out = try run("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/"])
        let json = (try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: [[String: Any]]]) ?? [:]
        return json.mapValues { list in list.map { (($0["at"] as? Double) ?? 0, ($0["body"] as? String) ?? "") } }
    }
}
