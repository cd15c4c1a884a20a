import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers a request the HTTP decoder cannot read with a problem+json, then closes the
/// connection: `431 header_too_large` for a header over `http.max_header_bytes`, `400
/// malformed_request` for anything else that is not HTTP/1.1. (Left to Hummingbird, both got a
/// bare 400 with no body, and a client still sending a large header got a reset instead.) The
/// error goes no further, so nothing logs it as an internal failure.
final class MalformedRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let maxHeaderBytes: Int
    /// A response has begun and not ended: another cannot be written into it.
    private var responding = false
    /// This connection's malformed request has been answered.
    private var answered = false

    init(maxHeaderBytes: Int) {
        self.maxHeaderBytes = maxHeaderBytes
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Once answered, what else the client sends is only dropped (the decoder reports each read).
        if answered { return }
        guard let error = error as? HTTPParserError, !responding else { return context.fireErrorCaught(error) }
        answered = true
        let problem =
            error == .headerOverflow
            ? Problem(
                HTTPResponse.Status(code: 431, reasonPhrase: "Request Header Fields Too Large"), code: "header_too_large",
                detail: "the request's header is larger than this server takes (\(maxHeaderBytes) bytes)")
            : Problem(.badRequest, code: "malformed_request", detail: "the request is not valid HTTP/1.1 (\(error))")
        let body = problem.json(instance: nil)
        let head = HTTPResponse(
            status: problem.status,
            headerFields: [.contentType: "application/problem+json", .contentLength: String(body.count), .connection: "close"])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(ByteBuffer(bytes: body))), promise: nil)
        // Closing at once, with the rest of a large header still arriving, would reset the
        // connection and the client could lose the answer: the output closes after the answer,
        // and the connection a little later (or when the client closes it).
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
            channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.kind != .informational: responding = true
        case .end: responding = false
        default: break
        }
        context.write(data, promise: promise)
    }
}
