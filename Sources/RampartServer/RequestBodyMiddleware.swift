import Hummingbird

/// Receives every request body before a route sees it: at most `http.max_body` bytes (413
/// beyond, from `Content-Length` before anything is read), and within `http.body_timeout` (408
/// after, so a client that trickles its body cannot hold a request open).
struct RequestBodyMiddleware<Context: RequestContext>: RouterMiddleware {
    let maxBytes: Int
    let timeout: Duration

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBytes {
            throw Problem(.contentTooLarge, code: "body-too-large", detail: "the body has \(length) bytes; http.max_body allows \(maxBytes)")
        }
        let body = request.body
        let (maxBytes, timeout) = (maxBytes, timeout)
        let received = try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
            group.addTask { try await body.collect(upTo: maxBytes) }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        guard let received else {
            throw Problem(.requestTimeout, code: "body-timeout", detail: "the body did not arrive within http.body_timeout (\(timeout))")
        }
        var request = request
        request.body = RequestBody(buffer: received)
        return try await next(request, context)
    }
}
