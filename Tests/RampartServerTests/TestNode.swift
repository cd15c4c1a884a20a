import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import RampartCore
import RampartFirewall
import RampartServer
import RampartTesting
import Synchronization

/// A daemon built from a real configuration file in a temporary state directory, served on a
/// free loopback port.
struct TestNode {
    static let tokens = TestKeys.tokens

    let config: Config
    let firewall: DryRunFirewall
    /// A clock the test moves by hand, for the wall time and the background services' waits
    /// (nil: the real ones).
    let clock: ManualClock?

    init(nodeID: String = "test-1", extraYAML: String = "", playbooks: [String: String] = [:], clock: ManualClock? = nil) throws {
        let dir = Scratch.directory("rampart-test")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("playbooks"), withIntermediateDirectories: true)
        for (name, text) in playbooks {
            try text.write(to: dir.appendingPathComponent("playbooks/\(name).yaml"), atomically: true, encoding: .utf8)
        }
        let yaml = """
            node: {id: \(nodeID)}
            listen: 127.0.0.1:0
            state_dir: state
            playbooks: playbooks
            safety:
              never_block: [203.0.113.0/24]
            \(TestKeys.apiKeysYAML())
            \(extraYAML)
            """
        let path = dir.appendingPathComponent("rampart.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        config = try Config.load(path: path)
        firewall = DryRunFirewall(logger: Logger(label: "test"))
        self.clock = clock
    }

    /// Runs `body` against the live daemon, then shuts it down.
    func run(_ body: @Sendable (TestClientProtocol, Daemon.Parts) async throws -> Void) async throws {
        var logger = Logger(label: "rampart-test")
        logger.logLevel = .warning
        let clock = self.clock
        let (app, parts) = try Daemon.build(
            config: config, logger: logger, firewall: firewall, clock: clock ?? ContinuousClock(), now: { clock?.wallTime ?? Date() })
        try await app.test(.live) { client in try await body(client, parts) }
    }

    /// `run`, returning the daemon's parts once it has shut down.
    func runReturningParts(_ body: @Sendable (TestClientProtocol, Daemon.Parts) async throws -> Void) async throws -> Daemon.Parts {
        let parts = Mutex<Daemon.Parts?>(nil)
        try await run { client, running in
            parts.withLock { $0 = running }
            try await body(client, running)
        }
        return parts.withLock { $0! }
    }
}

/// A decoded answer: status, headers and JSON body.
struct Answer {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let json: [String: Any]

    subscript(key: String) -> Any? { json[key] }
    var problemCode: String? { json["code"] as? String }
}

extension TestClientProtocol {
    /// Sends a request with the named key's token (`ingest`, `read`, `admin`, or nil for none);
    /// `bytes`: a body that need not be UTF-8.
    func call(
        _ method: HTTPRequest.Method, _ uri: String, as role: String? = "admin", contentType: String? = nil, body: String? = nil,
        bytes: [UInt8]? = nil
    ) async throws -> Answer {
        var headers: HTTPFields = [:]
        if let role { headers[.authorization] = "Bearer \(TestNode.tokens[role] ?? role)" }
        if let contentType { headers[.contentType] = contentType }
        let buffer = body.map { ByteBuffer(string: $0) } ?? bytes.map { ByteBuffer(bytes: $0) }
        return try await execute(uri: uri, method: method, headers: headers, body: buffer) { response in
            let object =
                response.body.readableBytes == 0
                ? [:] : (try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any] ?? [:])
            return Answer(status: response.status, headers: response.headers, json: object)
        }
    }
}

extension TestClientProtocol {
    /// The audit log's events, oldest first: each entry, then the events its `caused` records (an
    /// item's entry), each as an entry of its own with the item's subject and the event's fields
    /// as its detail.
    func auditEvents(_ query: String = "limit=1000") async throws -> [[String: Any]] {
        let audit = try await call(.get, "/v1/audit?\(query)", as: "read")
        return (audit["entries"] as? [[String: Any]] ?? []).flatMap { entry -> [[String: Any]] in
            let caused = (entry["caused"] as? [[String: Any]] ?? []).map { event -> [String: Any] in
                ["event": event["event"] ?? "", "subject": entry["subject"] ?? "", "detail": event.filter { $0.key != "event" }]
            }
            return [entry] + caused
        }
    }
}
