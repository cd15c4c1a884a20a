import Foundation

/// Splits an ingest request body into indicators, one result per item: a bad item is reported
/// with its position and never stops the good ones around it.
public enum IngestParser {
    public enum Format: String, Sendable {
        /// One indicator object or an array of them (`application/json`).
        case json
        /// One indicator object per line (`application/x-ndjson`).
        case ndjson
        /// One value per line; `#` and `;` start comments; columns after the first are ignored (`text/plain`).
        case text
        /// A STIX 2.1 bundle or TAXII envelope (`application/stix+json`, or JSON whose `type` is `bundle`).
        case stix
    }

    /// What one item of a body is.
    public enum Parsed: Sendable {
        case indicator(Indicator)
        /// A STIX object: the indicators or rule it holds, its revocation, or why it holds nothing.
        case stix(STIX.Object)
    }

    /// One item of the body: where it was and what came of it.
    public struct Entry: Sendable {
        /// 0-based index into a JSON array, or 1-based line number.
        public var position: Int
        public var result: Result<Parsed, ValueError>
        /// The raw value (or line) of a refused item, shortened, for the audit log.
        public var raw: String?
        /// The id the item is to have (a feed's items have ids made from the feed and the value);
        /// nil: a new one.
        public var id: String?

        public init(position: Int, result: Result<Parsed, ValueError>, raw: String? = nil, id: String? = nil) {
            self.position = position
            self.result = result
            self.raw = raw
            self.id = id
        }
    }

    /// A problem with the request as a whole: nothing in it was accepted.
    public struct BodyError: Error, Sendable, Hashable {
        public enum Kind: Sendable, Hashable {
            case invalid
            case tooManyItems
        }

        public var kind: Kind
        public var message: String
    }

    /// The name of the position field in answers and audit entries.
    public static func positionName(_ format: Format) -> String {
        format == .json || format == .stix ? "index" : "line"
    }

    public struct Limits: Sendable {
        public var maxItems: Int
        public var maxDepth: Int
        /// The largest detection rule accepted, posted or received.
        public var maxRuleBytes: Int

        public init(maxItems: Int, maxDepth: Int, maxRuleBytes: Int = Rule.defaultMaxBytes) {
            self.maxItems = maxItems
            self.maxDepth = maxDepth
            self.maxRuleBytes = maxRuleBytes
        }
    }

    /// Parses the body and calls `emit` for each item in order. Throws `BodyError` before emitting
    /// anything when the body as a whole cannot be read or holds too many items.
    public static func parse(
        _ body: UnsafeRawBufferPointer, format: Format, defaults: IndicatorDefaults, now: Date, limits: Limits,
        emit: (Entry) -> Void
    ) throws(BodyError) {
        var reader = try Reader(Array(body), format: format, defaults: defaults, now: now, limits: limits)
        while let entry = reader.next() { emit(entry) }
    }

    /// The items of a body, one at a time, so that a caller can pause between them (to let what
    /// it made of the earlier ones commit) without holding the whole body's items at once.
    public struct Reader: Sendable {
        private let bytes: [UInt8]
        /// `.stix` for a JSON body that turned out to be a bundle.
        public private(set) var format: Format
        private let defaults: IndicatorDefaults
        private let now: Date
        private let maxDepth: Int
        /// A JSON body's items, parsed up front (JSON cannot be read item by item).
        private let elements: [JSONValue]
        /// A STIX body's objects, where each lies in `bytes`, parsed one at a time.
        private let ranges: [Range<Int>]
        /// For a STIX body: what its objects say about each other (creators' names).
        private let context: STIX.Context?
        private let maxRuleBytes: Int
        /// The next element (JSON) or the next line's first byte (NDJSON, text).
        private var offset: Int
        private var lineNumber = 0

        /// Checks the body as a whole: throws `BodyError` when it cannot be read or holds too many items.
        public init(_ body: [UInt8], format: Format, defaults: IndicatorDefaults, now: Date, limits: Limits) throws(BodyError) {
            bytes = body
            self.format = format
            self.defaults = defaults
            self.now = now
            maxDepth = limits.maxDepth
            maxRuleBytes = limits.maxRuleBytes
            offset = body.starts(with: [0xef, 0xbb, 0xbf]) ? 3 : 0  // UTF-8 byte order mark
            switch format {
            case .stix:
                // A bundle is split into its objects' byte ranges and each object parsed when its
                // turn comes: a large bundle never stands in memory as one tree.
                let split: (members: [(String, JSONValue)], elements: [Range<Int>])
                do {
                    split = try body.withUnsafeBufferPointer { [offset] all throws(ValueError) in
                        var parser = JSONParser(bytes: UnsafeBufferPointer(rebasing: all[offset...]), maxDepth: limits.maxDepth)
                        return try parser.splitObjects()
                    }
                    _ = try STIX.objects(of: .object(split.members))
                } catch {
                    throw BodyError(kind: .invalid, message: error.message)
                }
                let start = offset
                ranges = split.elements.map { $0.lowerBound + start..<$0.upperBound + start }
                elements = []
                context = STIX.Context(identitiesIn: body, ranges, maxDepth: limits.maxDepth)
                guard ranges.count <= limits.maxItems else { throw tooMany(limits) }
                offset = 0
            case .json:
                let document: JSONValue
                do {
                    document = try body.withUnsafeBufferPointer { [offset] all throws(ValueError) in
                        try JSONValue.parse(buffer: UnsafeBufferPointer(rebasing: all[offset...]), maxDepth: limits.maxDepth)
                    }
                } catch {
                    throw BodyError(kind: .invalid, message: error.message)
                }
                ranges = []
                if document["type"] == .string("bundle") {
                    do {
                        elements = try STIX.objects(of: document)
                    } catch {
                        throw BodyError(kind: .invalid, message: error.message)
                    }
                    context = STIX.Context(elements)
                    self.format = .stix
                } else {
                    switch document {
                    case .array(let list): elements = list
                    case .object: elements = [document]
                    default: throw BodyError(kind: .invalid, message: "expected an indicator object or an array of them, found \(document.typeName)")
                    }
                    context = nil
                }
                guard elements.count <= limits.maxItems else { throw tooMany(limits) }
                offset = 0
            case .ndjson, .text:
                elements = []
                ranges = []
                context = nil
                guard body.withUnsafeBufferPointer(lineCount) <= limits.maxItems else { throw tooMany(limits) }
            }
        }

        /// The next item, or nil after the last.
        public mutating func next() -> Entry? {
            if !ranges.isEmpty {
                guard offset < ranges.count, let context else { return nil }
                defer { offset += 1 }
                let range = ranges[offset]
                return bytes.withUnsafeBufferPointer { all in
                    var id: String?
                    let entry = entry(offset, raw: { id }) { () throws(ValueError) -> Parsed in
                        let element = try JSONValue.parse(buffer: UnsafeBufferPointer(rebasing: all[range]), maxDepth: maxDepth)
                        if case .string(let s)? = element["id"] { id = s }
                        return .stix(try STIX.read(element, context: context, defaults: defaults, now: now, maxRuleBytes: maxRuleBytes))
                    }
                    return entry
                }
            }
            if format == .json || format == .stix {
                guard offset < elements.count else { return nil }
                defer { offset += 1 }
                let element = elements[offset]
                if let context {
                    return entry(offset, raw: { (element["id"].flatMap { if case .string(let s) = $0 { s } else { nil } }) }) {
                        () throws(ValueError) -> Parsed in
                        .stix(try STIX.read(element, context: context, defaults: defaults, now: now, maxRuleBytes: maxRuleBytes))
                    }
                }
                return entry(offset, raw: { (element["value"].flatMap { if case .string(let s) = $0 { s } else { nil } }) }) {
                    () throws(ValueError) -> Parsed in .indicator(try Indicator(json: element, defaults: defaults, now: now))
                }
            }
            return bytes.withUnsafeBufferPointer { all in
                while offset < all.count {
                    let end = all[offset...].firstIndex(of: 0x0a) ?? all.count
                    let line = trimmed(UnsafeBufferPointer(rebasing: all[offset..<end]))
                    offset = end + 1
                    lineNumber += 1
                    guard let first = line.first else { continue }
                    if format == .text {
                        guard first != UInt8(ascii: "#"), first != UInt8(ascii: ";") else { continue }
                        return entry(lineNumber, raw: { String(decoding: line, as: UTF8.self) }) { () throws(ValueError) -> Parsed in
                            guard let text = String(validating: line, as: UTF8.self) else {
                                throw ValueError(.invalidField, "the line is not valid UTF-8")
                            }
                            return .indicator(try Indicator(line: Substring(text), defaults: defaults, now: now))
                        }
                    }
                    return entry(lineNumber, raw: { String(decoding: line.prefix(256), as: UTF8.self) }) { () throws(ValueError) -> Parsed in
                        let value = try JSONValue.parse(buffer: line, maxDepth: maxDepth)
                        return .indicator(try Indicator(json: value, defaults: defaults, now: now))
                    }
                }
                return nil
            }
        }
    }

    private static func entry(_ position: Int, raw: () -> String?, _ make: () throws(ValueError) -> Parsed) -> Entry {
        do {
            return Entry(position: position, result: .success(try make()), raw: nil)
        } catch {
            return Entry(position: position, result: .failure(error), raw: raw().map { String($0.preview.prefix(256)) })
        }
    }

    private static func tooMany(_ limits: Limits) -> BodyError {
        BodyError(kind: .tooManyItems, message: "more than \(limits.maxItems) items in one request (http.max_items); split the body")
    }

    /// Lines, a last one without a newline included: "a\nb\n" and "a\nb" both hold two.
    static func lineCount(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var count = 0
        for byte in bytes where byte == 0x0a { count += 1 }
        return bytes.last.map { $0 == 0x0a ? count : count + 1 } ?? 0
    }

    /// Without leading and trailing spaces, tabs and carriage returns.
    public static func trimmed(_ line: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var low = 0
        var high = line.count
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0d }
        while low < high, isSpace(line[low]) { low += 1 }
        while high > low, isSpace(line[high - 1]) { high -= 1 }
        return UnsafeBufferPointer(rebasing: line[low..<high])
    }
}
