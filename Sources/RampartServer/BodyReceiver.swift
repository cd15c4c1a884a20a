import Hummingbird

/// How routes receive request bodies: at most `http.max_body` bytes (or a route's own smaller
/// limit; 413 beyond, from `Content-Length` before anything is read) and within
/// `http.body_timeout` (408 when a part arrives after it, so a client that trickles its body
/// cannot hold a request open; one that sends nothing at all is closed by `http.idle_timeout`).
struct BodyReceiver: Sendable {
    let maxBytes: Int
    let timeout: Duration

    func receive(_ request: Request, _ context: RampartRequestContext, upTo limit: Int? = nil) async throws -> ByteBuffer {
        let limit = min(limit ?? maxBytes, maxBytes)
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw Problem(.contentTooLarge, code: "body_too_large", detail: "the body has \(length) bytes; this endpoint takes at most \(limit)")
        }
        // A client that asked (Expect: 100-continue) sends the body now.
        context.channel.triggerUserOutboundEvent(ExpectContinueHandler.SendContinue(), promise: nil)
        let deadline = ContinuousClock.now + timeout
        var received = ByteBuffer()
        for try await part in request.body {
            guard received.readableBytes + part.readableBytes <= limit else {
                throw Problem(.contentTooLarge, code: "body_too_large", detail: "the body is larger than this endpoint takes (\(limit) bytes)")
            }
            guard ContinuousClock.now <= deadline else {
                throw Problem(.requestTimeout, code: "body_timeout", detail: "the body did not arrive within http.body_timeout (\(timeout))")
            }
            if received.readableBytes == 0 {
                received = part
            } else {
                received.writeImmutableBuffer(part)
            }
        }
        return received
    }
}
