/// Why a value (an indicator, a field of an item, a duration) was refused.
///
/// `code` is stable and machine-readable; `message` says what was wrong and what was expected.
public struct ValueError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let invalidIPv4 = Code(rawValue: "invalid_ipv4")
        public static let ambiguousIPv4 = Code(rawValue: "ambiguous_ipv4")
        public static let invalidIPv6 = Code(rawValue: "invalid_ipv6")
        public static let zoneID = Code(rawValue: "zone_id")
        public static let invalidCIDR = Code(rawValue: "invalid_cidr")
        public static let hostBitsSet = Code(rawValue: "host_bits_set")
        public static let invalidDomain = Code(rawValue: "invalid_domain")
        public static let invalidURL = Code(rawValue: "invalid_url")
        public static let credentialsInURL = Code(rawValue: "credentials_in_url")
        public static let invalidHash = Code(rawValue: "invalid_hash")
        public static let invalidEmail = Code(rawValue: "invalid_email")
        public static let kindMismatch = Code(rawValue: "kind_mismatch")
        public static let unknownKind = Code(rawValue: "unknown_kind")
        public static let emptyValue = Code(rawValue: "empty_value")
        public static let tooLong = Code(rawValue: "too_long")
        public static let controlCharacter = Code(rawValue: "control_character")
        public static let invalidField = Code(rawValue: "invalid_field")
        public static let unknownField = Code(rawValue: "unknown_field")
        public static let missingField = Code(rawValue: "missing_field")
        public static let invalidJSON = Code(rawValue: "invalid_json")
        public static let invalidDuration = Code(rawValue: "invalid_duration")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
