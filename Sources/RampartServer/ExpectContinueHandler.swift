import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Answers `Expect: 100-continue` with `100 Continue` once the route starts reading the body
/// (`BodyReceiver.receive` asks with `SendContinue`), so that clients that ask first (curl does
/// for bodies over 1 MiB) send the body at once, and a request the route refuses from its headers
/// (an unsigned `POST /v1/peer/events`, a missing token) gets its refusal instead of an
/// invitation to send the body.
final class ExpectContinueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// The user outbound event a route sends when it starts reading the body.
    struct SendContinue: Sendable {}

    /// Whether the current request asked and has not been answered yet.
    private var waiting = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            waiting = head.headerFields[.expect]?.lowercased() == "100-continue"
        }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is SendContinue else { return context.triggerUserOutboundEvent(event, promise: promise) }
        if waiting {
            waiting = false
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
        }
        promise?.succeed()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // A final answer ends the wait: no 100 after it.
        if case .head = unwrapOutboundIn(data) { waiting = false }
        context.write(data, promise: promise)
    }
}
