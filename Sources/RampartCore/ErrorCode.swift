/// A stable, machine-readable reason, in one convention wherever it appears: a refused value or
/// item (`ValueError`), a safety or sharing refusal, a store failure, a problem+json answer's
/// `code` (and its `type`, `urn:rampart:problem:CODE`), an audit entry, a metric label.
/// Lower-case words joined by `_`, such as `invalid_ipv4` or `too_many_blocks`.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String

    public init(rawValue: String) {
        assert(ErrorCode.isWellFormed(rawValue), "error code \(rawValue) is not lower-case words joined by _")
        self.rawValue = rawValue
    }

    public init(_ rawValue: String) {
        self.init(rawValue: rawValue)
    }

    public init(stringLiteral value: String) {
        self.init(rawValue: value)
    }

    public var description: String { rawValue }

    /// Whether `text` keeps the convention.
    public static func isWellFormed(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
    }

    // Values and items.
    public static let invalidIPv4 = ErrorCode("invalid_ipv4")
    public static let ambiguousIPv4 = ErrorCode("ambiguous_ipv4")
    public static let invalidIPv6 = ErrorCode("invalid_ipv6")
    public static let zoneID = ErrorCode("zone_id")
    public static let invalidCIDR = ErrorCode("invalid_cidr")
    public static let hostBitsSet = ErrorCode("host_bits_set")
    public static let invalidDomain = ErrorCode("invalid_domain")
    public static let invalidURL = ErrorCode("invalid_url")
    public static let credentialsInURL = ErrorCode("credentials_in_url")
    public static let invalidHash = ErrorCode("invalid_hash")
    public static let invalidEmail = ErrorCode("invalid_email")
    public static let kindMismatch = ErrorCode("kind_mismatch")
    public static let unknownKind = ErrorCode("unknown_kind")
    public static let emptyValue = ErrorCode("empty_value")
    public static let tooLong = ErrorCode("too_long")
    public static let controlCharacter = ErrorCode("control_character")
    public static let invalidField = ErrorCode("invalid_field")
    public static let unknownField = ErrorCode("unknown_field")
    public static let missingField = ErrorCode("missing_field")
    public static let invalidJSON = ErrorCode("invalid_json")
    public static let invalidDuration = ErrorCode("invalid_duration")
}
