import CompressNIO
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RampartCore
import RampartStore
import ServiceLifecycle

/// The CrowdSec bouncer API (the part of CrowdSec's local API that bouncers use), on a listener of
/// its own, so that the enforcement agents CrowdSec's users already run (firewall, nginx, HAProxy,
/// Traefik, Cloudflare, ... bouncers) enforce Rampart's decisions unchanged. Authenticated by
/// `X-Api-Key` against `bouncers` (403 `{"message":"access forbidden"}` otherwise). Errors are
/// CrowdSec's `{"message": ...}`, not problem+json: that is what bouncers parse.
struct BouncerAPI: Sendable {
    let store: Store
    let bouncers: [Config.Bouncer]
    let consumers: BouncerConsumers
    let bell: DecisionBell
    let bodies: BodyReceiver
    let metrics: RampartMetrics
    let now: @Sendable () -> Date

    /// Decisions read from the store at a time while an answer is written.
    static let pageSize = 5000
    /// A first pull lists as deleted the decisions that ended, or would have ended, within this.
    static let endedWindow: TimeInterval = 86_400

    /// The listener (`crowdsec.listen`, with `crowdsec.tls` and the `http` limits) serving this
    /// API and nothing else, as a service of the daemon's.
    func listener(_ crowdsec: Config.CrowdSec, http: Config.HTTP, logger: Logger) throws -> some Service {
        let router = Router(context: RampartRequestContext.self)
        register(on: router)
        return Application(
            router: router,
            server: try Daemon.serverBuilder(tls: crowdsec.tls, http: http),
            configuration: ApplicationConfiguration(address: .hostname(crowdsec.listen.host, port: crowdsec.listen.port)),
            onServerRunning: { channel in
                let listening = Config.Listen(host: channel.localAddress?.ipAddress ?? crowdsec.listen.host, port: channel.localAddress?.port ?? 0)
                logger.notice("bouncer_api.ready", metadata: ["rampart.listen": "\(listening)", "rampart.bouncers": "\(bouncers.count)"])
            },
            logger: logger
        )
    }

    func register(on router: Router<RampartRequestContext>) {
        router.add(middleware: BouncerErrorMiddleware())
        router.get("/health") { _, _ in Self.json(#"{"status":"up"}"#) }
        router.get("/v1/decisions/stream") { request, context in try await stream(request, context) }
        router.head("/v1/decisions/stream") { request, _ in
            _ = try authenticate(request)
            return Response(status: .ok, headers: [.contentType: "application/json"])
        }
        router.get("/v1/decisions") { request, _ in try await lookup(request) }
        router.head("/v1/decisions") { request, _ in
            _ = try authenticate(request)
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"])
        }
        router.post("/v1/usage-metrics") { request, context in try await usageMetrics(request, context) }
    }

    func authenticate(_ request: Request) throws -> Config.Bouncer {
        guard let key = request.headers[Self.apiKeyHeader], let index = matchingHash(of: key[...], in: bouncers.map(\.keySHA256)) else {
            throw BouncerError(.forbidden, "access forbidden")
        }
        return bouncers[index]
    }

    static let apiKeyHeader = HTTPField.Name("X-Api-Key")!

    /// Query parameters, percent-decoded; the last of a repeated name wins.
    static func parameters(_ request: Request) -> [String: String] {
        var parameters: [String: String] = [:]
        for (name, value) in request.uri.queryParameters { parameters[String(name)] = String(value) }
        return parameters
    }

    // MARK: The stream

    /// `GET /v1/decisions/stream`: with `startup=true` (or from a consumer with no place in the
    /// stream yet) every decision in force as `new` and those that ended lately as `deleted`;
    /// otherwise what changed since the consumer's last complete pull. A decision extended since
    /// then is in both (`deleted` is applied first), so that bouncers which never refresh an
    /// element's timeout re-add it with the new one. The consumer's place moves only once the whole
    /// answer is written.
    func stream(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let bouncer = try authenticate(request)
        let parameters = Self.parameters(request)
        let filter = BouncerFilter(bouncer: bouncer, parameters: parameters)
        let address = context.remoteAddress?.ipAddress ?? "unknown"
        let cursor = consumers.seen(key: bouncer.name, address: address, userAgent: request.headers[.userAgent] ?? "", at: now())
        let head = try await store.decisionHead()
        guard parameters["startup"] != "true", let cursor, cursor <= head else {
            // A store restored from an older copy has fewer changes than the consumer saw: start over.
            return Response(status: .ok, headers: [.contentType: "application/json"], body: firstPull(bouncer, filter, address, head: head))
        }
        var after = cursor
        let deadline = bouncer.hold.map { ContinuousClock.now + $0 }
        while true {
            let rings = bell.rings
            let changes = try await store.decisionChanges(after: after, now: now())
            var added: [BouncerDecision] = []
            var deleted: [BouncerDecision] = []
            for decision in changes.decisions where filter.admits(decision) {
                if decision.inForce {
                    added.append(decision)
                    if decision.number <= cursor { deleted.append(decision) }
                } else {
                    deleted.append(decision)
                }
            }
            after = max(after, changes.head)
            if let deadline, added.isEmpty, deleted.isEmpty, ContinuousClock.now < deadline, !Task.isShuttingDownGracefully {
                await withGracefulShutdownHandler {
                    await bell.wait(after: rings, timeout: deadline - ContinuousClock.now)
                } onGracefulShutdown: {
                    bell.ringNow()
                }
                continue
            }
            let at = now()
            var out = ByteBuffer(string: #"{"new":["#)
            Self.append(added, to: &out, now: at)
            out.writeString(#"],"deleted":["#)
            Self.append(deleted, to: &out, now: at)
            out.writeString("]}")
            let (answer, reached, delivered) = (out, after, added.count)
            let body = ResponseBody { writer in
                try await writer.write(answer)
                try await writer.finish(nil)
                completed(bouncer, address, cursor: reached, delivered: delivered, first: false)
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: body)
        }
    }

    /// A first pull's answer, written page by page as it is read from the store (never whole in
    /// memory). Changes made while it is written are in the next pull too (`head` was read first).
    private func firstPull(_ bouncer: Config.Bouncer, _ filter: BouncerFilter, _ address: String, head: Int64) -> ResponseBody {
        ResponseBody { [store, now] writer in
            var out = ByteBuffer(string: #"{"new":["#)
            var first = true
            var delivered = 0
            var after: Int64 = 0
            while true {
                let page = try await store.decisionsInForce(after: after, limit: Self.pageSize, now: now())
                let at = now()
                for decision in page where filter.admits(decision) {
                    Self.append(decision, to: &out, first: &first, now: at)
                    delivered += 1
                }
                try await writer.write(out)
                out.clear()
                guard page.count == Self.pageSize, let last = page.last else { break }
                after = last.number
            }
            out.writeString(#"],"deleted":["#)
            first = true
            let since = now().addingTimeInterval(-Self.endedWindow)
            var position = (expiresAt: since, number: Int64(0))
            while true {
                let page = try await store.decisionsEnded(since: since, after: position, limit: Self.pageSize, now: now())
                let at = now()
                for decision in page where filter.admits(decision) { Self.append(decision, to: &out, first: &first, now: at) }
                guard page.count == Self.pageSize, let last = page.last else { break }
                try await writer.write(out)
                out.clear()
                position = (last.expiresAt, last.number)
            }
            out.writeString("]}")
            try await writer.write(out)
            try await writer.finish(nil)
            completed(bouncer, address, cursor: head, delivered: delivered, first: true)
        }
    }

    /// A pull's whole answer was written: the consumer has every change through `cursor`.
    private func completed(_ bouncer: Config.Bouncer, _ address: String, cursor: Int64, delivered: Int, first: Bool) {
        consumers.completed(key: bouncer.name, address: address, cursor: cursor, delivered: delivered, at: now())
        metrics.count(.bouncerPulls, ["bouncer": bouncer.name, "pull": first ? "first" : "later"])
        if delivered > 0 { metrics.count(.bouncerDecisionsSent, ["bouncer": bouncer.name], delivered) }
    }

    private static func append(_ decisions: [BouncerDecision], to out: inout ByteBuffer, now: Date) {
        var first = true
        for decision in decisions { append(decision, to: &out, first: &first, now: now) }
    }

    private static func append(_ decision: BouncerDecision, to out: inout ByteBuffer, first: inout Bool, now: Date) {
        if !first { out.writeString(",") }
        first = false
        var w = JSONWriter(capacity: 192)
        decision.write(to: &w, now: now)
        out.writeBytes(w.bytes)
    }

    // MARK: Lookups

    /// `GET /v1/decisions`: the decisions in force that `ip`, `range` (with `contains`, default
    /// true: those containing it; false: those inside it) or `value` select, or all of them;
    /// `null` when none matches, as CrowdSec answers.
    func lookup(_ request: Request) async throws -> Response {
        let bouncer = try authenticate(request)
        let parameters = Self.parameters(request)
        let filter = BouncerFilter(bouncer: bouncer, parameters: parameters)
        if let type = parameters["type"], type.lowercased() != "ban" { return Self.json("null") }
        let contains = parameters["contains"].map { $0.lowercased() != "false" } ?? true
        let at = now()
        let found: [BouncerDecision]
        if let text = parameters["ip"] {
            let address: IPAddress
            do { address = try IPAddress(parsing: text) } catch { throw BouncerError(.badRequest, "ip: \(error.message)") }
            found =
                try await contains ? store.decisionsInForce(containing: address, now: at) : store.decisionsInForce(values: ["\(address)"], now: at)
        } else if let text = parameters["range"] {
            let network: IPNetwork
            do { network = try IPNetwork(parsing: text, allowBareAddress: true) } catch { throw BouncerError(.badRequest, "range: \(error.message)") }
            if contains {
                let candidates = (0...network.prefixLength).map {
                    IPNetwork(address: IPNetwork.mask(network.address, to: $0), prefixLength: $0).description
                }
                found = try await store.decisionsInForce(values: candidates, now: at)
            } else {
                return Response(status: .ok, headers: [.contentType: "application/json"], body: allInForce(filter) { network.contains($0.target) })
            }
        } else if let text = parameters["value"] {
            guard let network = try? IPNetwork(parsing: text, allowBareAddress: true) else { return Self.json("null") }
            found = try await store.decisionsInForce(values: [network.description], now: at)
        } else {
            return Response(status: .ok, headers: [.contentType: "application/json"], body: allInForce(filter) { _ in true })
        }
        let selected = found.filter(filter.admits)
        guard !selected.isEmpty else { return Self.json("null") }
        var out = ByteBuffer(string: "[")
        Self.append(selected, to: &out, now: at)
        out.writeString("]")
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: out))
    }

    /// Every decision in force that `filter` and `selects` admit, written page by page: an array, or `null`.
    private func allInForce(_ filter: BouncerFilter, selects: @escaping @Sendable (BouncerDecision) -> Bool) -> ResponseBody {
        ResponseBody { [store, now] writer in
            var out = ByteBuffer()
            var first = true
            var after: Int64 = 0
            while true {
                let page = try await store.decisionsInForce(after: after, limit: Self.pageSize, now: now())
                let at = now()
                for decision in page where filter.admits(decision) && selects(decision) {
                    if first { out.writeString("[") }
                    Self.append(decision, to: &out, first: &first, now: at)
                }
                if out.readableBytes > 0 { try await writer.write(out) }
                out.clear()
                guard page.count == Self.pageSize, let last = page.last else { break }
                after = last.number
            }
            out.writeString(first ? "null" : "]")
            try await writer.write(out)
            try await writer.finish(nil)
        }
    }

    // MARK: Usage metrics

    /// `POST /v1/usage-metrics`: what a bouncer reports every 15 minutes (current bouncers only; a
    /// body over 5 KiB arrives gzip-compressed). Kept per consumer, its items summed by name and
    /// unit, for `GET /v1/bouncers`; 201 as CrowdSec answers.
    func usageMetrics(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let bouncer = try authenticate(request)
        var body = try await bodies.receive(request, context, upTo: 1 << 20)
        if let encoding = request.headers[.contentEncoding]?.lowercased(), encoding != "identity" {
            guard encoding == "gzip" else {
                throw BouncerError(.unsupportedMediaType, "Content-Encoding \(encoding) is not supported; send gzip or none")
            }
            do {
                body = try body.decompress(with: .gzip, maxSize: 8 << 20)
            } catch {
                throw BouncerError(.badRequest, "the body is not gzip, or is larger than 8 MiB once decompressed")
            }
        }
        let json: JSONValue
        do { json = try JSONValue.parse(body.readableBytesView, maxDepth: 16) } catch {
            throw BouncerError(.badRequest, "invalid JSON: \(error.message)")
        }
        guard case .array(let components)? = json["remediation_components"] else {
            throw BouncerError(.unprocessableContent, "remediation_components: expected an array of the bouncer's metrics")
        }
        var totals: [String: Double] = [:]
        for component in components {
            guard case .array(let windows)? = component["metrics"] else { continue }
            for window in windows {
                guard case .array(let items)? = window["items"] else { continue }
                for item in items {
                    guard case .string(let name)? = item["name"], case .number(let value)? = item["value"] else { continue }
                    let unit = if case .string(let unit)? = item["unit"] { "_\(unit)" } else { "" }
                    totals[name + unit, default: 0] += value
                }
            }
        }
        consumers.reported(
            key: bouncer.name, address: context.remoteAddress?.ipAddress ?? "unknown", userAgent: request.headers[.userAgent] ?? "", metrics: totals,
            at: now())
        return Response(status: .created)
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// An error answer as CrowdSec's API gives it: `{"message": ...}`.
struct BouncerError: Error {
    let status: HTTPResponse.Status
    let message: String

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// Turns what the bouncer API's routes throw into CrowdSec's error answers.
struct BouncerErrorMiddleware: RouterMiddleware {
    typealias Context = RampartRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        func answer(_ status: HTTPResponse.Status, _ message: String) -> Response {
            var w = JSONWriter()
            w.beginObject()
            w.field("message", message)
            w.endObject()
            return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
        }
        do {
            return try await next(request, context)
        } catch let error as BouncerError {
            return answer(error.status, error.message)
        } catch let problem as Problem {
            return answer(problem.status, problem.detail)
        } catch let error as HTTPError {
            return answer(
                error.status, error.status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
        } catch {
            context.logger.error("bouncer_api.internal_error", metadata: ["rampart.error": "\(error)", "rampart.path": "\(request.uri.path)"])
            return answer(.internalServerError, "the request failed; Rampart's log says why")
        }
    }
}
