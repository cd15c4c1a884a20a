/// An IPv4 or IPv6 address, parsed strictly and printed canonically (RFC 5952 for IPv6).
///
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are unmapped to IPv4 when parsed, so one host
/// has one spelling everywhere: in the store, in the firewall and in safety checks.
public enum IPAddress: Hashable, Sendable, Comparable {
    case v4(UInt32)
    case v6(UInt128)

    public var family: IPFamily {
        switch self {
        case .v4: .v4
        case .v6: .v6
        }
    }

    /// The address as a 128-bit number: IPv4 in the low 32 bits.
    public var bits: UInt128 {
        switch self {
        case .v4(let v): UInt128(v)
        case .v6(let v): v
        }
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        if lhs.family != rhs.family { return lhs.family == .v4 }
        return lhs.bits < rhs.bits
    }

    /// Parses a dotted-quad IPv4 or an IPv6 address. Refuses leading zeros in IPv4 octets (`010.1.1.1`
    /// means 8.1.1.1 to some parsers and 10.1.1.1 to others), zone ids, and anything but the exact grammar.
    public init(parsing text: Substring) throws(ValueError) {
        if text.utf8.contains(UInt8(ascii: ":")) {
            let v6 = try IPAddress.parseIPv6(text)
            if v6 >> 32 == 0xffff {
                self = .v4(UInt32(truncatingIfNeeded: v6))
            } else {
                self = .v6(v6)
            }
        } else {
            self = .v4(try IPAddress.parseIPv4(text))
        }
    }

    public init(parsing text: String) throws(ValueError) {
        try self.init(parsing: Substring(text))
    }

    static func parseIPv4(_ text: Substring) throws(ValueError) -> UInt32 {
        var value: UInt32 = 0
        var octets = 0
        var current: UInt32 = 0
        var digits = 0
        var leadingZero = false
        func fail(_ why: String) -> ValueError {
            ValueError(.invalidIPv4, "'\(text.preview)' is not an IPv4 address: \(why)")
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if digits == 0 && byte == UInt8(ascii: "0") {
                    leadingZero = true
                } else if leadingZero {
                    throw ValueError(
                        .ambiguousIPv4,
                        "'\(text.preview)' has an octet with a leading zero, which some parsers read as octal; write it without leading zeros"
                    )
                }
                digits += 1
                current = current * 10 + UInt32(byte - UInt8(ascii: "0"))
                if digits > 3 || current > 255 { throw fail("octets are 0-255") }
            case UInt8(ascii: "."):
                guard digits > 0 else { throw fail("empty octet") }
                octets += 1
                guard octets < 4 else { throw fail("more than four octets") }
                value = value << 8 | current
                current = 0
                digits = 0
                leadingZero = false
            default:
                throw fail("unexpected character")
            }
        }
        guard digits > 0 else { throw fail("empty octet") }
        guard octets == 3 else { throw fail("expected four octets") }
        return value << 8 | current
    }

    static func parseIPv6(_ text: Substring) throws(ValueError) -> UInt128 {
        func fail(_ why: String) -> ValueError {
            ValueError(.invalidIPv6, "'\(text.preview)' is not an IPv6 address: \(why)")
        }
        if text.utf8.contains(UInt8(ascii: "%")) {
            throw ValueError(.zoneID, "'\(text.preview)' carries a zone id (%...), which only has a meaning on one host")
        }
        let bytes = Array(text.utf8)
        guard bytes.count <= 45 else { throw fail("too long") }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var sawGap = false
        var index = 0
        if bytes.starts(with: [UInt8(ascii: ":"), UInt8(ascii: ":")]) {
            sawGap = true
            index = 2
        } else if bytes.first == UInt8(ascii: ":") {
            throw fail("a leading ':' must be '::'")
        }
        while index < bytes.count {
            // One group, or an embedded IPv4 address in the last 32 bits.
            var end = index
            while end < bytes.count, bytes[end] != UInt8(ascii: ":") { end += 1 }
            let group = bytes[index..<end]
            if group.contains(UInt8(ascii: ".")) {
                guard end == bytes.count else { throw fail("an embedded IPv4 address must come last") }
                let v4 = try parseIPv4(text[text.utf8.index(text.startIndex, offsetBy: index)...])
                let parts = [UInt16(v4 >> 16), UInt16(v4 & 0xffff)]
                if sawGap { tail += parts } else { head += parts }
                index = end
                break
            }
            guard (1...4).contains(group.count) else { throw fail(group.isEmpty ? "empty group" : "groups have at most four hex digits") }
            var value: UInt16 = 0
            for byte in group {
                guard let digit = hexValue(byte) else { throw fail("unexpected character") }
                value = value << 4 | UInt16(digit)
            }
            if sawGap { tail.append(value) } else { head.append(value) }
            index = end
            if index < bytes.count {
                // At a ':'. A second ':' marks the gap.
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: ":") {
                    guard !sawGap else { throw fail("'::' may appear only once") }
                    sawGap = true
                    index += 1
                } else if index == bytes.count {
                    throw fail("a trailing ':' must be '::'")
                }
            }
        }
        let count = head.count + tail.count
        if sawGap {
            guard count <= 7 else { throw fail("too many groups") }
        } else {
            guard count == 8 else { throw fail("expected eight groups") }
        }
        var groups = head
        groups += Array(repeating: 0, count: 8 - count)
        groups += tail
        return groups.reduce(UInt128(0)) { $0 << 16 | UInt128($1) }
    }
}

extension IPAddress: CustomStringConvertible {
    public var description: String {
        switch self {
        case .v4(let v):
            return String(unsafeUninitializedCapacity: 15) { buffer in
                var n = 0
                for shift in stride(from: 24, through: 0, by: -8) {
                    let octet = Int(v >> UInt32(shift) & 0xff)
                    if octet >= 100 { buffer[n] = UInt8(48 + octet / 100); n += 1 }
                    if octet >= 10 { buffer[n] = UInt8(48 + octet / 10 % 10); n += 1 }
                    buffer[n] = UInt8(48 + octet % 10)
                    n += 1
                    if shift > 0 { buffer[n] = UInt8(ascii: "."); n += 1 }
                }
                return n
            }
        case .v6(let v):
            let groups = (0..<8).map { UInt16(truncatingIfNeeded: v >> UInt128(112 - 16 * $0)) }
            // RFC 5952: compress the longest run of two or more zero groups, the first one on a tie.
            var bestStart = -1
            var bestLength = 1
            var runStart = -1
            for (i, group) in groups.enumerated() {
                if group == 0 {
                    if runStart < 0 { runStart = i }
                    if i - runStart + 1 > bestLength {
                        bestStart = runStart
                        bestLength = i - runStart + 1
                    }
                } else {
                    runStart = -1
                }
            }
            func hex(_ slice: ArraySlice<UInt16>) -> String {
                slice.map { String($0, radix: 16) }.joined(separator: ":")
            }
            guard bestStart >= 0 else { return hex(groups[...]) }
            return hex(groups[..<bestStart]) + "::" + hex(groups[(bestStart + bestLength)...])
        }
    }
}

public enum IPFamily: Sendable, Hashable {
    case v4, v6

    public var bitWidth: Int {
        switch self {
        case .v4: 32
        case .v6: 128
        }
    }
}

@inline(__always)
func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}

extension Substring {
    /// A short, printable rendering of untrusted input for error messages.
    var preview: String { String(self).preview }
}

extension String {
    /// A short, printable rendering of untrusted input for error messages: control characters
    /// escaped, at most 64 characters.
    public var preview: String {
        var out = ""
        for scalar in unicodeScalars.prefix(64) {
            if scalar.value < 0x20 || scalar.value == 0x7f {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        if unicodeScalars.count > 64 { out += "…" }
        return out
    }
}
