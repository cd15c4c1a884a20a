import Foundation
import RampartTesting
import Testing

/// OpenC2 producers against a running daemon: otupy (PyPI) for query, deny and delete, and curl
/// for the bare HTTPS 1.0 form and each error status.
@Suite struct OpenC2ProducerTests {
    static let otupyUnavailable: String? =
        Venv.python(importing: "otupy, otupy.profiles.slpf, otupy.transfers.http") == nil
        ? "otupy is not in .venv (deploy/setup-dev.sh installs it from PyPI; it could not here)" : nil
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    @Test(.enabled(if: otupyUnavailable == nil, "\(otupyUnavailable ?? "")"))
    func otupyQueriesDeniesAndDeletes() async throws {
        try await onOwnThread { try Self.otupyBody() }
    }

    static func otupyBody() throws {
        let sandbox = try Sandbox(node: "otupy-test")
        let daemon = try DaemonProcess(sandbox)
        defer { _ = daemon.stop() }
        // Through env: Process resolves symbolic links, and the venv's python3 is one.
        let out = try run(
            "/usr/bin/env", [Venv.python, fixtures + "/otupy_produce.py", "127.0.0.1", String(daemon.port), Sandbox.adminToken, "77.90.185.60"])
        #expect(out.status == 0, "\(out.stdout)\(out.stderr)")
        let number = try #require(out.stdout.firstMatch(of: /rule_number (\d+)/).map { String($0.1) })
        let api = ["--config", sandbox.configPath, "--url", daemon.url, "--token", Sandbox.adminToken]
        let listed = try run(rampartBinary, ["decisions", "list", "--json", "--value", "77.90.185.60"] + api)
        #expect(listed.stdout.contains("\"active\":false"), "the delete revoked rule \(number): \(listed.stdout)")
    }

    @Test func curlSendsTheBareFormAndEachError() async throws {
        try await onOwnThread { try Self.curlBody() }
    }

    static func curlBody() throws {
        let sandbox = try Sandbox()
        let daemon = try DaemonProcess(sandbox)
        defer { _ = daemon.stop() }
        func post(
            _ body: String, type: String = "application/openc2-cmd+json;version=1.0", token: String? = Sandbox.adminToken
        ) throws -> (
            Int, String, String
        ) {
            var arguments = ["-s", "-X", "POST", "\(daemon.url)/.well-known/openc2", "-H", "Content-Type: \(type)", "-H", "X-Request-ID: req-7"]
            if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
            arguments += ["-d", body, "-w", "\n%{http_code} %{content_type}"]
            let out = try run("/usr/bin/curl", arguments)
            let lines = out.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            let status = lines.last?.split(separator: " ").first.flatMap { Int($0) } ?? 0
            return (status, lines.dropLast().joined(separator: "\n"), String(lines.last?.split(separator: " ").dropFirst().joined() ?? ""))
        }
        let (status, body, type) = try post(#"{"action":"query","target":{"features":["versions"]}}"#)
        #expect(status == 200)
        #expect(type == "application/openc2-rsp+json;version=1.0")
        #expect(body == #"{"status":200,"results":{"versions":["1.0"]}}"#)
        let cases: [(String, Int, String?)] = [
            (#"{"action":"query","target":{"features":[]},"args":{"duration":5}}"#, 400, nil),
            (#"{"action":"deny","target":{"ipv4_net":"127.0.0.1/64"}}"#, 400, nil),
            (#"{"action":"deny","target":{"ipv4_connection":{"src_addr":"77.90.185.61"}}}"#, 501, "Target type not supported"),
            (#"{"action":"deny","target":{"ipv4_net":"77.90.185.62"},"args":{"slpf":{"drop_process":"false_ack"}}}"#, 501, "Option not supported"),
            (#"{"action":"deny","target":{"ipv4_net":"77.90.185.63"},"args":{"slpf":{"insert_rule":10}}}"#, 501, "Option not supported"),
            (#"{"action":"update","target":{"file":{"name":"policy.txt"}}}"#, 501, "Command not supported"),
            (#"{"action":"delete","target":{"slpf:rule_number":999999}}"#, 500, "firewall rule not removed or updated"),
            (#"{"action":"deny","target":{"ipv4_net":"127.0.0.1"}}"#, 403, nil),
        ]
        for (command, expected, text) in cases {
            let (status, body, _) = try post(command)
            #expect(status == expected, "\(command): \(body)")
            if let text { #expect(body.contains("\"status_text\":\"\(text)\""), "\(command): \(body)") }
        }
        #expect(try post(#"{"action":"query","target":{"features":[]}}"#, token: nil).0 == 401)
        #expect(try post(#"{"action":"query","target":{"features":[]}}"#, type: "text/plain").0 == 400)
        let none = try post(#"{"action":"deny","target":{"ipv4_net":"77.90.185.64"},"args":{"response_requested":"none"}}"#)
        #expect(none.0 == 204 && none.1.isEmpty)
    }
}
