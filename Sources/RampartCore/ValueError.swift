/// Why a value (an indicator, a field of an item, a duration) was refused.
///
/// `code` is stable and machine-readable; `message` says what was wrong and what was expected.
public struct ValueError: Error, Sendable, Hashable, CustomStringConvertible {
    public typealias Code = ErrorCode

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
