import Foundation

/// STIX 2.1 objects as Rampart reads them: the indicators (and detection rules) of a bundle or
/// a TAXII envelope, with their id, version and markings.
public enum STIX {
    /// TLP 1.0 marking definitions (STIX 2.1 §7.2.1.4) and TLP 2.0 ones (the OASIS extension
    /// `extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d`), by id.
    public static let markings: [String: TLP] = [
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": .clear,
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": .green,
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": .amber,
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": .red,
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487": .clear,
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb": .green,
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421": .amber,
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003": .amberStrict,
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1": .red,
    ]

    /// One version of a STIX object: its id and `modified` (else `created`), as sent.
    public struct Version: Sendable, Hashable {
        public let id: String
        /// The timestamp text, as the object gave it (it is the version TAXII names).
        public let modified: String
        public let date: Date

        public init(id: String, modified: String, date: Date) {
            self.id = id
            self.modified = modified
            self.date = date
        }
    }

    /// What one object of a bundle comes to.
    public struct Object: Sendable {
        public enum Content: Sendable {
            /// The indicators or the rule the object holds.
            case payloads([Item.Payload])
            /// `revoked: true`: what earlier versions caused is withdrawn.
            case revoked
            /// Nothing to act on, and why (another object type, a pattern that names no value).
            case skipped(String)
        }

        public let version: Version?
        public let content: Content
        /// Values of the pattern that were refused while others were taken, with why.
        public var refused: [String] = []
    }

    /// What the other objects of a bundle tell about an indicator: its creator's name.
    public struct Context: Sendable {
        var identities: [String: String] = [:]

        public init(_ objects: [JSONValue]) {
            for object in objects { add(object) }
        }

        /// From the objects of a body lying at `ranges`: those that may be identities are parsed.
        init(identitiesIn body: [UInt8], _ ranges: [Range<Int>], maxDepth: Int) {
            let marker = Array(#""identity""#.utf8)
            body.withUnsafeBufferPointer { all in
                for range in ranges {
                    let object = UnsafeBufferPointer(rebasing: all[range])
                    guard object.count >= marker.count,
                        (0...(object.count - marker.count)).contains(where: {
                            object[$0] == marker[0] && object[$0..<$0 + marker.count].elementsEqual(marker)
                        }),
                        let parsed = try? JSONValue.parse(buffer: object, maxDepth: maxDepth)
                    else { continue }
                    add(parsed)
                }
            }
        }

        mutating func add(_ object: JSONValue) {
            guard object["type"] == .string("identity"), case .string(let id)? = object["id"], case .string(let name)? = object["name"] else {
                return
            }
            identities[id] = name
        }
    }

    /// The objects of a bundle (`{"type": "bundle", "objects": [...]}`) or a TAXII envelope
    /// (`{"objects": [...]}`).
    public static func objects(of document: JSONValue) throws(ValueError) -> [JSONValue] {
        guard case .object = document else { throw ValueError(.invalidField, "expected a STIX bundle object, found \(document.typeName)") }
        if let type = document["type"], type != .string("bundle") {
            throw ValueError(.invalidField, "expected a STIX bundle (\"type\": \"bundle\") or a TAXII envelope")
        }
        switch document["objects"] {
        case .array(let objects)?: return objects
        case nil: return []
        case let other?: throw ValueError(.invalidField, "'objects' must be an array, found \(other.typeName)")
        }
    }

    static let skewTolerance: TimeInterval = 300

    /// Reads one object. Throws for an object that is not valid STIX (or holds a value Rampart
    /// refuses); an object that is valid but holds nothing to act on is `skipped`.
    public static func read(
        _ object: JSONValue, context: Context, defaults: IndicatorDefaults, now: Date, maxRuleBytes: Int = Rule.defaultMaxBytes
    ) throws(ValueError) -> Object {
        guard case .object = object else { throw ValueError(.invalidField, "expected a STIX object, found \(object.typeName)") }
        guard case .string(let type)? = object["type"] else { throw ValueError(.missingField, "a STIX object needs 'type'") }
        guard type == "indicator" else {
            return Object(version: nil, content: .skipped("\(type.preview) objects hold no indicator"))
        }
        if let spec = object["spec_version"], spec != .string("2.1") {
            throw ValueError(.invalidField, "'spec_version' must be \"2.1\"")
        }
        let id = try text(object, "id")
        guard id.utf8.count == 47, id.hasPrefix("indicator--"), PeerMessage.isItemID(String(id.utf8.dropFirst(11))!.lowercased()) else {
            throw ValueError(.invalidField, "'id' must be indicator--<UUID>")
        }
        let modifiedText = try object["modified"] == nil ? text(object, "created") : text(object, "modified")
        let version = Version(id: id, modified: modifiedText, date: try timestamp(modifiedText, "modified"))
        if object["revoked"] == .bool(true) { return Object(version: version, content: .revoked) }

        let validFrom = try object["valid_from"].map { (v) throws(ValueError) in
            try timestamp(try Indicator.string(v, field: "valid_from"), "valid_from")
        }
        let validUntil = try object["valid_until"].map { (v) throws(ValueError) in
            try timestamp(try Indicator.string(v, field: "valid_until"), "valid_until")
        }
        if let validFrom, let validUntil, validUntil <= validFrom {
            throw ValueError(.invalidField, "'valid_until' must be later than 'valid_from'")
        }
        if let validUntil, validUntil <= now {
            return Object(version: version, content: .skipped("valid_until \(Timestamp.format(validUntil)) has passed"))
        }
        if let validFrom, validFrom > now.addingTimeInterval(skewTolerance) {
            return Object(
                version: version, content: .skipped("valid_from \(Timestamp.format(validFrom)) is in the future; only what is valid now is acted on"))
        }
        var confidence = defaults.confidence
        if let value = object["confidence"] { confidence = try Indicator.confidence(value) }
        let tlp = try marking(object) ?? defaults.tlp
        var tags = defaults.tags
        for field in ["indicator_types", "labels"] {
            guard case .array(let list)? = object[field] else { continue }
            for case .string(let label) in list {
                let word = label.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: "-")
                if let tag = try? Indicator.tags([.string(word)]).first, !tags.contains(tag), tags.count < Indicator.maxTags { tags.append(tag) }
            }
        }
        var source = defaults.source
        if case .string(let creator)? = object["created_by_ref"] {
            source = (try? Indicator.checkedText(context.identities[creator] ?? creator, field: "source", max: 256)) ?? source
        }
        var references: [String] = []
        if case .array(let list)? = object["external_references"] {
            for reference in list where references.count < Indicator.maxReferences {
                let textValue: String?
                if case .string(let url)? = reference["url"] {
                    textValue = url
                } else if case .string(let name)? = reference["source_name"], case .string(let external)? = reference["external_id"] {
                    textValue = "\(name):\(external)"
                } else {
                    textValue = nil
                }
                if let textValue, let checked = try? Indicator.checkedText(textValue, field: "references", max: 2048) { references.append(checked) }
            }
        }
        var description: String?
        for field in ["description", "name"] {
            if case .string(let s)? = object[field], let checked = try? Indicator.checkedText(s, field: field, max: 4096, multiline: true) {
                description = checked
                break
            }
        }

        let pattern = try text(object, "pattern")
        let patternType = object["pattern_type"] == nil ? "stix" : try text(object, "pattern_type")
        switch patternType {
        case "stix":
            let values: [(IndicatorKind?, String)]
            if let single = STIXPattern.singleValue(pattern) {
                values = [single]
            } else {
                switch try STIXPattern(pattern).values() {
                case .success(let found): values = found
                case .failure(let reason): return Object(version: version, content: .skipped("the pattern names nothing to act on: \(reason.reason)"))
                }
            }
            var payloads: [Item.Payload] = []
            var seen: Set<String> = []
            var refused: [ValueError] = []
            for (kind, raw) in values {
                let resolved: IndicatorKind
                let value: String
                do {
                    (resolved, value) = try IndicatorValue.normalise(raw, as: kind)
                } catch {
                    refused.append(error)
                    continue
                }
                guard seen.insert(value).inserted else { continue }
                payloads.append(
                    .indicator(
                        Indicator(
                            kind: resolved, value: value, confidence: confidence, severity: defaults.severity, tlp: tlp, source: source,
                            tags: tags, validUntil: validUntil ?? defaults.ttl.map { now.adding($0) }, description: description,
                            references: references)))
            }
            // One bad value among good ones does not stop them: the answer says which was left out.
            if payloads.isEmpty, let first = refused.first { throw first }
            var object = Object(version: version, content: .payloads(payloads))
            object.refused = refused.map(\.message)
            return object
        case "sigma", "suricata", "snort", "yara":
            let format = try RuleFormat(name: patternType)
            let name = Rule.fileName(object["name"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? id)
            func rule(_ content: String) throws(RuleError) -> Rule {
                try Rule(format: format, content: content, name: name, tlp: tlp, confidence: confidence, tags: tags, maxBytes: maxRuleBytes)
            }
            do throws(RuleError) {
                return Object(version: version, content: .payloads([.rule(try rule(pattern))]))
            } catch {
                // MISP writes rules inside the brackets of a STIX pattern.
                if pattern.hasPrefix("["), pattern.hasSuffix("]"), let unwrapped = try? rule(String(pattern.dropFirst().dropLast())) {
                    return Object(version: version, content: .payloads([.rule(unwrapped)]))
                }
                throw error.valueError
            }
        default:
            return Object(version: version, content: .skipped("pattern_type \(patternType.preview) is not one Rampart acts on"))
        }
    }

    /// The TLP of an object's markings: the most restrictive; a marking that is not a TLP one
    /// counts as RED, so that nothing whose terms are unknown is shared on. nil: no markings.
    static func marking(_ object: JSONValue) throws(ValueError) -> TLP? {
        guard let refs = object["object_marking_refs"] else { return nil }
        guard case .array(let list) = refs else { throw ValueError(.invalidField, "'object_marking_refs' must be an array") }
        var tlp: TLP?
        for case .string(let id) in list {
            let level = markings[id] ?? .red
            tlp = max(tlp ?? level, level)
        }
        return tlp
    }

    static func text(_ object: JSONValue, _ field: String) throws(ValueError) -> String {
        guard let value = object[field] else { throw ValueError(.missingField, "an indicator needs '\(field)'") }
        return try Indicator.string(value, field: field)
    }

    static func timestamp(_ text: String, _ field: String) throws(ValueError) -> Date {
        guard text.hasSuffix("Z"), let date = try? Timestamp.parse(text) else {
            throw ValueError(.invalidField, "'\(field)' must be a UTC timestamp such as 2026-01-01T00:00:00.000Z")
        }
        return date
    }
}
