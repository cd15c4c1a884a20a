import Hummingbird
import NIOCore
import RampartCore

/// Per-request state: who the caller is, once the bearer token was checked.
public struct RampartRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The API key the request authenticated with.
    public var apiKey: Config.APIKey?
    /// Where the connection comes from.
    public let remoteAddress: SocketAddress?
    /// The request's connection (for `100 Continue`, `BodyReceiver`).
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        channel = source.channel
    }

    /// Throws 403 unless the caller's key has `role`.
    public func require(_ role: Config.Role) throws -> Config.APIKey {
        guard let apiKey else {
            throw Problem(.unauthorized, code: "unauthorized", detail: "send Authorization: Bearer TOKEN", headers: [.wwwAuthenticate: "Bearer"])
        }
        guard apiKey.roles.contains(role) else {
            throw Problem(
                .forbidden, code: "forbidden",
                detail: "the API key '\(apiKey.name)' lacks the role '\(role.rawValue)' this endpoint needs"
            )
        }
        return apiKey
    }
}
