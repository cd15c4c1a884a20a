import Foundation
import RampartTesting
import Testing

/// The TAXII 2.1 server and STIX export against the real clients: taxii2-client 2.3.0 (with raw
/// requests for what it cannot reach), medallion 3.0.0 as the reference the same checks pass on,
/// and stix2-validator --strict with the stix2 library on every export.
@Suite struct TAXIIClientTests {
    static let unavailable: String? =
        Venv.python(importing: "taxii2client, stix2, stix2validator, medallion, requests") == nil
        ? "taxii2-client, stix2, stix2-validator or medallion is not in .venv (deploy/setup-dev.sh installs them from PyPI; it could not here)"
        : nil
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static let collection = "365fed99-08fa-4dcd-a1b3-fb247eb41d01"
    static let taxiiYAML = """
        taxii:
          title: Rampart test
          collections:
            - {id: \(collection), title: shared, read: [ops], write: [ops], share: {max_tlp: amber}}
            - {id: 00000000-0000-4000-8000-00000000000c, title: clear-only, read: [admin], share: {max_tlp: clear, kinds: [domain]}}
        """

    static func python(_ arguments: [String]) throws -> Output {
        // Through env: Process resolves symbolic links, and the venv's python3 is one.
        try run("/usr/bin/env", [Venv.python] + arguments)
    }

    @Test(.enabled(if: unavailable == nil, "\(unavailable ?? "")"))
    func taxii2ClientPassesOnRampart() async throws {
        try await onOwnThread {
            let sandbox = try Sandbox(extra: Self.taxiiYAML)
            let daemon = try DaemonProcess(sandbox)
            defer { _ = daemon.stop() }
            let out = try Self.python([Self.fixtures + "/taxii/taxii_acc.py", "\(daemon.url)/taxii2/", "ops", Sandbox.adminToken])
            #expect(out.status == 0, "\(out.stdout)\(out.stderr)")
            #expect(out.stdout.contains("TAXII acceptance: 20 passed, 0 failed"), "\(out.stdout)")
        }
    }

    /// The same checks pass on the reference server: they test TAXII, not Rampart's reading of it.
    @Test(.enabled(if: unavailable == nil, "\(unavailable ?? "")"))
    func theSameChecksPassOnMedallion() async throws {
        try await onOwnThread {
            let medallion = try Medallion()
            defer { medallion.stop() }
            let out = try Self.python([Self.fixtures + "/taxii/taxii_acc.py", medallion.discovery, "admin", "Password0", "--medallion"])
            #expect(out.status == 0, "\(out.stdout)\(out.stderr)")
        }
    }

    /// What Rampart exports (`rampart export stix`, and a collection's objects) is valid STIX 2.1
    /// under --strict and parses back with allow_custom=False; a collection's policy holds.
    @Test(.enabled(if: unavailable == nil, "\(unavailable ?? "")"))
    func exportsAreValidSTIX() async throws {
        try await onOwnThread {
            let sandbox = try Sandbox(extra: Self.taxiiYAML)
            try "name: block-ips\nmatch: {kind: [ipv4, cidr]}\nactions: [{block: {duration: 1h}}]\n".write(
                toFile: sandbox.directory.appendingPathComponent("playbooks/block.yaml").path, atomically: true, encoding: .utf8)
            let daemon = try DaemonProcess(sandbox)
            defer { _ = daemon.stop() }
            func post(_ type: String, _ body: String, query: String = "") throws {
                let out = try run(
                    "/usr/bin/curl",
                    [
                        "-sf", "-X", "POST", "\(daemon.url)/v1/indicators\(query)", "-H", "Authorization: Bearer \(Sandbox.adminToken)", "-H",
                        "Content-Type: \(type)", "--data-binary", body,
                    ])
                #expect(out.status == 0, "\(out.stdout)\(out.stderr)")
            }
            try post("application/stix+json", "@" + Self.fixtures + "/../../RampartServerTests/Fixtures/stix/apt1.json")
            try post("text/plain", "77.90.185.20\nevil.example\nd41d8cd98f00b204e9800998ecf8427e\n", query: "?tlp=green&tags=scanner")
            try post("text/plain", "secret.example\n", query: "?tlp=red")
            try post("text/plain", "clear.example\n", query: "?tlp=clear")
            let export = sandbox.directory.appendingPathComponent("export.json").path
            let exported = try run(rampartBinary, ["export", "stix", "--config", sandbox.configPath, "--out", export])
            #expect(exported.status == 0, "\(exported.stderr)")
            let bundle = try String(contentsOfFile: export, encoding: .utf8)
            #expect(!bundle.contains("secret.example"), "TAXII:RED never leaves")
            #expect(bundle.contains("Rampart block of 77.90.185.20"), "decisions in force are exported")
            let envelope = sandbox.directory.appendingPathComponent("envelope.json").path
            let fetched = try run(
                "/usr/bin/curl",
                [
                    "-sf", "-u", "ops:\(Sandbox.adminToken)", "-H", "Accept: application/taxii+json;version=2.1", "-o", envelope,
                    "\(daemon.url)/taxii2/api/collections/\(Self.collection)/objects/?limit=1000",
                ])
            #expect(fetched.status == 0)
            let checked = try Self.python([Self.fixtures + "/taxii/stix_check.py", export, envelope])
            #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")
            // The clear-only collection serves only the TLP:CLEAR domain.
            let clear = try run(
                "/usr/bin/curl",
                [
                    "-sf", "-u", "ops:\(Sandbox.adminToken)", "\(daemon.url)/taxii2/api/collections/00000000-0000-4000-8000-00000000000c/objects/",
                ])
            #expect(
                clear.stdout.contains("clear.example") && !clear.stdout.contains("evil.example") && !clear.stdout.contains("77.90.185.20"),
                "\(clear.stdout)")
        }
    }
}

/// medallion 3.0.0, the reference TAXII 2.1 server, on a free loopback port with one readable and
/// writable collection (`collection`), user `admin`, password `Password0`.
final class Medallion {
    static let collection = "365fed99-08fa-fdcd-a1b3-fb247eb41d01"
    let process = Process()
    let port: Int
    var discovery: String { "http://127.0.0.1:\(port)/taxii2/" }
    var apiRoot: String { "http://127.0.0.1:\(port)/api1/" }
    var collectionURL: String { apiRoot + "collections/\(Self.collection)/" }

    init() throws {
        let directory = Scratch.directory("medallion")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try freePort()
        let data = """
            {"/discovery": {"title": "ref", "api_roots": ["http://127.0.0.1:\(port)/api1/"], "default": "http://127.0.0.1:\(port)/api1/"},
             "api1": {"information": {"title": "API1", "versions": ["application/taxii+json;version=2.1"], "max_content_length": 9765625},
              "status": [], "collections": [{"id": "\(Self.collection)", "title": "indicators", "can_read": true,
              "can_write": true, "media_types": ["application/stix+json;version=2.1"], "objects": [], "manifest": []}]}}
            """
        try data.write(to: directory.appendingPathComponent("data.json"), atomically: true, encoding: .utf8)
        let config = """
            {"backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend", "filename": "\(directory.path)/data.json"},
             "users": {"admin": "Password0"}, "taxii": {"max_page_size": 100}}
            """
        try config.write(to: directory.appendingPathComponent("medallion.json"), atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            Venv.python, "-m", "medallion.scripts.run", "--host", "127.0.0.1", "--port", String(port), directory.path + "/medallion.json",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let discovery = self.discovery
        let ready = eventually(20) {
            (try? run(
                "/usr/bin/curl", ["-sf", "-o", "/dev/null", "-u", "admin:Password0", "-H", "Accept: application/taxii+json;version=2.1", discovery]))?
                .status == 0
        }
        if !ready {
            stop()
            throw DaemonProcess.DaemonError(message: "medallion did not start on port \(port)")
        }
    }

    /// SIGKILL: started from the test runner, medallion (Flask) does not stop on SIGTERM.
    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
