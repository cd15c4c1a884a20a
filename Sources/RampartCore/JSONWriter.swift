import Foundation

/// Builds compact JSON text quickly, for hot paths (ingest answers, stored items, audit details).
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    /// Bit n is set when the container at depth n already holds a value (and the next needs a comma).
    private var commaBits: UInt64 = 0
    private var depth: UInt64 = 0

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    public var string: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func separator() {
        let bit: UInt64 = 1 << depth
        if commaBits & bit != 0 { bytes.append(UInt8(ascii: ",")) }
        commaBits |= bit
    }

    private mutating func open(_ bracket: Character) {
        separator()
        bytes.append(bracket.asciiValue!)
        depth += 1
        precondition(depth < 64, "JSONWriter nests at most 63 levels")
        commaBits &= ~(1 << depth)
    }

    private mutating func close(_ bracket: Character) {
        depth -= 1
        bytes.append(bracket.asciiValue!)
    }

    public mutating func beginObject() { open("{") }
    public mutating func endObject() { close("}") }
    public mutating func beginArray() { open("[") }
    public mutating func endArray() { close("]") }

    /// Writes `"name":`; the value written next belongs to it.
    public mutating func key(_ name: String) {
        separator()
        appendQuoted(name)
        bytes.append(UInt8(ascii: ":"))
        commaBits &= ~(1 << depth)
    }

    public mutating func value(_ text: String) {
        separator()
        appendQuoted(text)
    }

    public mutating func value(_ number: Int) {
        separator()
        bytes.append(contentsOf: String(number).utf8)
    }

    public mutating func value(_ number: Int64) {
        separator()
        bytes.append(contentsOf: String(number).utf8)
    }

    public mutating func value(_ flag: Bool) {
        separator()
        bytes.append(contentsOf: (flag ? "true" : "false").utf8)
    }

    public mutating func null() {
        separator()
        bytes.append(contentsOf: "null".utf8)
    }

    /// Writes already-encoded JSON as the next value.
    public mutating func raw(_ json: some Sequence<UInt8>) {
        separator()
        bytes.append(contentsOf: json)
    }

    public mutating func field(_ name: String, _ text: String) {
        key(name)
        value(text)
    }

    public mutating func field(_ name: String, _ text: String?) {
        guard let text else { return }
        key(name)
        value(text)
    }

    public mutating func field(_ name: String, _ code: ErrorCode) {
        field(name, code.rawValue)
    }

    public mutating func field(_ name: String, _ number: Int) {
        key(name)
        value(number)
    }

    public mutating func field(_ name: String, _ flag: Bool) {
        key(name)
        value(flag)
    }

    /// A time as an RFC 3339 string (`Timestamp.format`), written without an intermediate String.
    public mutating func field(_ name: String, _ date: Date) {
        key(name)
        separator()
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 26) { buffer in
            buffer[0] = UInt8(ascii: "\"")
            let count = Timestamp.write(milliseconds: date.milliseconds, into: UnsafeMutableBufferPointer(rebasing: buffer[1...]))
            buffer[count + 1] = UInt8(ascii: "\"")
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<(count + 2)]))
        }
    }

    public mutating func field(_ name: String, _ list: [String]) {
        key(name)
        beginArray()
        for item in list { value(item) }
        endArray()
    }

    public mutating func value(_ json: JSONValue) {
        switch json {
        case .null: null()
        case .bool(let b): value(b)
        case .number(let d):
            separator()
            if d == d.rounded(), abs(d) < 1e15 {
                bytes.append(contentsOf: String(Int64(d)).utf8)
            } else {
                bytes.append(contentsOf: "\(d)".utf8)
            }
        case .string(let s): value(s)
        case .array(let list):
            beginArray()
            for item in list { value(item) }
            endArray()
        case .object(let members):
            beginObject()
            for (name, item) in members {
                key(name)
                value(item)
            }
            endObject()
        }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    private mutating func appendQuoted(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        if text.utf8.withContiguousStorageIfAvailable({ appendEscaped($0) }) == nil {
            let copy = Array(text.utf8)
            copy.withUnsafeBufferPointer { appendEscaped($0) }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
        // Copy runs that need no escaping in one go.
        var runStart = 0
        for i in 0..<utf8.count {
            let byte = utf8[i]
            guard byte < 0x20 || byte == 0x22 || byte == 0x5c || byte == 0x7f else { continue }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i]))
            runStart = i + 1
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [0x5c, 0x22])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [0x5c, 0x5c])
            case 0x0a: bytes.append(contentsOf: [0x5c, UInt8(ascii: "n")])
            case 0x0d: bytes.append(contentsOf: [0x5c, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [0x5c, UInt8(ascii: "t")])
            default:
                bytes.append(contentsOf: [0x5c, UInt8(ascii: "u"), 0x30, 0x30, JSONWriter.hex[Int(byte >> 4)], JSONWriter.hex[Int(byte & 0xf)]])
            }
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
    }
}
