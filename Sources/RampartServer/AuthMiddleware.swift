import Crypto
import Hummingbird
import RampartCore

/// Authenticates `Authorization: Bearer TOKEN` against the configured keys' SHA-256 hashes, for
/// every `/v1/` endpoint but `/v1/peer/events`. Health and metrics endpoints are open; routes check roles themselves.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = RampartRequestContext
    let keys: [Config.APIKey]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Peers authenticate what they send by its signature (PeerRoutes), not with API keys.
        guard request.uri.path.hasPrefix("/v1/"), request.uri.path != "/v1/peer/events" else { return try await next(request, context) }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "), header.count > 7 else {
            throw Problem(
                .unauthorized, code: "unauthorized", detail: "this endpoint needs Authorization: Bearer TOKEN",
                headers: [.wwwAuthenticate: "Bearer"]
            )
        }
        guard let key = AuthMiddleware.match(token: header.dropFirst(7), keys: keys) else {
            throw Problem(.unauthorized, code: "unauthorized", detail: "the bearer token is not valid", headers: [.wwwAuthenticate: "Bearer"])
        }
        var context = context
        context.apiKey = key
        return try await next(request, context)
    }

    static func match(token: Substring, keys: [Config.APIKey]) -> Config.APIKey? {
        matchingHash(of: token, in: keys.map(\.tokenSHA256)).map { keys[$0] }
    }
}

/// Which of `hashes` is the SHA-256 of `secret`: compared with every one, in constant time,
/// without stopping early.
func matchingHash(of secret: Substring, in hashes: [[UInt8]]) -> Int? {
    let digest = Array(SHA256.hash(data: Array(secret.utf8)))
    var found: Int?
    for (index, hash) in hashes.enumerated() {
        var difference: UInt8 = 0
        for (a, b) in zip(digest, hash) { difference |= a ^ b }
        if difference == 0 && hash.count == digest.count { found = index }
    }
    return found
}
