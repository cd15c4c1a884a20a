import Foundation
import RampartCore
import Testing

@Suite struct ConfigTests {
    static let minimal = """
        node: {id: n1}
        state_dir: /var/lib/rampart
        playbooks: /etc/rampart/playbooks

        """

    func parse(_ text: String) throws(Diagnostics) -> Config {
        try Config.parse(YAMLSource.parse(text, file: "/etc/rampart/rampart.yaml"), path: "/etc/rampart/rampart.yaml")
    }

    func errors(_ text: String) -> [Diagnostic] {
        do {
            _ = try parse(text)
            Issue.record("accepted: \(text)")
            return []
        } catch {
            return error.items
        }
    }

    @Test func defaultsAndRelativePaths() throws {
        let config = try parse("node: {id: n1}\nstate_dir: state\nplaybooks: ../playbooks\n")
        #expect(config.listen.description == "127.0.0.1:8470")
        #expect(config.stateDirectory == "/etc/rampart/state")
        #expect(config.playbooksDirectory == "/etc/playbooks")
        #expect(config.databasePath == "/etc/rampart/state/rampart.sqlite")
        #expect(config.http.maxBodyBytes == 16 << 20)
        #expect(config.safety.maxPrefixV4 == 16 && config.safety.maxPrefixV6 == 32)
    }

    @Test func developmentConfigLoads() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../deploy/rampart.dev.yaml").standardized
            .path
        let config = try Config.load(path: path)
        #expect(config.listen.description == "127.0.0.1:8470")
        #expect(config.firewall.backend == .dryRun)
        #expect(config.apiKeys.map(\.name) == ["dev"])
        #expect(config.stateDirectory.hasSuffix("/.state/dev"))
    }

    @Test func unknownKeyNamesItsPathLineAndColumn() {
        let found = errors(Self.minimal + "http:\n  max_bodyy: 1MiB\n")
        #expect(found.count == 1)
        #expect(found.first?.line == 5)
        #expect(found.first?.column == 3)
        #expect(found.first?.message.contains("http.max_bodyy") == true || found.first?.message.contains("max_bodyy") == true)
        #expect(found.first?.message.contains("max_body") == true)
        #expect(found.first?.description.hasPrefix("/etc/rampart/rampart.yaml:5:3:") == true)
    }

    @Test func everyErrorIsReportedAtOnce() {
        let found = errors(
            """
            node: {id: "bad id"}
            listen: localhost
            state_dir: s
            playbooks: p
            safety: {never_block: [10.0.0.1/8], max_prefix: {ipv4: 4}}
            api_keys:
              - {name: k, roles: [root], token_sha256: abc}
            log: {level: loud}
            firewal: {}
            """
        )
        #expect(Set(found.map(\.line)) == [1, 2, 5, 7, 8, 9])
        #expect(found.count >= 7)
    }

    /// The bouncer API's sections: each problem at its line.
    @Test func crowdsecAndBouncersAreChecked() {
        let key = String(repeating: "ab", count: 32)
        let found = errors(
            """
            node: {id: a}
            listen: 127.0.0.1:8470
            state_dir: s
            playbooks: p
            crowdsec: {listen: 127.0.0.1:8470}
            bouncers:
              - {name: fw, key_sha256: "\(key)", scopes: [ip, country]}
              - {name: fw, key_sha256: "\(key)"}
              - {name: x, key_sha256: short}
              - {name: y, key_sha256: "\(key)", hold: 10m}
              - {name: z, key_sha256: "\(key)", origins: ["not a node"]}
            """
        )
        #expect(Set(found.map(\.line)) == [5, 7, 8, 9, 10, 11], "\(found)")
        let orphan = errors("node: {id: a}\nstate_dir: s\nplaybooks: p\nbouncers:\n  - {name: fw, key_sha256: \"\(key)\"}\n")
        #expect(orphan.map(\.message).joined().contains("crowdsec.listen"))
    }

    @Test func feedsAndTAXIIAreChecked() {
        let found = errors(
            """
            node: {id: a}
            state_dir: s
            playbooks: p
            feeds:
              - {name: a, kind: rss, url: "http://x.example/"}
              - {name: b, kind: taxii, url: "http://x.example/"}
              - {name: c, kind: text, url: "ftp://x.example/", interval: 10s}
              - {name: d, kind: stix, url: "http://x.example/", sync: true, defaults: {confidence: 200}}
              - {name: d, kind: csv, url: "http://x.example/", delimiter: ";;"}
              - {name: e, kind: text, url: "http://x.example/", regex: 'from (\\d+', column: 2}
              - {name: f, kind: stix, url: "http://x.example/", regex: 'x'}
            taxii:
              collections:
                - {id: not-a-uuid, title: t}
                - {id: 7d9c0b0e-2f3a-4c55-9a57-0b6f6f5f3a10, title: t, read: [nobody]}
            """
        )
        // Each with its line: an unknown kind, a TAXII feed without its collection, a bad URL and
        // interval, sync on a bundle and a bad default, a duplicate name and delimiter, a bad id,
        // a regex that does not compile and comes with a column, a regex on a bundle, a bad id,
        // an unknown reader.
        #expect(Set(found.map(\.line)) == [5, 6, 7, 8, 9, 10, 11, 14, 15], "\(found)")
        #expect(found.count == 13, "\(found)")
        let messages = found.map(\.message).joined(separator: "\n")
        #expect(messages.contains("feeds.sync is for full lists"))
        #expect(messages.contains("feeds.regex: ") && messages.contains("not both") && messages.contains("feeds.regex is for lists"), "\(messages)")
    }

    @Test func retentionIsAtLeastADay() throws {
        let found = errors("node: {id: a}\nstate_dir: s\nplaybooks: p\nretention: {decisions: 1h, outbox: 2d, forever: 1y}\n")
        #expect(found.count == 2, "\(found)")
        #expect(found.map(\.message).joined().contains("retention.decisions must be at least 1d"))
    }

    @Test func missingRequiredKeys() {
        let found = errors("listen: 127.0.0.1:8470\n")
        #expect(found.map(\.message).joined().contains("node"))
        #expect(found.map(\.message).joined().contains("state_dir"))
    }

    @Test func hostileYAMLIsRefusedQuickly() throws {
        let laughs = """
            a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
            b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
            c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
            d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
            e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
            f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
            g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
            """
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let huge = "a: \"" + String(repeating: "x", count: 50 << 20) + "\"\n"
        for (name, text) in [("aliases", laughs), ("deep", deep), ("50 MB", huge)] {
            let start = ContinuousClock.now
            #expect(throws: Diagnostics.self, "\(name)") { try YAMLSource.parse(text, file: "x.yaml") }
            #expect(ContinuousClock.now - start < .seconds(2), "\(name) took too long")
        }
    }

    @Test func sizesAndDurations() throws {
        #expect(try Config.parseSize("16MiB") == 16 << 20)
        #expect(try Config.parseSize("512 KiB") == 512 << 10)
        #expect(try Config.parseSize("1048576") == 1 << 20)
        #expect(throws: ValueError.self) { try Config.parseSize("-1") }
        #expect(throws: ValueError.self) { try Config.parseSize("lots") }
        let config = try parse(Self.minimal + "http: {max_body: 1MiB, idle_timeout: 30s}\n")
        #expect(config.http.maxBodyBytes == 1 << 20)
        #expect(config.http.idleTimeout == .seconds(30))
    }
}
