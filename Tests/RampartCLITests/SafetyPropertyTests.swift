import Foundation
import RampartTesting
import Testing

/// A million random and adversarial block requests through a daemon with the nftables backend: not
/// one element in the kernel (any table, per `nft -j list ruleset`) may overlap a protected range
/// or be wider than `safety.max_prefix`. The protected ranges and the overlap test here are the
/// test's own, written from PRODUCT.md, not the daemon's tables.
@Suite(.serialized, .enabled(if: NamespacePair.unavailable == nil, "\(NamespacePair.unavailable ?? "")"))
struct SafetyPropertyTests {
    /// This host (namespace `a`), `safety.never_block` below, and the ranges that are not globally
    /// reachable and not in `allow_non_global`.
    static let protected = [
        "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32", "::/128", "::1/128", "fe80::/10", "ff00::/8",
        "198.18.0.1/32", "2001:2::1/128",
        "8.8.8.0/24", "2001:4860:4860::/48",
        "10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.51.100.0/24",
        "203.0.113.0/24", "240.0.0.0/4", "fc00::/7", "2001:db8::/32", "100::/64",
    ].map { Network($0)! }

    static let specials = [
        "0.0.0.0/0", "::/0", "0.0.0.0", "::", "::ffff:0:0/96", "::ffff:127.0.0.1", "::ffff:198.18.0.1", "::ffff:8.8.8.8",
        "::ffff:8.8.8.0/120", "255.255.255.255", "128.0.0.0/1", "2000::/3", "198.18.0.0/15", "198.18.0.0/16", "8.0.0.0/8",
        "::ffff:198.18.0.0/112", "2001:2::/32", "fe80::1", "ff02::1", "224.0.0.1", "127.0.0.1", "169.254.169.254", "::ffff:7f00:1",
    ]

    @Test func aMillionBlocksLeaveNoProtectedAddressInTheKernel() async throws {
        try await onOwnThread { [self] in try self.aMillionBlocksLeaveNoProtectedAddressInTheKernelBody() }
    }

    func aMillionBlocksLeaveNoProtectedAddressInTheKernelBody() throws {
        let pair = try NamespacePair()
        let sandbox = try Sandbox(
            extra: """
                firewall: {backend: nftables}
                safety: {allow_non_global: [198.18.0.0/15, 2001:2::/48], never_block: [8.8.8.0/24, "2001:4860:4860::/48"]}
                http: {max_body: 64MiB}
                """
        )
        try """
        name: block-everything
        match: {kind: [ipv4, ipv6, cidr]}
        actions:
          - block: {duration: 1h, direction: both}
        """.write(to: sandbox.directory.appendingPathComponent("playbooks/all.yaml"), atomically: true, encoding: .utf8)
        let daemon = try DaemonProcess(sandbox, namespace: pair.a)
        defer { _ = daemon.stop() }

        var random = SplitMix64(seed: 0x5241_4d50_4152_54)
        var lines: [String] = []
        lines.reserveCapacity(1_000_000)
        while lines.count < 1_000_000 {
            switch random.next() % 100 {
            case 0..<5: lines.append(Self.specials[Int(random.next() % UInt64(Self.specials.count))])
            case 5..<90: lines.append(Self.protected[Int(random.next() % UInt64(Self.protected.count))].randomNear(&random))
            default: lines.append(Network.randomGlobal(&random))
            }
        }
        let body = sandbox.directory.appendingPathComponent("blocks.txt")
        try (lines.joined(separator: "\n") + "\n").write(to: body, atomically: true, encoding: .utf8)
        let posted = try pair.exec(
            pair.a,
            [
                "/usr/bin/curl", "-sS", "--max-time", "900", "-H", "Authorization: Bearer \(Sandbox.adminToken)", "-H", "Content-Type: text/plain",
                "--data-binary", "@\(body.path)", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(daemon.port)/v1/indicators",
            ]
        )
        #expect(posted.stdout == "202", "\(posted.stdout) \(posted.stderr)")  // the items are stored; the rails refuse blocks, not items
        // Firewall batches follow the commits; the store's active count is what the kernel must hold.
        Thread.sleep(forTimeInterval: 2)

        let ruleset = try pair.exec(pair.a, ["/usr/sbin/nft", "-j", "list", "ruleset"])
        let root = try JSONSerialization.jsonObject(with: Data(ruleset.stdout.utf8)) as? [String: Any]
        var elements: [String] = []
        for object in root?["nftables"] as? [[String: Any]] ?? [] {
            guard let set = object["set"] as? [String: Any] else { continue }
            for entry in set["elem"] as? [Any] ?? [] {
                let value = ((entry as? [String: Any])?["elem"] as? [String: Any])?["val"] ?? entry
                if let text = value as? String {
                    elements.append(text)
                } else if let prefix = (value as? [String: Any])?["prefix"] as? [String: Any], let address = prefix["addr"],
                    let length = prefix["len"]
                {
                    elements.append("\(address)/\(length)")
                } else if let range = (value as? [String: Any])?["range"] as? [String], range.count == 2 {
                    elements.append("\(range[0])-\(range[1])")  // never written by Rampart: fails below
                } else {
                    elements.append("\(value)")
                }
            }
        }
        #expect(elements.count > 100_000, "only \(elements.count) elements: the random global blocks should be in force")
        var bad: [String] = []
        for element in elements {
            guard let network = Network(element) else {
                bad.append("\(element): not an address or network")
                continue
            }
            if network.length < (network.bytes.count == 4 ? 16 : 32) { bad.append("\(element): wider than max_prefix") }
            if let hit = Self.protected.first(where: { $0.overlaps(network) }) { bad.append("\(element) overlaps \(hit)") }
        }
        #expect(bad.isEmpty, "\(bad.count) elements break the rails: \(bad.prefix(20))")
        #expect(!daemon.log.contains("firewall.apply_failed"))
    }
}

/// An address or network as bytes and a prefix length: the test's own, through `inet_pton`.
struct Network: CustomStringConvertible {
    var bytes: [UInt8]
    var length: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return nil }
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, String(parts[0]), &v4) == 1 {
            bytes = withUnsafeBytes(of: v4) { Array($0) }
        } else if inet_pton(AF_INET6, String(parts[0]), &v6) == 1 {
            bytes = withUnsafeBytes(of: v6) { Array($0) }
        } else {
            return nil
        }
        guard let length = parts.count == 2 ? Int(parts[1]) : bytes.count * 8, (0...bytes.count * 8).contains(length) else { return nil }
        self.length = length
    }

    var description: String {
        let address =
            bytes.count == 4
            ? bytes.map(String.init).joined(separator: ".")
            : stride(from: 0, to: 16, by: 2).map { String(Int(bytes[$0]) << 8 | Int(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
        return "\(address)/\(length)"
    }

    func bit(_ i: Int) -> Bool { bytes[i / 8] & (0x80 >> UInt8(i % 8)) != 0 }

    /// Two networks overlap when one contains the other: their first `min(lengths)` bits agree. An
    /// IPv4-mapped IPv6 network (`::ffff:a.b.c.d/n`) is compared as the IPv4 network it names.
    func overlaps(_ other: Network) -> Bool {
        let (a, b) = (unmapped, other.unmapped)
        guard a.bytes.count == b.bytes.count else { return false }
        return (0..<min(a.length, b.length)).allSatisfy { a.bit($0) == b.bit($0) }
    }

    var unmapped: Network {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff, length >= 96 else { return self }
        var v4 = self
        v4.bytes = Array(bytes[12...])
        v4.length = length - 96
        return v4
    }

    /// A network related to this one: a supernet, the same, or one inside it, sometimes written
    /// IPv4-mapped.
    func randomNear(_ random: inout SplitMix64) -> String {
        let bits = bytes.count * 8
        let length = Int(random.next() % UInt64(bits + 1))
        var near = self
        near.length = length
        for i in 0..<bits {
            let set = i < self.length ? bit(i) : random.next() & 1 == 1
            let mask: UInt8 = 0x80 >> UInt8(i % 8)
            if i >= length { near.bytes[i / 8] &= ~mask } else if set { near.bytes[i / 8] |= mask } else { near.bytes[i / 8] &= ~mask }
        }
        let text = near.description
        if bytes.count == 4, random.next() % 4 == 0 {
            return "::ffff:\(near.bytes.map(String.init).joined(separator: "."))/\(length + 96)"
        }
        return length == bits && random.next() % 2 == 0 ? String(text.dropLast("/\(bits)".count)) : text
    }

    /// An address (mostly) or a network in public space: most are accepted.
    static func randomGlobal(_ random: inout SplitMix64) -> String {
        if random.next() % 4 == 0 {
            let words = (0..<8).map { i in i == 0 ? 0x2400 | random.next() % 0x400 : random.next() % 0x10000 }
            let length = random.next() % 3 == 0 ? 32 + Int(random.next() % 97) : 128
            var network = Network(words.map { String($0, radix: 16) }.joined(separator: ":") + "/128")!
            network.length = length
            for i in length..<128 { network.bytes[i / 8] &= ~(0x80 >> UInt8(i % 8)) }
            return length == 128 ? String(network.description.dropLast(4)) : network.description
        }
        let first = [23, 31, 45, 62, 77, 91, 103, 141, 185, 212][Int(random.next() % 10)]
        let address = [first, Int(random.next() % 256), Int(random.next() % 256), Int(random.next() % 256)]
        let length = random.next() % 5 == 0 ? 16 + Int(random.next() % 17) : 32
        var network = Network(address.map(String.init).joined(separator: ".") + "/32")!
        network.length = length
        for i in length..<32 { network.bytes[i / 8] &= ~(0x80 >> UInt8(i % 8)) }
        return length == 32 ? address.map(String.init).joined(separator: ".") : network.description
    }
}

/// A seeded generator, so that a failure can be replayed.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
