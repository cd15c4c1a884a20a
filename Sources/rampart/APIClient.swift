import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RampartCore

/// Talks to a running daemon's HTTP API for the client subcommands.
struct APIOptions: ParsableArguments {
    @OptionGroup var config: ConfigOptions

    @Option(help: "The daemon's base URL (default: http://LISTEN from the configuration).")
    var url: String?

    @Option(help: "API token (default: $RAMPART_TOKEN).")
    var token: String?

    func client() throws -> APIClient {
        let base: String
        if let url {
            base = url
        } else {
            let listen = try config.load().listen
            let host = listen.host == "0.0.0.0" ? "127.0.0.1" : listen.host == "::" ? "::1" : listen.host
            base = "http://\(host.contains(":") ? "[\(host)]" : host):\(listen.port)"
        }
        guard let token = token ?? ProcessInfo.processInfo.environment["RAMPART_TOKEN"], !token.isEmpty else {
            throw CLIError("no API token: pass --token or set RAMPART_TOKEN")
        }
        return APIClient(base: base.hasSuffix("/") ? String(base.dropLast()) : base, token: token)
    }
}

struct APIClient {
    let base: String
    let token: String

    /// Sends a request and returns the parsed JSON answer; a problem+json answer becomes an error
    /// showing its detail (and per-item errors).
    func call(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json") async throws -> JSONValue {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        } catch {
            throw CLIError("cannot reach the daemon at \(base): \(error)")
        }
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let json = try? JSONValue.parse(bytes.readableBytesView, maxDepth: 64)
        guard (200..<300).contains(Int(response.status.code)) else {
            var message = "\(response.status.code) \(response.status.reasonPhrase)"
            if case .string(let detail)? = json?["detail"] { message += ": \(detail)" }
            if case .array(let errors)? = json?["errors"] {
                for error in errors.prefix(20) {
                    if case .string(let text)? = error["error"] { message += "\n  \(text)" }
                }
            }
            throw CLIError(message)
        }
        guard let json else { throw CLIError("the daemon answered something that is not JSON") }
        return json
    }
}

extension String {
    /// Percent-encodes a query parameter value.
    var queryEncoded: String {
        addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:"))) ?? self
    }
}
