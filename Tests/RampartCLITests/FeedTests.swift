import Foundation
import RampartTesting
import Testing

/// Feeds pulled by a running daemon from real publishers on loopback: a list server with ETags
/// (the ipsum feed as text, a CSV), and medallion as a TAXII 2.1 collection that taxii2-client
/// publishes to.
@Suite struct FeedTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/feeds").path
    static let blockIPs = "name: block-ips\nmatch: {kind: [ipv4, cidr]}\nactions: [{block: {duration: 1h}}]\n"

    static func daemon(feeds: String) throws -> (Sandbox, DaemonProcess) {
        let sandbox = try Sandbox(extra: "feeds:\n" + feeds)
        try blockIPs.write(toFile: sandbox.directory.appendingPathComponent("playbooks/block.yaml").path, atomically: true, encoding: .utf8)
        return (sandbox, try DaemonProcess(sandbox))
    }

    static func api(_ daemon: DaemonProcess, _ path: String, method: String = "GET") throws -> [String: Any] {
        let out = try run("/usr/bin/curl", ["-s", "-X", method, "-H", "Authorization: Bearer \(Sandbox.adminToken)", daemon.url + path])
        return (try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    static func feed(_ daemon: DaemonProcess, _ name: String) throws -> [String: Any] {
        ((try api(daemon, "/v1/feeds")["feeds"] as? [[String: Any]]) ?? []).first { $0["name"] as? String == name } ?? [:]
    }

    /// The files of `site` served with ETags (feed_server.py) on a free port, once `probe` answers.
    static func serve(_ site: URL, probe: String) throws -> (process: Process, port: Int) {
        let port = try freePort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = [fixtures + "/feed_server.py", site.path, String(port)]
        try server.run()
        #expect(eventually(10) { (try? run("/usr/bin/curl", ["-sf", "-o", "/dev/null", "http://127.0.0.1:\(port)/\(probe)"]))?.status == 0 })
        return (server, port)
    }

    static func stop(_ server: Process) {
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
    }

    static func decision(_ daemon: DaemonProcess, _ value: String) throws -> String? {
        ((try api(daemon, "/v1/decisions?value=\(value)")["decisions"] as? [[String: Any]]) ?? []).first?["state"] as? String
    }

    @Test func listFeedsWithConditionalGETAndSync() async throws {
        try await onOwnThread {
            let site = Scratch.directory("feed-site")
            try FileManager.default.createDirectory(at: site, withIntermediateDirectories: true)
            let ipsum = try String(contentsOfFile: Self.fixtures + "/ipsum-head.txt", encoding: .utf8)
            try ipsum.write(to: site.appendingPathComponent("ipsum.txt"), atomically: true, encoding: .utf8)
            try "# id,address,port\n1,77.90.185.40,443\n2,\"77.90.185.41\",80\n3,not-an-address,22\n".write(
                to: site.appendingPathComponent("list.csv"), atomically: true, encoding: .utf8)
            try """
            Dec  1 10:00:01 edge sshd[811]: Failed password for root from 77.90.185.60 port 52113 ssh2
            Dec  1 10:00:02 edge sshd[811]: Connection closed by authenticating user root 77.90.185.61 port 52113
            Dec  1 10:00:03 edge sshd[812]: Failed password for invalid user admin from 77.90.185.62 port 40022 ssh2

            """.write(to: site.appendingPathComponent("sshd.txt"), atomically: true, encoding: .utf8)
            let server = try Self.serve(site, probe: "list.csv")
            defer { Self.stop(server.process) }
            let port = server.port
            let (sandbox, daemon) = try Self.daemon(
                feeds: """
                      - {name: ipsum, kind: text, url: "http://127.0.0.1:\(port)/ipsum.txt", interval: 1h, sync: true, exclude: '^77\\.239\\.', defaults: {source: ipsum, confidence: 60, tlp: clear, tags: [scanner], ttl: 24h}}
                      - {name: list, kind: csv, url: "http://127.0.0.1:\(port)/list.csv", column: 2}
                      - {name: log, kind: text, url: "http://127.0.0.1:\(port)/sshd.txt", regex: 'Failed password for .* from (\\S+) port'}
                      - {name: gone, kind: text, url: "http://127.0.0.1:\(port)/missing.txt"}
                    """)
            defer { _ = daemon.stop() }
            // Pulled at start; the failing feed does not stop the others.
            #expect(
                eventually(15) {
                    (try? Self.feed(daemon, "ipsum"))?["last_success"] != nil && (try? Self.feed(daemon, "list"))?["last_success"] != nil
                })
            #expect(eventually(15) { ((try? Self.feed(daemon, "gone"))?["failures"] as? Int ?? 0) >= 1 })
            #expect((try Self.feed(daemon, "gone")["last_error"] as? String)?.contains("404") == true)
            let listed = try Self.feed(daemon, "ipsum")
            #expect(listed["values"] as? Int == 31 && listed["items"] as? Int == 31, "\(listed)")
            #expect(try Self.decision(daemon, "77.239.124.102") == nil, "excluded")
            #expect(try Self.decision(daemon, "77.90.185.20") == "active")
            #expect(try Self.decision(daemon, "77.90.185.41") == "active", "a quoted CSV cell")
            // regex: the group's value of the lines it matches, and nothing of the others.
            #expect(eventually(15) { (try? Self.feed(daemon, "log"))?["values"] as? Int == 2 }, "\((try? Self.feed(daemon, "log")) ?? [:])")
            #expect(try Self.decision(daemon, "77.90.185.60") == "active" && Self.decision(daemon, "77.90.185.62") == "active")
            #expect(try Self.decision(daemon, "77.90.185.61") == nil)
            // The audit names the CSV's bad value.
            let audit = try run("/usr/bin/curl", ["-s", "-H", "Authorization: Bearer \(Sandbox.adminToken)", daemon.url + "/v1/audit?limit=1000"])
            #expect(audit.stdout.contains("not-an-address"))

            // Unchanged: a 304, nothing stored.
            let again = try run(
                rampartBinary, ["feeds", "pull", "ipsum", "--config", sandbox.configPath, "--url", daemon.url, "--token", Sandbox.adminToken])
            #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
            let requests = try String(contentsOf: site.appendingPathComponent("requests.log"), encoding: .utf8)
            #expect(requests.contains("/ipsum.txt \"") && requests.contains(" 304"), "\(requests)")
            #expect(try Self.feed(daemon, "ipsum")["items"] as? Int == 0)

            // sync: a value gone from the list is revoked; the others stay.
            try ipsum.split(separator: "\n").filter { !$0.hasPrefix("77.90.185.20") }.joined(separator: "\n").write(
                to: site.appendingPathComponent("ipsum.txt"), atomically: true, encoding: .utf8)
            _ = try Self.api(daemon, "/v1/feeds/ipsum/pull", method: "POST")
            #expect(try Self.decision(daemon, "77.90.185.20") == "revoked")
            #expect(try Self.decision(daemon, "2.57.122.53") == "active")
            #expect(try Self.feed(daemon, "ipsum")["values"] as? Int == 30)
            let metrics = try run("/usr/bin/curl", ["-s", daemon.url + "/metrics"]).stdout
            #expect(metrics.contains(#"rampart_feed_pulls_total{feed="ipsum",outcome="unchanged"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"rampart_feed_pulls_total{feed="gone",outcome="failed"}"#))

            // A reload removes a feed and adds one, which is pulled at once.
            let config = try String(contentsOfFile: sandbox.configPath, encoding: .utf8)
            try config.replacingOccurrences(
                of: "name: gone, kind: text, url: \"http://127.0.0.1:\(port)/missing.txt\"",
                with: "name: again, kind: csv, url: \"http://127.0.0.1:\(port)/list.csv\", column: 2"
            )
            .write(toFile: sandbox.configPath, atomically: true, encoding: .utf8)
            let reloaded = try run(rampartBinary, ["reload", "--config", sandbox.configPath, "--url", daemon.url, "--token", Sandbox.adminToken])
            #expect(reloaded.status == 0, "\(reloaded.stdout)\(reloaded.stderr)")
            #expect(eventually(15) { (try? Self.feed(daemon, "again"))?["last_success"] != nil })
            let names = ((try Self.api(daemon, "/v1/feeds")["feeds"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }
            #expect(names == ["ipsum", "list", "log", "again"], "\(names)")
        }
    }

    @Test(.enabled(if: TAXIIClientTests.unavailable == nil, "\(TAXIIClientTests.unavailable ?? "")"))
    func taxiiFeedFromMedallion() async throws {
        try await onOwnThread {
            let medallion = try Medallion()
            defer { medallion.stop() }
            let state = Scratch.directory("taxii-publish").path + ".json"
            func publish(_ action: String, _ addresses: String...) throws {
                let out = try run(
                    "/usr/bin/env",
                    [Venv.python, Self.fixtures + "/taxii_publish.py", medallion.collectionURL, "admin", "Password0", state, action] + addresses)
                #expect(out.status == 0, "\(out.stdout)\(out.stderr)")
            }
            try publish("add", "77.90.185.50", "77.90.185.51")
            let password = Scratch.directory("medallion-password").path
            try "Password0\n".write(toFile: password, atomically: true, encoding: .utf8)
            let (sandbox, daemon) = try Self.daemon(
                feeds: """
                      - {name: partner, kind: taxii, url: "\(medallion.apiRoot)", collection: \(Medallion.collection), auth: {basic: {user: admin, password_file: \(password)}}}
                    """)
            defer { _ = daemon.stop() }
            #expect(eventually(15) { (try? Self.feed(daemon, "partner"))?["last_success"] != nil })
            #expect(try Self.decision(daemon, "77.90.185.50") == "active")
            #expect(try Self.decision(daemon, "77.90.185.51") == "active")
            let pull = ["feeds", "pull", "partner", "--config", sandbox.configPath, "--url", daemon.url, "--token", Sandbox.adminToken]
            // A later pull reads only what was added after the last (added_after).
            try publish("add", "77.90.185.52")
            #expect(try run(rampartBinary, pull).status == 0)
            #expect(try Self.feed(daemon, "partner")["items"] as? Int == 1)
            #expect(try Self.decision(daemon, "77.90.185.52") == "active")
            // A revoked newer version withdraws the block.
            try publish("revoke", "77.90.185.50")
            #expect(try run(rampartBinary, pull).status == 0)
            #expect(try Self.decision(daemon, "77.90.185.50") == "revoked")
            #expect(try Self.decision(daemon, "77.90.185.51") == "active")
            // Paging across pulls: more objects than one page of medallion's (100).
            let many = (1...150).map { "77.91.\($0 / 200).\($0 % 200 + 1)" }
            let out = try run(
                "/usr/bin/env",
                [Venv.python, Self.fixtures + "/taxii_publish.py", medallion.collectionURL, "admin", "Password0", state, "add"] + many)
            #expect(out.status == 0, "\(out.stdout)\(out.stderr)")
            #expect(try run(rampartBinary, pull).status == 0)
            let partner = try Self.feed(daemon, "partner")
            #expect(partner["items"] as? Int == 150, "\(partner)")
        }
    }

    /// A MISP JSON feed directory in the format of the MISP core format RFC (manifest.json, one
    /// file an event): to_ids attributes (an object's too) become blocks, others not; tlp tags
    /// mark them; an event with a newer timestamp is read again, and a deleted attribute revoked.
    @Test func mispFeed() async throws {
        try await onOwnThread {
            let site = Scratch.directory("misp-site")
            try FileManager.default.createDirectory(at: site, withIntermediateDirectories: true)
            let event = "5a8e2a0c-0f4e-4b8e-9d4a-1c2b3c4d5e6f"
            func publish(timestamp: Int, deleted: Bool) throws {
                let manifest = """
                    {"\(event)": {"info": "Scanners", "Orgc": {"id": "1", "name": "CIRCL", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"},
                     "analysis": "2", "Tag": [{"name": "tlp:green", "colour": "#33FF00"}], "timestamp": "\(timestamp)", "date": "2026-11-30", "threat_level_id": "2"}}
                    """
                func attribute(_ id: Int, _ type: String, _ value: String, toIDs: Bool, extra: String = "") -> String {
                    """
                    {"uuid": "00000000-0000-4000-8000-00000000000\(id)", "type": "\(type)", "category": "Network activity", "value": "\(value)",
                     "to_ids": \(toIDs), "timestamp": "\(id == 1 ? timestamp : 1_764_460_800)", "comment": ""\(extra)}
                    """
                }
                let attributes = [
                    attribute(1, "ip-dst", "77.90.185.60", toIDs: true, extra: deleted ? #", "deleted": true"# : ""),
                    attribute(2, "ip-src|port", "77.90.185.61|8080", toIDs: true),
                    attribute(3, "ip-dst", "77.90.185.62", toIDs: false),
                    attribute(4, "domain", "red.example", toIDs: true, extra: ##", "Tag": [{"name": "tlp:red", "colour": "#CC0033"}]"##),
                    attribute(5, "comment", "seen on sensors", toIDs: false),
                ]
                let file = """
                    {"Event": {"uuid": "\(event)", "info": "Scanners", "date": "2026-11-30", "timestamp": "\(timestamp)", "threat_level_id": "2",
                     "analysis": "2", "published": true, "Orgc": {"id": "1", "name": "CIRCL", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"},
                     "Tag": [{"name": "tlp:green", "colour": "#33FF00"}], "Attribute": [\(attributes.joined(separator: ","))],
                     "Object": [{"name": "ip-port", "meta-category": "network", "uuid": "6a8e2a0c-0f4e-4b8e-9d4a-1c2b3c4d5e6f",
                       "Attribute": [\(attribute(6, "ip-dst", "77.90.185.63", toIDs: true))], "ObjectReference": []}]}}
                    """
                try manifest.write(to: site.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)
                try file.write(to: site.appendingPathComponent("\(event).json"), atomically: true, encoding: .utf8)
            }
            try publish(timestamp: 1_764_460_800, deleted: false)
            let server = try Self.serve(site, probe: "manifest.json")
            defer { Self.stop(server.process) }
            let port = server.port
            let (sandbox, daemon) = try Self.daemon(feeds: "  - {name: circl, kind: misp, url: \"http://127.0.0.1:\(port)/\"}\n")
            defer { _ = daemon.stop() }
            #expect(eventually(15) { (try? Self.feed(daemon, "circl"))?["last_success"] != nil })
            let first = try Self.feed(daemon, "circl")
            #expect(first["items"] as? Int == 4, "\(first)")
            #expect(try Self.decision(daemon, "77.90.185.60") == "active")
            #expect(try Self.decision(daemon, "77.90.185.61") == "active", "ip-src|port: the address")
            #expect(try Self.decision(daemon, "77.90.185.63") == "active", "an object's attribute")
            #expect(try Self.decision(daemon, "77.90.185.62") == nil, "to_ids false")
            // The tlp:red attribute is stored as TLP:RED: nothing exports it.
            let export = try run(rampartBinary, ["export", "stix", "--config", sandbox.configPath])
            #expect(export.stdout.contains("77.90.185.61") && !export.stdout.contains("red.example"))
            // Unchanged manifest: a 304.
            let pull = ["feeds", "pull", "circl", "--config", sandbox.configPath, "--url", daemon.url, "--token", Sandbox.adminToken]
            #expect(try run(rampartBinary, pull).status == 0)
            #expect(try String(contentsOf: site.appendingPathComponent("requests.log"), encoding: .utf8).contains("/manifest.json \"") == true)
            // A newer event with one attribute deleted: its block is revoked, the others stay, nothing is stored twice.
            try publish(timestamp: 1_764_547_200, deleted: true)
            #expect(try run(rampartBinary, pull).status == 0)
            #expect(try Self.decision(daemon, "77.90.185.60") == "revoked")
            #expect(try Self.decision(daemon, "77.90.185.61") == "active")
            #expect(try Self.feed(daemon, "circl")["items"] as? Int == 0)
        }
    }
}
