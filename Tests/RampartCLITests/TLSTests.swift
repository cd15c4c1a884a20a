import Foundation
import RampartTesting
import Testing

/// The listener over TLS, with and without client certificates (certificates made by openssl).
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"), "/usr/bin/openssl is missing"))
struct TLSTests {
    /// A CA, a server certificate for 127.0.0.1 and a client certificate, in `directory`.
    func makeCertificates(in directory: URL) throws {
        let steps: [[String]] = [
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                "-subj", "/CN=rampart-test-ca",
            ],
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj",
                "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            ],
            [
                "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2",
                "-copy_extensions", "copy",
            ],
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "client.key", "-out", "client.csr", "-subj",
                "/CN=peer",
            ],
            ["x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "client.pem", "-days", "2"],
        ]
        for step in steps {
            let out = try run("/usr/bin/openssl", step, directory: directory)
            guard out.status == 0 else { throw DaemonProcess.DaemonError(message: "openssl \(step.joined(separator: " ")): \(out.stderr)") }
        }
    }

    func status(_ arguments: [String]) throws -> String {
        try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"] + arguments).stdout
    }

    @Test func servesHTTPSAndRequiresClientCertificatesWhenConfigured() throws {
        let sandbox = try Sandbox(extra: "tls: {cert: server.pem, key: server.key, client_ca: ca.pem}")
        try makeCertificates(in: sandbox.directory)
        let daemon = try DaemonProcess(sandbox)
        defer { _ = daemon.stop() }
        let url = "https://127.0.0.1:\(daemon.port)/healthz"
        let files = sandbox.directory.path
        #expect(try status(["--cacert", "\(files)/ca.pem", "--cert", "\(files)/client.pem", "--key", "\(files)/client.key", url]) == "200")
        #expect(try status(["--cacert", "\(files)/ca.pem", url]) == "000", "no client certificate")
        #expect(try status(["http://127.0.0.1:\(daemon.port)/healthz"]) != "200", "plain HTTP")
        // The client certificate authenticates an OpenC2 producer, with no token.
        let openc2 = [
            "--cacert", "\(files)/ca.pem", "--cert", "\(files)/client.pem", "--key", "\(files)/client.key", "-X", "POST", "-H",
            "Content-Type: application/openc2-cmd+json;version=1.0", "-d", #"{"action":"query","target":{"features":[]}}"#,
            "https://127.0.0.1:\(daemon.port)/.well-known/openc2",
        ]
        #expect(try status(openc2) == "200")
    }

    /// The CrowdSec bouncer API's listener takes its own TLS settings, as the main one does.
    @Test func theBouncerAPIServesHTTPSOnItsOwnListener() throws {
        let port = try freePort()
        let key = try BouncerKey(name: "tls-bouncer")
        let sandbox = try Sandbox(
            extra: "crowdsec: {listen: 127.0.0.1:\(port), tls: {cert: server.pem, key: server.key}}\nbouncers:\n  \(key.line)")
        try makeCertificates(in: sandbox.directory)
        let daemon = try DaemonProcess(sandbox)
        defer { _ = daemon.stop() }
        let url = "https://127.0.0.1:\(port)/v1/decisions"
        #expect(try status(["--cacert", "\(sandbox.directory.path)/ca.pem", "-I", "-H", "X-Api-Key: \(key.key)", url]) == "200")
        #expect(try status(["http://127.0.0.1:\(port)/v1/decisions"]) != "200", "plain HTTP")
        #expect(try status(["http://127.0.0.1:\(daemon.port)/healthz"]) == "200", "the main listener keeps its own settings")
    }

    @Test func serverOnlyTLSAcceptsAnyClient() throws {
        let sandbox = try Sandbox(extra: "tls: {cert: server.pem, key: server.key}")
        try makeCertificates(in: sandbox.directory)
        let daemon = try DaemonProcess(sandbox)
        defer { _ = daemon.stop() }
        #expect(try status(["--cacert", "\(sandbox.directory.path)/ca.pem", "https://127.0.0.1:\(daemon.port)/healthz"]) == "200")
    }

    @Test func unreadableFilesAreConfigurationErrors() throws {
        let sandbox = try Sandbox(extra: "tls: {cert: missing.pem}")
        let check = try rampart("check", "--config", sandbox.configPath)
        #expect(check.status == 1)
        #expect(check.stdout.contains("tls.cert: cannot read") || check.stderr.contains("tls.cert: cannot read"), "\(check.stdout)\(check.stderr)")
        #expect((check.stdout + check.stderr).contains("missing the required key 'key'"))
    }
}
