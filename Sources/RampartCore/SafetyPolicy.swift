/// The safety rails every block passes, whatever asked for it: what must stay reachable, and how
/// wide a block may be.
public struct SafetyPolicy: Sendable {
    /// A range that must never be blocked, and why.
    public struct Protected: Sendable, Hashable {
        public var network: IPNetwork
        public var reason: String

        public init(_ network: IPNetwork, _ reason: String) {
            self.network = network
            self.reason = reason
        }
    }

    public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        public var code: ErrorCode
        public var message: String
        public var description: String { message }

        public init(code: ErrorCode, message: String) {
            self.code = code
            self.message = message
        }
    }

    public var maxPrefixV4: Int
    public var maxPrefixV6: Int
    public var maxActiveBlocks: Int
    let protected: RangeIndex
    let nonGlobal: RangeIndex
    let allowNonGlobal: RangeIndex

    /// - Parameters:
    ///   - neverBlock: the operator's `safety.never_block`, the host's own addresses and the peers' addresses.
    ///   - allowNonGlobal: ranges of non-global space that may be blocked (internal containment, test labs).
    public init(
        neverBlock: [Protected] = [], allowNonGlobal: [IPNetwork] = [], maxPrefixV4: Int = 16, maxPrefixV6: Int = 32,
        maxActiveBlocks: Int = 2_000_000
    ) {
        self.protected = RangeIndex(SafetyPolicy.alwaysProtected + neverBlock)
        self.nonGlobal = RangeIndex(SafetyPolicy.nonGlobal)
        self.allowNonGlobal = RangeIndex(allowNonGlobal.map { Protected($0, "allowed") })
        self.maxPrefixV4 = maxPrefixV4
        self.maxPrefixV6 = maxPrefixV6
        self.maxActiveBlocks = maxActiveBlocks
    }

    /// Nil when `target` may be blocked; otherwise why not.
    public func check(_ target: IPNetwork) -> Refusal? {
        let limit = target.family == .v4 ? maxPrefixV4 : maxPrefixV6
        if target.prefixLength < limit {
            return Refusal(
                code: "prefix_too_wide",
                message: "\(target.cidrNotation) is wider than /\(limit), the widest block safety.max_prefix allows"
            )
        }
        if let hit = protected.firstOverlap(with: target) {
            let relation = target.contains(hit.network) && target != hit.network ? "contains" : "is within"
            return Refusal(code: "protected", message: "\(target) \(relation) \(hit.network.cidrNotation) (\(hit.reason)), which is never blocked")
        }
        if let hit = nonGlobal.firstOverlap(with: target), !allowNonGlobal.contains(target) {
            return Refusal(
                code: "non_global",
                message:
                    "\(target) overlaps \(hit.network.cidrNotation) (\(hit.reason)), which is not globally reachable; list its range in safety.allow_non_global to allow it"
            )
        }
        return nil
    }

    static func net(_ text: String) -> IPNetwork {
        // The tables below are constants; a typo is a programming error.
        try! IPNetwork(parsing: text, allowBareAddress: true)
    }

    /// Never blocked, whatever the configuration says.
    static let alwaysProtected: [Protected] = [
        Protected(net("0.0.0.0/8"), "unspecified, 'this network'"),
        Protected(net("127.0.0.0/8"), "loopback"),
        Protected(net("169.254.0.0/16"), "link-local"),
        Protected(net("224.0.0.0/4"), "multicast"),
        Protected(net("255.255.255.255/32"), "limited broadcast"),
        Protected(net("::/128"), "unspecified"),
        Protected(net("::1/128"), "loopback"),
        Protected(net("fe80::/10"), "link-local"),
        Protected(net("ff00::/8"), "multicast"),
    ]

    /// IANA special-purpose address registries: ranges not globally reachable. Blocked only where
    /// `safety.allow_non_global` lists them. IPv6 outside 2000::/3 is not allocated for global unicast.
    static let nonGlobal: [Protected] = [
        Protected(net("10.0.0.0/8"), "private-use, RFC 1918"),
        Protected(net("100.64.0.0/10"), "shared address space (CGNAT), RFC 6598"),
        Protected(net("172.16.0.0/12"), "private-use, RFC 1918"),
        Protected(net("192.0.0.0/24"), "IETF protocol assignments, RFC 6890"),
        Protected(net("192.0.2.0/24"), "documentation (TEST-NET-1), RFC 5737"),
        Protected(net("192.88.99.0/24"), "deprecated 6to4 relay anycast, RFC 7526"),
        Protected(net("192.168.0.0/16"), "private-use, RFC 1918"),
        Protected(net("198.18.0.0/15"), "benchmarking, RFC 2544"),
        Protected(net("198.51.100.0/24"), "documentation (TEST-NET-2), RFC 5737"),
        Protected(net("203.0.113.0/24"), "documentation (TEST-NET-3), RFC 5737"),
        Protected(net("240.0.0.0/4"), "reserved, RFC 1112"),
        Protected(net("::/3"), "outside global unicast 2000::/3"),
        Protected(net("4000::/2"), "outside global unicast 2000::/3"),
        Protected(net("8000::/1"), "outside global unicast 2000::/3 (includes ULA fc00::/7)"),
        Protected(net("2001::/32"), "TEREDO, RFC 4380"),
        Protected(net("2001:2::/48"), "benchmarking, RFC 5180"),
        Protected(net("2001:10::/28"), "deprecated ORCHID, RFC 4843"),
        Protected(net("2001:db8::/32"), "documentation, RFC 3849"),
        Protected(net("2002::/16"), "6to4, RFC 3056"),
        Protected(net("3fff::/20"), "documentation, RFC 9637"),
    ]
}

/// Ranges of one or both families, sorted for overlap queries in logarithmic time.
struct RangeIndex: Sendable {
    private struct Entry: Sendable {
        var range: ClosedRange<UInt128>
        var item: SafetyPolicy.Protected
    }

    /// Per family: entries sorted by start, and the running maximum of their ends.
    private var entries: [IPFamily: [Entry]] = [:]
    private var maxEnds: [IPFamily: [UInt128]] = [:]

    init(_ items: [SafetyPolicy.Protected]) {
        for family in [IPFamily.v4, .v6] {
            let sorted = items.filter { $0.network.family == family }
                .map { Entry(range: $0.network.range, item: $0) }
                .sorted { $0.range.lowerBound < $1.range.lowerBound }
            var running: UInt128 = 0
            entries[family] = sorted
            maxEnds[family] = sorted.map {
                running = max(running, $0.range.upperBound); return running
            }
        }
    }

    /// An entry overlapping `target`, if any.
    func firstOverlap(with target: IPNetwork) -> SafetyPolicy.Protected? {
        guard let list = entries[target.family], let ends = maxEnds[target.family], !list.isEmpty else { return nil }
        let range = target.range
        // Entries starting after the target ends cannot overlap it.
        var low = 0
        var high = list.count
        while low < high {
            let mid = (low + high) / 2
            if list[mid].range.lowerBound <= range.upperBound { low = mid + 1 } else { high = mid }
        }
        // Among entries starting at or before the target's end, one overlaps if its end reaches the target.
        guard low > 0, ends[low - 1] >= range.lowerBound else { return nil }
        var i = low - 1
        while i >= 0 {
            if list[i].range.upperBound >= range.lowerBound { return list[i].item }
            if ends[i] < range.lowerBound { break }
            i -= 1
        }
        return nil
    }

    /// Whether one entry contains all of `target`.
    func contains(_ target: IPNetwork) -> Bool {
        guard let list = entries[target.family] else { return false }
        return list.contains { $0.item.network.contains(target) }
    }
}
