import Foundation
import RampartTesting
import Testing

/// schemathesis (PyPI) against a live daemon, over every operation docs/openapi.yaml describes:
/// no server error (5xx), and no answer that contradicts the description (status, content type,
/// schema, headers). Bounded here (30 examples an operation, a fixed seed);
/// `SCHEMATHESIS_EXAMPLES` asks for more.
@Suite struct SchemathesisTests {
    static let schemathesis =
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.venv/bin/schemathesis").standardizedFileURL.path
    static let document = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/openapi.yaml")
        .standardizedFileURL.path
    static let unavailable: String? =
        FileManager.default.isExecutableFile(atPath: schemathesis)
        ? nil : "schemathesis is not in .venv (deploy/setup-dev.sh installs it from PyPI; it could not here)"

    @Test(.enabled(if: unavailable == nil, "\(unavailable ?? "")"))
    func findsNoServerErrorAndNoAnswerThatContradictsTheDescription() async throws {
        try await onOwnThread { try Self.body() }
    }

    static func body() throws {
        let sandbox = try Sandbox(
            extra: """
                safety: {never_block: [203.0.113.0/24]}
                taxii:
                  collections:
                    - {id: 365fed99-08fa-4dcd-a1b3-fb247eb41d01, title: shared, read: [ops], write: [ops]}
                """)
        let daemon = try DaemonProcess(sandbox)
        defer { _ = daemon.stop() }
        let examples = ProcessInfo.processInfo.environment["SCHEMATHESIS_EXAMPLES"] ?? "30"
        let out = try run(
            schemathesis,
            [
                "run", document, "--url", daemon.url, "-H", "Authorization: Bearer \(Sandbox.adminToken)", "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
                "--max-examples", examples, "--seed", "7", "--no-color",
            ], environment: ["NO_COLOR": "1"], directory: sandbox.directory)  // it keeps a .schemathesis folder where it runs
        #expect(out.status == 0, "\(out.stdout.suffix(6000))\(out.stderr.suffix(2000))")
        let summary = out.stdout.firstMatch(of: /(\d+) generated, (\d+) passed/)
        #expect(summary != nil && summary?.1 == summary?.2, "\(out.stdout.suffix(3000))")
        print("schemathesis: \(summary.map { "\($0.1) test cases generated, \($0.2) passed" } ?? "no summary") over the described operations")
        #expect(!daemon.log.contains("http.internal_error"), "\(daemon.log.suffix(3000))")
    }
}
