import Foundation
import GRDB
import RampartCore
import RampartTesting
import Testing

/// Five real daemons in a full mesh with relaying on, entries dead-lettered after 2 s and the
/// default `resync` (1h, so that only a link seen down and back, or a node's start, makes a
/// sync): a link that is down is routed around, a partition longer than the dead-letter window
/// heals, and a node restored from a backup catches up. The assertions are on exact final
/// states, not timings (the mesh harness measures those).
@Suite(.serialized) struct ConvergenceTests {
    @Test func aMeshConvergesAfterADeadLinkAPartitionAndARestoredBackup() async throws {
        try await onOwnThread { try Self.body() }
    }

    static func body() throws {
        let nodes = try ["a", "b", "c", "d", "e"].map { try MeshNode($0, playbooks: ["relay.yaml": PeerTests.relay]) }
        let (a, c, e) = (nodes[0], nodes[2], nodes[4])
        let nowhere = "http://127.0.0.1:\(try freePort())"
        /// Writes every node's peers, the links between `cut` pairs pointing where nothing listens.
        func link(cut: Set<Set<String>>) throws {
            for node in nodes {
                let entries = nodes.filter { $0 !== node }.map { peer in
                    let url = cut.contains([node.name, peer.name]) ? nowhere : peer.url
                    return """
                          - {name: \(peer.name), url: "\(url)/v1/peer/events", public_key: \(peer.publicKey), \
                        accept: {suggested: [block]}, dead_letter_after: 2s}
                        """
                }
                try node.configure(peers: entries.joined(separator: "\n"))
            }
        }
        /// Reloads every running node and waits until each has its new peers in force.
        func reload(cut: Set<Set<String>>) throws {
            try link(cut: cut)
            for node in nodes { kill(try #require(node.daemon).process.processIdentifier, SIGHUP) }
            for node in nodes {
                let expected = Dictionary(
                    uniqueKeysWithValues: nodes.filter { $0 !== node }.map { ($0.name, cut.contains([node.name, $0.name]) ? nowhere : $0.url) })
                #expect(
                    try eventually(20) {
                        let peers = try node.api("GET", "/v1/peers").1?["peers"]?.arrayValues ?? []
                        return peers.count == 4
                            && peers.allSatisfy { peer in
                                guard case .string(let name)? = peer["name"], case .string(let url)? = peer["url"] else { return false }
                                return url == "\(expected[name] ?? "")/v1/peer/events"
                            }
                    }, "\(node.name) did not reload")
            }
        }
        try link(cut: [["a", "e"]])
        for node in nodes { try node.start() }
        defer { for node in nodes { node.stop() } }

        // 1. a's link to e is down: e gets a's items through the others, each applied once.
        let first = PeerTests.addresses(20, from: 50_000)
        try a.ingest(first)
        #expect(try eventually(30) { try nodes.dropFirst().allSatisfy { try $0.activeValues() == Set(first) } }, "relaying around a-e")
        #expect(try a.auditCount("item.accepted") == 20)
        #expect(try e.acceptedFromPeers().count == 20 && e.acceptedFromPeers().values.allSatisfy { $0 == 1 })

        // e's backup, taken now (stopped, so that the database and its log are whole).
        e.stop()
        let backup = Scratch.directory("rampart-backup")
        try FileManager.default.copyItem(at: e.sandbox.directory.appendingPathComponent("state"), to: backup)
        try e.start()

        // Each node's first syncs, at start, are done (all but a's and e's with each other):
        // from here on only a link seen down and back, or a node's start, makes a sync.
        func synced(_ node: MeshNode) throws -> Bool {
            try (node.api("GET", "/v1/peers").1?["peers"]?.arrayValues ?? []).allSatisfy { peer in
                guard case .string(let name)? = peer["name"] else { return false }
                return peer["last_sync"] != nil || Set([node.name, name]) == ["a", "e"]
            }
        }
        #expect(try eventually(30) { try nodes.allSatisfy(synced) }, "the first syncs")

        // 2. A partition {a, b} | {c, d, e} longer than the dead-letter window, with traffic on
        // both sides: new items, a TLP:RED item at a (it never leaves a), and a revocation at a
        // of an item every node holds.
        let sides = (Set(["a", "b"]), Set(["c", "d", "e"]))
        let cut = Set(sides.0.flatMap { x in sides.1.map { y in Set([x, y]) } })
        try reload(cut: cut)
        let west = PeerTests.addresses(20, from: 51_000)
        let east = PeerTests.addresses(20, from: 52_000)
        let red = "198.18.210.1"
        try a.ingest(west)
        try c.ingest(east)
        try a.ingest([red], "confidence=90&tlp=red")
        let revoked = first[0]
        #expect(try a.api("DELETE", "/v1/decisions?value=\(revoked)").0 == 200)
        let expected = Set(first.dropFirst() + west + east)
        #expect(try eventually(30) { try nodes[1].activeValues() == Set(first.dropFirst() + west) }, "b got a's side")
        #expect(try eventually(30) { try nodes[3].activeValues() == Set(first + east) }, "d got c's side")
        // Entries across the cut are dead-lettered: only anti-entropy can bring them over ...
        func deadLetters(_ node: MeshNode) throws -> Int {
            try node.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE state = 'dead'") ?? 0 }
        }
        // ... until nothing is pending anywhere: no delivery will find the link back, only the
        // syncs that probe it.
        func pending(_ node: MeshNode) throws -> Int {
            try node.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE state = 'pending'") ?? 0 }
        }
        #expect(try eventually(60) { try deadLetters(a) > 0 && deadLetters(c) > 0 && nodes.allSatisfy { try pending($0) == 0 } })

        // Healed (and the a-e link mended): every node holds the same active shared state.
        try reload(cut: [])
        func converged(_ group: [MeshNode]) throws -> Bool {
            try group.allSatisfy { node in try node.activeValues() == (node === a ? expected.union([red]) : expected) }
        }
        #expect(
            try eventually(60) { try converged(nodes) },
            "\(nodes.map { ($0.name, (try? $0.activeValues()).map(expected.symmetricDifference)?.count) })")
        for node in nodes { try expectWhole(node, expected: node === a ? expected.union([red]) : expected, red: red, origin: node === a) }
        // Each of a's peers shows a sync (e's may wait out a backoff from when a-e was down).
        #expect(
            try eventually(30) { (try a.api("GET", "/v1/peers").1?["peers"]?.arrayValues ?? []).allSatisfy { $0["last_sync"] != nil } },
            "\((try? a.api("GET", "/v1/peers").1) ?? nil)")
        #expect(try nodes.map { try $0.auditCount("peer.synced") }.reduce(0, +) > 0)

        // 3. e restored from its backup, taken before the partition: it catches up from its peers.
        e.stop()
        let state = e.sandbox.directory.appendingPathComponent("state")
        try FileManager.default.removeItem(at: state)
        try FileManager.default.copyItem(at: backup, to: state)
        #expect(try e.activeValues() == Set(first), "the backup is from before the partition")
        try e.start()
        #expect(try eventually(30) { try e.activeValues() == expected }, "\((try? e.activeValues()).map(expected.symmetricDifference) ?? []) differ")
        try expectWhole(e, expected: expected, red: red, origin: false)
    }

    /// A node's exact state: the active decisions are `expected`, one each; every item from a
    /// peer was applied once; the TLP:RED value is held only at its origin; the audit chain and
    /// the database are whole.
    static func expectWhole(_ node: MeshNode, expected: Set<String>, red: String, origin: Bool) throws {
        let (duplicates, redItems, integrity) = try node.read { db in
            (
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM (SELECT value FROM decision WHERE state = 'active' GROUP BY value HAVING count(*) > 1)"),
                try Int.fetchOne(db, sql: "SELECT count(*) FROM audit WHERE event = 'item.accepted' AND detail LIKE ?", arguments: ["%\(red)%"]),
                try String.fetchOne(db, sql: "PRAGMA integrity_check")
            )
        }
        #expect(try node.activeValues() == expected, "\(node.name)")
        #expect(duplicates == 0, "\(node.name): values with two active decisions")
        #expect(try node.acceptedFromPeers().values.allSatisfy { $0 == 1 }, "\(node.name) applied an item twice")
        #expect(redItems == (origin ? 1 : 0), "\(node.name): TLP:RED item")
        #expect(integrity == "ok")
        let verify = try rampart("audit", "verify", "--config", node.sandbox.configPath)
        #expect(verify.status == 0, "\(node.name): \(verify.stdout)\(verify.stderr)")
    }
}
