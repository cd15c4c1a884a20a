import HTTPTypes
import Hummingbird
import RampartCore

/// `POST /v1/indicators`: JSON, NDJSON, plain-text or STIX 2.1 bodies; defaults from query parameters.
struct IndicatorRoutes {
    let pipeline: Pipeline
    let bodies: BodyReceiver

    func register(on router: Router<RampartRequestContext>) {
        router.post("/v1/indicators") { request, context in
            try await ingest(request, context)
        }
    }

    func ingest(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let key = try context.require(.ingest)
        let format = try IndicatorRoutes.format(of: request)
        let defaults: IndicatorDefaults
        do {
            defaults = try IndicatorDefaults(parameters: request.uri.queryParameters.map { (String($0.key), String($0.value)) })
        } catch {
            throw Problem.badRequest("invalid_parameter", error.message)
        }
        let body = try await bodies.receive(request, context)
        let idempotency = try request.headers[HTTPField.Name("Idempotency-Key")!].map { header in
            guard (1...255).contains(header.utf8.count), header.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                throw Problem.badRequest("invalid_parameter", "Idempotency-Key must be 1 to 255 visible ASCII characters")
            }
            // What the items are made of: the body, its type, and the defaults from the query.
            return Pipeline.IdempotencyKey(
                key: header,
                request: [body, ByteBuffer(string: request.headers[.contentType] ?? ""), ByteBuffer(string: request.uri.query ?? "")])
        }
        let summary: Pipeline.Summary
        do {
            summary = try await pipeline.ingest(body, format: format, defaults: defaults, via: "api:\(key.name)", idempotency: idempotency)
        } catch is Pipeline.IdempotencyKeyReused {
            throw Problem(
                .unprocessableContent, code: "idempotency_key_reused",
                detail: "this Idempotency-Key was used in the last 24 hours for another request; a retry must send the same body and parameters")
        } catch let error as IngestParser.BodyError {
            switch error.kind {
            case .invalid: throw Problem.badRequest("invalid_body", error.message)
            case .tooManyItems: throw Problem(.contentTooLarge, code: "too_many_items", detail: error.message)
            }
        }
        if summary.ids.isEmpty && summary.skipped.isEmpty && summary.revoked.isEmpty {
            if summary.rejected.isEmpty { throw Problem.badRequest("empty_body", "the body holds no indicators") }
            throw Problem(
                .unprocessableContent, code: "all_items_refused",
                detail: summary.rejectedCount > summary.rejected.count
                    ? "none of the \(summary.rejectedCount) items was accepted; the first \(summary.rejected.count) errors say why"
                    : "none of the \(summary.rejectedCount) items was accepted; each error says why",
                errors: summary.rejected
            )
        }
        var w = JSONWriter(capacity: 64 + summary.ids.count * 39)
        w.beginObject()
        w.field("accepted", summary.ids.count)
        w.key("rejected")
        w.beginArray()
        for error in summary.rejected { error.write(to: &w) }
        w.endArray()
        w.field("rejected_count", summary.rejectedCount)
        w.field("ids", summary.ids)
        if summary.stix {
            w.key("skipped")
            w.beginArray()
            for (position, reason) in summary.skipped.prefix(Pipeline.refusalsListed) {
                w.beginObject()
                w.field("index", position)
                w.field("reason", reason)
                w.endObject()
            }
            w.endArray()
            w.field("skipped_count", summary.skipped.count)
            w.field("revoked", summary.revoked)
        }
        w.endObject()
        return Response.json(.accepted, w)
    }

    static let mediaTypes: [String: IngestParser.Format] = [
        "application/json": .json,
        "application/x-ndjson": .ndjson,
        "application/ndjson": .ndjson,
        "application/jsonl": .ndjson,
        "application/x-jsonlines": .ndjson,
        "text/plain": .text,
        "application/stix+json": .stix,
    ]

    static func format(of request: Request) throws -> IngestParser.Format {
        let mediaType = request.headers[.contentType]?.split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }
        if let mediaType, let format = mediaTypes[mediaType] { return format }
        throw Problem(
            .unsupportedMediaType, code: "unsupported_media_type",
            detail:
                "Content-Type \(mediaType.map { "'\($0)'" } ?? "missing"); send application/json, application/x-ndjson, text/plain or application/stix+json (with curl: -H 'Content-Type: text/plain' --data-binary @file)"
        )
    }
}

extension Response {
    static func json(_ status: HTTPResponse.Status, _ writer: JSONWriter) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: writer.bytes)))
    }
}
