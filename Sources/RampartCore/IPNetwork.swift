/// An address with a prefix length: `198.51.100.0/24`, `2001:db8::/32`, or a single host (`/32`, `/128`).
///
/// Host bits must be zero: `1.2.3.4/24` is refused rather than silently widened or narrowed.
public struct IPNetwork: Hashable, Sendable, Comparable {
    public let address: IPAddress
    public let prefixLength: Int

    public init(address: IPAddress, prefixLength: Int) {
        precondition((0...address.family.bitWidth).contains(prefixLength))
        self.address = address
        self.prefixLength = prefixLength
    }

    /// A single-host network.
    public init(host: IPAddress) {
        self.init(address: host, prefixLength: host.family.bitWidth)
    }

    /// Parses `address/prefix`, or a bare address as a host network when `allowBareAddress` is set.
    public init(parsing text: Substring, allowBareAddress: Bool = false) throws(ValueError) {
        guard let slash = text.firstIndex(of: "/") else {
            guard allowBareAddress else {
                throw ValueError(.invalidCIDR, "'\(text.preview)' is not a CIDR: expected address/prefix-length")
            }
            self.init(host: try IPAddress(parsing: text))
            return
        }
        let addressText = text[..<slash]
        let lengthText = text[text.index(after: slash)...]
        var address = try IPAddress(parsing: addressText)
        guard !lengthText.isEmpty, lengthText.count <= 3, lengthText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
            lengthText == "0" || lengthText.first != "0", var length = Int(lengthText)
        else {
            throw ValueError(.invalidCIDR, "'\(text.preview)' has an invalid prefix length: expected a number without leading zeros")
        }
        // `::ffff:1.2.3.0/120` names an IPv4 network; keep the prefix meaning the same bits.
        if case .v4 = address, addressText.contains(":") {
            guard length >= 96 else {
                throw ValueError(.invalidCIDR, "'\(text.preview)': an IPv4-mapped network needs a prefix length of at least 96")
            }
            length -= 96
        }
        guard length <= address.family.bitWidth else {
            throw ValueError(
                .invalidCIDR,
                "'\(text.preview)': the prefix length \(length) is larger than \(address.family.bitWidth), the width of the address"
            )
        }
        let masked = IPNetwork.mask(address, to: length)
        if masked != address {
            throw ValueError(
                .hostBitsSet,
                "'\(text.preview)' has host bits set; the network is \(masked)/\(length)"
            )
        }
        address = masked
        self.init(address: address, prefixLength: length)
    }

    public init(parsing text: String, allowBareAddress: Bool = false) throws(ValueError) {
        try self.init(parsing: Substring(text), allowBareAddress: allowBareAddress)
    }

    public var family: IPFamily { address.family }
    public var isHost: Bool { prefixLength == family.bitWidth }

    /// The first and last address of the network as 128-bit numbers within the family.
    public var range: ClosedRange<UInt128> {
        let low = address.bits
        let hostBits = family.bitWidth - prefixLength
        let span: UInt128 = hostBits == 128 ? .max : (UInt128(1) << UInt128(hostBits)) - 1
        return low...(low | span)
    }

    public func contains(_ other: IPAddress) -> Bool {
        other.family == family && range.contains(other.bits)
    }

    public func contains(_ other: IPNetwork) -> Bool {
        other.family == family && other.prefixLength >= prefixLength && range.contains(other.address.bits)
    }

    public func overlaps(_ other: IPNetwork) -> Bool {
        contains(other) || other.contains(self)
    }

    public static func mask(_ address: IPAddress, to length: Int) -> IPAddress {
        switch address {
        case .v4(let v):
            let mask: UInt32 = length == 0 ? 0 : ~UInt32(0) << UInt32(32 - length)
            return .v4(v & mask)
        case .v6(let v):
            let mask: UInt128 = length == 0 ? 0 : ~UInt128(0) << UInt128(128 - length)
            return .v6(v & mask)
        }
    }

    public static func < (lhs: IPNetwork, rhs: IPNetwork) -> Bool {
        (lhs.address, lhs.prefixLength) < (rhs.address, rhs.prefixLength)
    }
}

extension IPNetwork: CustomStringConvertible {
    /// `a.b.c.d/n`; a single host prints as its bare address.
    public var description: String {
        isHost ? address.description : "\(address)/\(prefixLength)"
    }

    /// Always `address/prefix`, as indicator values of kind `cidr` are written.
    public var cidrNotation: String { "\(address)/\(prefixLength)" }
}
