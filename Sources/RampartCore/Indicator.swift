import Foundation

/// A threat indicator: a validated, normalised value and what its reporter says about it.
public struct Indicator: Sendable, Hashable {
    public var kind: IndicatorKind
    /// The canonical value (see `IndicatorValue.normalise`).
    public var value: String
    public var confidence: Int
    public var severity: Severity
    public var tlp: TLP
    public var source: String?
    public var tags: [String]
    public var validUntil: Date?
    public var description: String?
    public var references: [String]

    public init(
        kind: IndicatorKind, value: String, confidence: Int = 50, severity: Severity = .medium, tlp: TLP = .amber,
        source: String? = nil, tags: [String] = [], validUntil: Date? = nil, description: String? = nil, references: [String] = []
    ) {
        self.kind = kind
        self.value = value
        self.confidence = confidence
        self.severity = severity
        self.tlp = tlp
        self.source = source
        self.tags = tags
        self.validUntil = validUntil
        self.description = description
        self.references = references
    }

    /// The address or network of an IP-kind indicator.
    public var network: IPNetwork? {
        guard kind.isNetwork else { return nil }
        return try? IPNetwork(parsing: value, allowBareAddress: true)
    }
}

/// Field values an ingest request applies to every indicator that does not set them itself
/// (from query parameters such as `?source=feodo&confidence=90&ttl=7d`).
public struct IndicatorDefaults: Sendable {
    public var kind: IndicatorKind?
    public var source: String?
    public var confidence = 50
    public var severity = Severity.medium
    public var tlp = TLP.amber
    public var ttl: Duration?
    public var tags: [String] = []

    public init() {}

    public static let parameterNames: Set<String> = ["kind", "source", "confidence", "severity", "tlp", "ttl", "tags"]

    /// Reads defaults from request parameters, refusing unknown ones and bad values.
    public init(parameters: [(String, String)]) throws(ValueError) {
        for (name, value) in parameters {
            switch name {
            case "kind": kind = try IndicatorKind(name: value)
            case "source": source = try Indicator.checkedText(value, field: "source", max: 256)
            case "confidence": confidence = try Indicator.confidence(.string(value))
            case "severity": severity = try Severity(name: value)
            case "tlp": tlp = try TLP(name: value)
            case "ttl": ttl = try Indicator.ttl(value)
            case "tags":
                tags = try Indicator.tags(value.split(separator: ",").map { JSONValue.string(String($0)) })
            default:
                throw ValueError(
                    .unknownField,
                    "unknown parameter '\(name.preview)'; expected \(IndicatorDefaults.parameterNames.sorted().joined(separator: ", "))"
                )
            }
        }
    }
}

// MARK: - Reading indicators from JSON

extension Indicator {
    public static let fieldNames = [
        "kind", "value", "confidence", "severity", "tlp", "source", "tags", "valid_until", "ttl", "description", "references",
    ]
    static let maxTags = 64
    static let maxReferences = 32

    /// Reads an indicator object (`{"value": "198.51.100.7", "confidence": 90, ...}`), applying `defaults`
    /// to absent fields. Unknown fields are errors, so that a misspelt field is noticed, not ignored.
    public init(json: JSONValue, defaults: IndicatorDefaults, now: Date) throws(ValueError) {
        guard case .object(let members) = json else {
            throw ValueError(.invalidField, "expected an indicator object, found \(json.typeName)")
        }
        var kind = defaults.kind
        var rawValue: String?
        var confidence = defaults.confidence
        var severity = defaults.severity
        var tlp = defaults.tlp
        var source = defaults.source
        var tags = defaults.tags
        var validUntil = defaults.ttl.map { now.adding($0) }
        var description: String?
        var references: [String] = []
        var sawTTL = false
        var sawValidUntil = false
        for (name, value) in members {
            switch name {
            case "kind": kind = try IndicatorKind(name: try Indicator.string(value, field: "kind"))
            case "value": rawValue = try Indicator.string(value, field: "value")
            case "confidence": confidence = try Indicator.confidence(value)
            case "severity": severity = try Severity(name: try Indicator.string(value, field: "severity"))
            case "tlp": tlp = try TLP(name: try Indicator.string(value, field: "tlp"))
            case "source": source = try Indicator.checkedText(try Indicator.string(value, field: "source"), field: "source", max: 256)
            case "tags":
                guard case .array(let list) = value else { throw ValueError(.invalidField, "'tags' must be an array of strings") }
                tags = try Indicator.tags(list)
            case "valid_until":
                sawValidUntil = true
                validUntil = try Timestamp.parse(try Indicator.string(value, field: "valid_until"))
            case "ttl":
                sawTTL = true
                validUntil = now.adding(try Indicator.ttl(try Indicator.string(value, field: "ttl")))
            case "description":
                description = try Indicator.checkedText(
                    try Indicator.string(value, field: "description"), field: "description", max: 4096, multiline: true)
            case "references":
                guard case .array(let list) = value, list.count <= Indicator.maxReferences else {
                    throw ValueError(.invalidField, "'references' must be an array of at most \(Indicator.maxReferences) strings")
                }
                references = try list.map { (item) throws(ValueError) -> String in
                    try Indicator.checkedText(try Indicator.string(item, field: "references"), field: "references", max: 2048)
                }
            default:
                throw ValueError(.unknownField, "unknown field '\(name.preview)'; expected \(Indicator.fieldNames.joined(separator: ", "))")
            }
        }
        if sawTTL && sawValidUntil { throw ValueError(.invalidField, "give either 'ttl' or 'valid_until', not both") }
        guard let rawValue else { throw ValueError(.missingField, "missing field 'value'") }
        if let validUntil, validUntil <= now {
            throw ValueError(.invalidField, "'valid_until' \(Timestamp.format(validUntil)) is in the past")
        }
        let (resolvedKind, value) = try IndicatorValue.normalise(rawValue, as: kind)
        self.init(
            kind: resolvedKind, value: value, confidence: confidence, severity: severity, tlp: tlp, source: source,
            tags: tags, validUntil: validUntil, description: description, references: references
        )
    }

    /// Reads an indicator from a plain-text line: its first whitespace-separated column is the value.
    public init(line: Substring, defaults: IndicatorDefaults, now: Date) throws(ValueError) {
        let trimmed = line.trimmingASCIIWhitespace()
        let end = trimmed.utf8.firstIndex(where: { $0 == 0x20 || $0 == 0x09 }) ?? trimmed.endIndex
        let firstColumn = trimmed[..<end]
        let (kind, value) = try IndicatorValue.normalise(firstColumn, as: defaults.kind)
        self.init(
            kind: kind, value: value, confidence: defaults.confidence, severity: defaults.severity, tlp: defaults.tlp,
            source: defaults.source, tags: defaults.tags, validUntil: defaults.ttl.map { now.adding($0) }
        )
    }

    static func string(_ value: JSONValue, field: String) throws(ValueError) -> String {
        guard case .string(let s) = value else { throw ValueError(.invalidField, "'\(field)' must be a string, found \(value.typeName)") }
        return s
    }

    static func confidence(_ value: JSONValue) throws(ValueError) -> Int {
        let number: Double?
        switch value {
        case .number(let d): number = d
        case .string(let s): number = Double(s)
        default: number = nil
        }
        guard let number, number == number.rounded(), (0...100).contains(number) else {
            throw ValueError(.invalidField, "'confidence' must be a whole number from 0 to 100")
        }
        return Int(number)
    }

    static func ttl(_ text: String) throws(ValueError) -> Duration {
        let ttl = try Duration(parsing: text)
        guard ttl > .zero else { throw ValueError(.invalidDuration, "'ttl' must be positive") }
        return ttl
    }

    /// Tags are lower-cased words of letters, digits and `-_.:/=` (MISP-style `tlp:amber` or `mitre/t1071` included).
    static func tags(_ list: [JSONValue]) throws(ValueError) -> [String] {
        guard list.count <= maxTags else { throw ValueError(.invalidField, "at most \(maxTags) tags are allowed") }
        var tags: [String] = []
        for item in list {
            let raw = try string(item, field: "tags")
            // Most tags are already lower-case ASCII: skip Foundation's trimming and Unicode properties.
            let plain =
                raw.utf8.count <= 64
                && raw.utf8.allSatisfy {
                    ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x5f || $0 == 0x2e || $0 == 0x3a || $0 == 0x2f
                        || $0 == 0x3d
                }
            let tag = plain ? raw : raw.trimmingCharacters(in: .whitespaces).lowercased()
            guard !tag.isEmpty, tag.utf8.count <= 64,
                plain
                    || tag.unicodeScalars.allSatisfy({
                        $0.properties.isAlphabetic || $0.properties.numericType != nil || "-_.:/=".unicodeScalars.contains($0)
                    })
            else {
                throw ValueError(.invalidField, "tag '\(tag.preview)' must be 1-64 letters, digits or -_.:/=")
            }
            if !tags.contains(tag) { tags.append(tag) }
        }
        return tags
    }

    public static func checkedText(_ text: String, field: String, max: Int, multiline: Bool = false) throws(ValueError) -> String {
        guard text.utf8.count <= max else { throw ValueError(.tooLong, "'\(field)' is longer than \(max) bytes") }
        let forbidden = text.unicodeScalars.contains { scalar in
            (scalar.value < 0x20 && !(multiline && (scalar == "\n" || scalar == "\t"))) || scalar.value == 0x7f
        }
        guard !forbidden else { throw ValueError(.controlCharacter, "'\(field)' contains a control character") }
        return text
    }
}
