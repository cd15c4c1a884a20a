import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RampartCore
import RampartStore

/// A TAXII 2.1 server under `/taxii2/` (one API root, `/taxii2/api/`): the collections of the
/// configuration, each a view of the store's items through its sharing policy, paged from the
/// store (nothing is held per client). Adding objects ingests them at once, as `POST
/// /v1/indicators` with a STIX body does, and answers a `complete` status.
struct TAXIIRoutes {
    let taxii: Config.TAXII
    let keys: [Config.APIKey]
    let pipeline: Pipeline
    let store: Store
    let bodies: BodyReceiver
    let nodeID: String
    /// How long a request's status is kept (`retention.taxii_status`).
    let statusKept: Duration
    let now: @Sendable () -> Date

    static let root = "/taxii2/api/"
    static let mediaType = "application/taxii+json;version=2.1"
    static let defaultPage = 100
    static let maxPage = 1000

    func register(on router: Router<RampartRequestContext>) {
        router.get("/taxii2") { request, _ in try discovery(request) }
        router.get("/taxii2/api") { request, _ in try apiRoot(request) }
        router.get("/taxii2/api/collections") { request, _ in try collections(request) }
        router.get("/taxii2/api/collections/:collection") { request, context in
            let (key, collection) = try visible(request, context)
            return Self.answer { w in write(collection, for: key, to: &w) }
        }
        router.get("/taxii2/api/collections/:collection/objects") { request, context in try await objects(request, context, manifest: false) }
        router.get("/taxii2/api/collections/:collection/manifest") { request, context in try await objects(request, context, manifest: true) }
        router.post("/taxii2/api/collections/:collection/objects") { request, context in try await add(request, context) }
        router.get("/taxii2/api/collections/:collection/objects/:object") { request, context in
            try await objects(request, context, manifest: false, object: try context.parameters.require("object"))
        }
        router.get("/taxii2/api/collections/:collection/objects/:object/versions") { request, context in
            try await versions(request, context, object: try context.parameters.require("object"))
        }
        router.get("/taxii2/api/status/:status") { request, context in try await status(request, context) }
    }

    // MARK: - Auth, content negotiation, answers

    /// The API key behind HTTP Basic (user: the key's name, password: its token), or behind
    /// `Authorization: Bearer TOKEN` (or `Token TOKEN`, as taxii2-client's TokenAuth sends).
    func authenticate(_ request: Request) throws -> Config.APIKey {
        let header = request.headers[.authorization] ?? ""
        let challenge: HTTPFields = [.wwwAuthenticate: #"Basic realm="rampart TAXII", Bearer"#]
        var found: Config.APIKey?
        if header.hasPrefix("Basic "), let decoded = Data(base64Encoded: String(header.dropFirst(6))).flatMap({ String(data: $0, encoding: .utf8) }),
            let colon = decoded.firstIndex(of: ":")
        {
            let name = decoded[..<colon]
            // The token is checked against every key's hash whatever the name, in constant time.
            if let key = AuthMiddleware.match(token: decoded[decoded.index(after: colon)...], keys: keys), key.name == name { found = key }
        } else if header.hasPrefix("Bearer ") || header.hasPrefix("Token ") {
            found = AuthMiddleware.match(token: header.drop(while: { $0 != " " }).dropFirst(), keys: keys)
        } else {
            throw Problem(
                .unauthorized, code: "unauthorized", detail: "send HTTP Basic (API key name and token) or Authorization: Bearer TOKEN",
                headers: challenge)
        }
        guard let found else { throw Problem(.unauthorized, code: "unauthorized", detail: "the credentials are not valid", headers: challenge) }
        return found
    }

    /// TAXII 2.1 answers only `application/taxii+json` (with `version=2.1` or none), or `*/*`.
    static func checkAccept(_ request: Request) throws {
        guard let accept = request.headers[.accept] else { return }
        let acceptable = accept.replacingOccurrences(of: " ", with: "").split(separator: ",").contains { item in
            item == "application/taxii+json;version=2.1" || item == "application/taxii+json" || item == "*/*"
        }
        guard acceptable else {
            throw Problem(
                .notAcceptable, code: "not_acceptable",
                detail: "this TAXII 2.1 server answers Accept: application/taxii+json;version=2.1, not '\(accept.preview)'")
        }
    }

    static func answer(_ status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], _ build: (inout JSONWriter) -> Void) -> Response {
        var w = JSONWriter(capacity: 1024)
        build(&w)
        var fields = headers
        fields[.contentType] = mediaType
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
    }

    func discovery(_ request: Request) throws -> Response {
        _ = try authenticate(request)
        try Self.checkAccept(request)
        return Self.answer { w in
            w.beginObject()
            w.field("title", taxii.title)
            if let description = taxii.description { w.field("description", description) }
            w.field("default", Self.root)
            w.field("api_roots", [Self.root])
            w.endObject()
        }
    }

    func apiRoot(_ request: Request) throws -> Response {
        _ = try authenticate(request)
        try Self.checkAccept(request)
        return Self.answer { w in
            w.beginObject()
            w.field("title", taxii.title)
            w.field("description", "The collections of Rampart node \(nodeID)")
            w.field("versions", [Self.mediaType])
            w.field("max_content_length", bodies.maxBytes)
            w.endObject()
        }
    }

    func collections(_ request: Request) throws -> Response {
        let key = try authenticate(request)
        try Self.checkAccept(request)
        let visible = taxii.collections.filter { $0.canRead(key) || $0.canWrite(key) }
        return Self.answer { w in
            w.beginObject()
            if !visible.isEmpty {
                w.key("collections")
                w.beginArray()
                for collection in visible { write(collection, for: key, to: &w) }
                w.endArray()
            }
            w.endObject()
        }
    }

    func write(_ collection: Config.TAXII.Collection, for key: Config.APIKey, to w: inout JSONWriter) {
        w.beginObject()
        w.field("id", collection.id)
        w.field("title", collection.title)
        if let description = collection.description { w.field("description", description) }
        w.field("can_read", collection.canRead(key))
        w.field("can_write", collection.canWrite(key))
        w.field("media_types", [STIX.mediaType])
        w.endObject()
    }

    /// The caller and the collection the path names, when the caller may read or write it (a
    /// collection it may do neither with is not found, as if absent).
    func visible(_ request: Request, _ context: RampartRequestContext) throws -> (Config.APIKey, Config.TAXII.Collection) {
        let key = try authenticate(request)
        try Self.checkAccept(request)
        let id = try context.parameters.require("collection")
        guard let collection = taxii.collections.first(where: { $0.id == id }), collection.canRead(key) || collection.canWrite(key) else {
            throw Problem.notFound("no collection \(id.preview) here")
        }
        return (key, collection)
    }

    func readable(_ request: Request, _ context: RampartRequestContext) throws -> (Config.APIKey, Config.TAXII.Collection) {
        let (key, collection) = try visible(request, context)
        guard collection.canRead(key) else {
            throw Problem(.forbidden, code: "forbidden", detail: "the API key '\(key.name)' may not read collection \(collection.id)")
        }
        return (key, collection)
    }

    // MARK: - Reading

    /// A page's filters, read from TAXII's query parameters, and the cursor they continue from.
    struct Filters {
        var query = ExportQuery()
        /// What `next` tokens are bound to: the collection and every filter but `limit` and `next`.
        var digest = ""
        /// No filter at all (an object that is absent then answers 404).
        var none = true
        /// `match[type]` or `match[spec_version]` exclude every object served (all are 2.1 indicators).
        var excludesAll = false
    }

    static let matchFields: [String: Set<String>] = [
        "objects": ["id", "type", "version", "spec_version"], "object": ["version", "spec_version"], "versions": ["spec_version"],
    ]

    func filters(_ request: Request, collection: Config.TAXII.Collection, endpoint: String) throws -> Filters {
        var filters = Filters()
        filters.query.maxTLP = min(collection.share.maxTLP, .amberStrict)
        if let kinds = collection.share.kinds {
            var names = Set(kinds.map(\.rawValue))
            if collection.share.items?.contains("rule") ?? true { names.insert("rule") }
            filters.query.kinds = names
        }
        if let items = collection.share.items, !items.contains("indicator") {
            filters.query.kinds = ["rule"]
        }
        var bound: [String] = [collection.id, endpoint]
        var limit = Self.defaultPage
        var next: String?
        for (rawName, rawValue) in request.uri.queryParameters {
            // Clients send `match[type]` as `match%5Btype%5D`; the router decodes only values.
            let (name, value) = (String(rawName).removingPercentEncoding ?? String(rawName), String(rawValue))
            switch name {
            case "limit":
                guard let n = Int(value), n > 0 else { throw Problem.badRequest("invalid_parameter", "limit must be a positive whole number") }
                limit = min(n, Self.maxPage)
            case "next":
                next = value
            case "added_after":
                guard let date = try? Timestamp.parse(value) else {
                    throw Problem.badRequest("invalid_parameter", "added_after must be a timestamp such as 2026-01-01T00:00:00.000Z")
                }
                filters.query.added(after: date)
            case let match where match.hasPrefix("match[") && match.hasSuffix("]"):
                let field = String(match.dropFirst(6).dropLast())
                guard Self.matchFields[endpoint]?.contains(field) == true else {
                    throw Problem.badRequest("invalid_parameter", "match[\(field.preview)] is not a filter of this endpoint")
                }
                let values = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                guard !values.isEmpty else { throw Problem.badRequest("invalid_parameter", "match[\(field)] needs a value") }
                switch field {
                case "id": filters.query.objects = values
                case "type": if !values.contains("indicator") { filters.excludesAll = true }
                case "spec_version": if !values.contains("2.1") { filters.excludesAll = true }
                default:
                    if values == ["last"] {
                        filters.query.versions = .last
                    } else if values == ["first"] {
                        filters.query.versions = .first
                    } else if values == ["all"] {
                        filters.query.versions = .all
                    } else {
                        filters.query.versions = .at(
                            try values.map { text in
                                guard let date = try? Timestamp.parse(text) else {
                                    throw Problem.badRequest("invalid_parameter", "match[version] takes last, first, all or timestamps")
                                }
                                return date.milliseconds
                            })
                    }
                }
            default:
                continue
            }
            if name != "limit" && name != "next" {
                filters.none = false
                bound.append("\(name)=\(value)")
            }
        }
        filters.query.limit = limit
        filters.digest = Self.digest(bound.sorted())
        if let next {
            // A `next` token is the place after the last object of the page it ended, bound to that page's filters.
            let parts = next.split(separator: ".")
            guard parts.count == 2, let seq = Int64(parts[0]), parts[1] == filters.digest else {
                throw Problem.badRequest("invalid_next", "next is not a token this server gave for these filters; start again without it")
            }
            filters.query.after = max(filters.query.after, seq)
        }
        return filters
    }

    static func digest(_ parts: [String]) -> String {
        SHA256.hash(data: Array(parts.joined(separator: "\u{0}").utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// `objects/`, `manifest/` and `objects/{id}/`.
    func objects(_ request: Request, _ context: RampartRequestContext, manifest: Bool, object: String? = nil) async throws -> Response {
        let (_, collection) = try readable(request, context)
        var filters = try filters(request, collection: collection, endpoint: object == nil ? "objects" : "object")
        if let object { filters.query.objects = [object] }
        let (page, more) = try await read(filters, collection)
        if object != nil && page.isEmpty && filters.none {
            throw Problem.notFound("no object \(object!.preview) in collection \(collection.id)")
        }
        return Self.answer(headers: Self.dateHeaders(page)) { w in
            w.beginObject()
            if !page.isEmpty {
                w.field("more", more)
                if more, let last = page.last { w.field("next", "\(last.seq).\(filters.digest)") }
                w.key("objects")
                w.beginArray()
                for exported in page {
                    if manifest {
                        w.beginObject()
                        w.field("id", exported.object)
                        w.field("date_added", Self.timestamp(exported.dateAdded))
                        w.field("version", Self.timestamp(exported.version))
                        w.field("media_type", STIX.mediaType)
                        w.endObject()
                    } else {
                        STIX.write(exported.item, revokedAt: exported.revoked ? exported.version : nil, nodeID: nodeID, to: &w)
                    }
                }
                w.endArray()
            }
            w.endObject()
        }
    }

    func versions(_ request: Request, _ context: RampartRequestContext, object: String) async throws -> Response {
        let (_, collection) = try readable(request, context)
        var filters = try filters(request, collection: collection, endpoint: "versions")
        filters.query.objects = [object]
        filters.query.versions = .all
        let (page, more) = try await read(filters, collection)
        if page.isEmpty && filters.none { throw Problem.notFound("no object \(object.preview) in collection \(collection.id)") }
        return Self.answer(headers: Self.dateHeaders(page)) { w in
            w.beginObject()
            if !page.isEmpty {
                w.field("more", more)
                if more, let last = page.last { w.field("next", "\(last.seq).\(filters.digest)") }
                w.field("versions", page.map { Self.timestamp($0.version) })
            }
            w.endObject()
        }
    }

    func read(_ filters: Filters, _ collection: Config.TAXII.Collection) async throws -> ([ExportedObject], Bool) {
        guard !filters.excludesAll else { return ([], false) }
        let share = collection.share
        return try await store.exportedObjects(filters.query) { item in try? share.share(item).get() }
    }

    /// TAXII's timestamps: RFC 3339 in UTC with microseconds.
    static func timestamp(_ date: Date) -> String {
        let text = Timestamp.format(date)
        return text.dropLast() + "000Z"
    }

    static func dateHeaders(_ page: [ExportedObject]) -> HTTPFields {
        guard let first = page.first, let last = page.last else { return [:] }
        return [
            HTTPField.Name("X-TAXII-Date-Added-First")!: timestamp(first.dateAdded),
            HTTPField.Name("X-TAXII-Date-Added-Last")!: timestamp(last.dateAdded),
        ]
    }

    // MARK: - Adding objects

    func add(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let (key, collection) = try visible(request, context)
        guard collection.canWrite(key) else {
            throw Problem(.forbidden, code: "forbidden", detail: "the API key '\(key.name)' may not write to collection \(collection.id)")
        }
        let contentType = (request.headers[.contentType] ?? "").replacingOccurrences(of: " ", with: "")
        guard contentType == Self.mediaType || contentType == "application/taxii+json" else {
            throw Problem(
                .unsupportedMediaType, code: "unsupported_media_type",
                detail: "send a TAXII envelope as Content-Type: application/taxii+json;version=2.1")
        }
        let body = try await bodies.receive(request, context)
        let requested = now()
        // Each object's id and version, for the status (the pipeline reads the objects again).
        let envelope: [JSONValue]
        do {
            envelope = try STIX.objects(of: try JSONValue.parse(body.readableBytesView))
        } catch {
            throw Problem.badRequest("invalid_body", error.message)
        }
        let summary: Pipeline.Summary
        do {
            summary = try await pipeline.ingest(body, format: .stix, defaults: IndicatorDefaults(), via: "api:\(key.name)")
        } catch let error as IngestParser.BodyError {
            switch error.kind {
            case .invalid: throw Problem.badRequest("invalid_body", error.message)
            case .tooManyItems: throw Problem(.contentTooLarge, code: "too_many_items", detail: error.message)
            }
        }
        // Objects left alone count as failures with the reason, except one stored already (a
        // re-post is not an error, TAXII 2.1 §5.5).
        var failures: [Int: String] = [:]
        for error in summary.rejected { failures[error.position] = error.message }
        for (position, reason) in summary.skipped where !reason.contains("stored already") && !reason.hasPrefix("value refused") {
            failures[position] = reason
        }
        let id = UUID().uuidString.lowercased()
        let failureCount = failures.count + summary.rejectedCount - summary.rejected.count
        var w = JSONWriter(capacity: 256 + envelope.count * 96)
        w.beginObject()
        w.field("id", id)
        w.field("status", "complete")
        w.field("request_timestamp", Self.timestamp(requested))
        w.field("total_count", envelope.count)
        w.field("success_count", envelope.count - failureCount)
        w.field("failure_count", failureCount)
        w.field("pending_count", 0)
        // The lists name every object, or (past the refusals an answer lists one by one) none.
        if failureCount == failures.count {
            for (name, failed) in [("successes", false), ("failures", true)] {
                let indices = envelope.indices.filter { (failures[$0] != nil) == failed }
                guard !indices.isEmpty else { continue }
                w.key(name)
                w.beginArray()
                for index in indices {
                    let object = envelope[index]
                    w.beginObject()
                    w.field("id", object["id"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? "(no id)")
                    if let version = (object["modified"] ?? object["created"]).flatMap({ if case .string(let s) = $0 { s } else { nil } }) {
                        w.field("version", version)
                    }
                    if let message = failures[index] { w.field("message", message) }
                    w.endObject()
                }
                w.endArray()
            }
        }
        w.endObject()
        try await store.saveTAXIIStatus(id: id, via: "api:\(key.name)", body: w.bytes, at: requested)
        return Response(status: .accepted, headers: [.contentType: Self.mediaType], body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
    }

    func status(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let key = try authenticate(request)
        try Self.checkAccept(request)
        let id = try context.parameters.require("status")
        guard let status = try await store.taxiiStatus(id: id), status.via == "api:\(key.name)" || key.roles.contains(.admin) else {
            throw Problem.notFound(
                "no status \(id.preview) here (statuses are kept \(statusKept.milliseconds / 3_600_000) hours: retention.taxii_status)")
        }
        return Response(status: .ok, headers: [.contentType: Self.mediaType], body: .init(byteBuffer: ByteBuffer(string: status.body)))
    }
}
