import Foundation
import Hummingbird
import NIOCore
import RampartCore
import RampartStore

/// An RFC 9457 problem: the body of every error answer (`application/problem+json`).
public struct Problem: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    /// Stable, machine-readable: `body_too_large`, `forbidden`, `invalid-json`, ...
    public var code: ErrorCode
    public var title: String
    public var detail: String
    /// Per-item errors, for requests that carried several items.
    public var errors: [ItemError]
    public var headers: HTTPFields

    public struct ItemError: Sendable {
        /// `index` (JSON arrays) or `line` (line-oriented bodies).
        public var positionName: String
        public var position: Int
        public var code: ErrorCode
        public var message: String

        func write(to w: inout JSONWriter) {
            w.beginObject()
            w.field(positionName, position)
            w.field("code", code)
            w.field("error", message)
            w.endObject()
        }
    }

    public init(
        _ status: HTTPResponse.Status, code: ErrorCode, title: String? = nil, detail: String, errors: [ItemError] = [],
        headers: HTTPFields = [:]
    ) {
        self.status = status
        self.code = code
        self.title = title ?? status.reasonPhrase
        self.detail = detail
        self.errors = errors
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        if request.uri.path.hasPrefix("/taxii2") { return taxiiResponse() }
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json(instance: request.uri.path))))
    }

    /// The problem+json body; `instance`: the request's path, when it was read.
    func json(instance: String?) -> [UInt8] {
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.field("type", "urn:rampart:problem:\(code)")
        w.field("title", title)
        w.field("status", status.code)
        w.field("detail", detail)
        w.field("code", code)
        if let instance { w.field("instance", instance) }
        if !errors.isEmpty {
            w.key("errors")
            w.beginArray()
            for error in errors { error.write(to: &w) }
            w.endArray()
        }
        w.endObject()
        return w.bytes
    }
}

extension Problem {
    /// The problem as a TAXII 2.1 error message (`application/taxii+json`, every answer under `/taxii2/`).
    func taxiiResponse() -> Response {
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.field("title", title)
        w.field("description", detail)
        w.field("error_code", code.rawValue)
        w.field("http_status", String(status.code))
        w.endObject()
        var headers = self.headers
        headers[.contentType] = TAXIIRoutes.mediaType
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
    }

    static func badRequest(_ code: ErrorCode, _ detail: String) -> Problem {
        Problem(.badRequest, code: code, detail: detail)
    }

    static func notFound(_ detail: String) -> Problem {
        Problem(.notFound, code: "not_found", detail: detail)
    }
}

/// Turns every error a route throws into a problem+json answer: routes throw `Problem`s; framework
/// errors (unknown route) are translated; anything else is a logged 500 that
/// reveals nothing internal.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            return try problem.response(from: request, context: context)
        } catch let error as StoreError where error.isStorageFull {
            context.logger.error("store.storage_full", metadata: ["rampart.error": "\(error)", "rampart.path": "\(request.uri.path)"])
            return try Problem(HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage"), code: .storageFull, detail: error.message)
                .response(from: request, context: context)
        } catch let error as HTTPError {
            let detail: String
            switch error.status {
            case .notFound: detail = "no such endpoint: \(request.method) \(request.uri.path)"
            case .methodNotAllowed: detail = "\(request.method) is not allowed on \(request.uri.path)"
            default: detail = error.body ?? error.status.reasonPhrase
            }
            let code = String(error.status.reasonPhrase.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
            return try Problem(error.status, code: ErrorCode(code), detail: detail, headers: error.headers).response(from: request, context: context)
        } catch {
            context.logger.error("http.internal_error", metadata: ["rampart.error": "\(error)", "rampart.path": "\(request.uri.path)"])
            return try Problem(.internalServerError, code: "internal", detail: "the request failed; the daemon's log says why")
                .response(from: request, context: context)
        }
    }
}
