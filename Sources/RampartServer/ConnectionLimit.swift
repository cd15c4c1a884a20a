import NIOCore
import Synchronization

/// Caps the connections open at once (`http.max_connections`): one over the cap is closed as
/// soon as it is accepted, before anything is read, so that idle or slow clients can never use up
/// the descriptors the store and the firewall need.
final class ConnectionLimit: Sendable {
    let max: Int
    private let open = Atomic<Int>(0)

    init(max: Int) {
        self.max = max
    }

    /// The handler for one connection.
    func handler() -> Handler { Handler(limit: self) }

    final class Handler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = NIOAny
        let limit: ConnectionLimit
        private var counted = false

        init(limit: ConnectionLimit) {
            self.limit = limit
        }

        func handlerAdded(context: ChannelHandlerContext) {
            // Added to an active channel: it counts from here.
            guard context.channel.isActive else { return }
            admit(context: context)
        }

        func channelActive(context: ChannelHandlerContext) {
            if !counted { admit(context: context) }
            context.fireChannelActive()
        }

        private func admit(context: ChannelHandlerContext) {
            counted = true
            if limit.open.wrappingAdd(1, ordering: .relaxed).newValue > limit.max { context.close(promise: nil) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            if counted {
                counted = false
                limit.open.wrappingSubtract(1, ordering: .relaxed)
            }
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.fireChannelRead(data)
        }
    }
}
