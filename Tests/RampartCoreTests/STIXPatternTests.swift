import Foundation
import RampartCore
import Testing

@Suite struct STIXPatternTests {
    func values(_ pattern: String) throws -> [String] {
        try STIXPattern(pattern).values().get().map { "\($0.0?.rawValue ?? "ip"):\($0.1)" }
    }

    func reason(_ pattern: String) throws -> String? {
        if case .failure(let why) = try STIXPattern(pattern).values() { return why.reason }
        return nil
    }

    /// The forms INTEROP's table lists as actionable, as real producers (OASIS examples, MISP) write them.
    @Test func actionableForms() throws {
        #expect(try values("[ipv4-addr:value = '198.51.100.7']") == ["ip:198.51.100.7"])
        #expect(try values("[ipv4-addr:value = '198.51.100.0/24']") == ["ip:198.51.100.0/24"])
        #expect(try values("[ipv6-addr:value == '2001:db8::/32']") == ["ip:2001:db8::/32"])
        #expect(try values("[ipv4-addr:value ISSUBSET '198.51.100.0/24']") == ["cidr:198.51.100.0/24"])
        #expect(try values("[ipv4-addr:value IN ('192.0.2.1', '192.0.2.2')]") == ["ip:192.0.2.1", "ip:192.0.2.2"])
        #expect(
            try values(
                "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '5.6.7.8' AND network-traffic:dst_port = '5678']")
                == ["ip:5.6.7.8"])
        #expect(try values("[network-traffic:src_ref.type = 'ipv6-addr' AND network-traffic:src_ref.value = '2001:db8::1']") == ["ip:2001:db8::1"])
        #expect(try values("[domain-name:value = 'evil.example']") == ["domain:evil.example"])
        #expect(try values("[url:value = 'http://evil.example/x']") == ["url:http://evil.example/x"])
        #expect(try values("[email-addr:value = 'a@evil.example']") == ["email:a@evil.example"])
        let sha256 = "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c"
        #expect(try values("[file:hashes.'SHA-256' = '\(sha256)']") == ["sha256:\(sha256)"])
        #expect(try values("[file:hashes.SHA256 = '\(sha256)']") == ["sha256:\(sha256)"])
        #expect(try values("[file:hashes.md5 = 'd41d8cd98f00b204e9800998ecf8427e']") == ["md5:d41d8cd98f00b204e9800998ecf8427e"])
        #expect(try values("[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']") == ["sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709"])
        #expect(try values("[ipv4-addr:value = '192.0.2.1'] OR [domain-name:value = 'evil.example']") == ["ip:192.0.2.1", "domain:evil.example"])
        #expect(
            try values("[domain-name:value = 'a.example' OR ipv4-addr:value = '192.0.2.1' OR ipv4-addr:value = '192.0.2.2']")
                == ["domain:a.example", "ip:192.0.2.1", "ip:192.0.2.2"])
        // An alternative that names nothing does not stop the others.
        #expect(try values("[ipv4-addr:value = '192.0.2.1'] OR [process:name = 'x']") == ["ip:192.0.2.1"])
        #expect(try values("([ipv4-addr:value = '192.0.2.1'])") == ["ip:192.0.2.1"])
        #expect(try values("[(ipv4-addr:value = 'a' OR ipv4-addr:value = 'b')]") == ["ip:a", "ip:b"])
        // Escapes in strings.
        #expect(try values(#"[url:value = 'http://x.example/it\'s']"#) == ["url:http://x.example/it's"])
    }

    /// Valid patterns that describe behaviour, not one value: nothing to block, and why.
    @Test func validButNotActionable() throws {
        #expect(try reason("[ipv4-addr:value = '192.0.2.1'] AND [domain-name:value = 'x.example']")?.contains("AND") == true)
        #expect(try reason("[ipv4-addr:value = '192.0.2.1'] FOLLOWEDBY [ipv4-addr:value = '192.0.2.2']")?.contains("FOLLOWEDBY") == true)
        #expect(try reason("[ipv4-addr:value = '192.0.2.1'] WITHIN 300 SECONDS")?.contains("qualifiers") == true)
        #expect(try reason("[ipv4-addr:value = '192.0.2.1'] REPEATS 5 TIMES") != nil)
        #expect(try reason("[ipv4-addr:value = '192.0.2.1'] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'") != nil)
        #expect(try reason("[ipv4-addr:value != '192.0.2.1']")?.contains("!=") == true)
        #expect(try reason("[ipv4-addr:value NOT = '192.0.2.1']")?.contains("negated") == true)
        #expect(try reason("[domain-name:value LIKE '%.example']")?.contains("LIKE") == true)
        #expect(try reason("[email-message:subject MATCHES '^[IMPORTANT]']")?.contains("email-message:subject") == true)
        #expect(try reason("[file:name = 'CBricksDoc']")?.contains("file:name") == true)
        #expect(try reason("[file:size > 1000]") != nil)
        #expect(try reason("[file:hashes.'SHA-512' = 'ab']") != nil)
        #expect(
            try reason("[network-traffic:dst_ref.value = '192.0.2.1' AND network-traffic:src_ref.value = '192.0.2.2']")?.contains("more than one")
                == true)
        #expect(try reason("[x509-certificate:issuer = 'CN=WEBMAIL' AND x509-certificate:serial_number = '4c:0b']") != nil)
        #expect(try reason("[EXISTS file:name]") != nil)
    }

    @Test func syntaxErrorsSayWhere() throws {
        func error(_ pattern: String) -> String? {
            do {
                _ = try STIXPattern(pattern)
                return nil
            } catch {
                return error.message
            }
        }
        #expect(error("ipv4-addr:value = '1.2.3.4'")?.contains("expected '[' or '('") == true)
        #expect(error("[ipv4-addr:value = '1.2.3.4'")?.contains("']'") == true)
        #expect(error("[ipv4-addr:value = '1.2.3.4]")?.contains("unterminated") == true)
        #expect(error("[file:hashes.SHA-256 = 'ab']")?.contains("quoted") == true)
        #expect(error("[ipv4-addr:value ~ '1.2.3.4']")?.contains("unexpected") == true)
        #expect(
            error("[ipv4-addr:value = '1.2.3.4'] or [ipv4-addr:value = '1.2.3.5']")?.contains("expected OR, AND or FOLLOWEDBY at character 31")
                == true)
        #expect(error("[ipv4-addr:value = '1.2.3.4'] WITHIN 5 SECONDS WITHIN 6 SECONDS")?.contains("second WITHIN") == true)
        #expect(error("[ipv4-addr:value IN ('a' 'b')]") != nil)
        #expect(error("[ipv4-addr:value = 'a'] START t'not a time' STOP t'2016-01-01T00:00:00Z'")?.contains("timestamp") == true)
        #expect(
            error(String(repeating: "(", count: 100) + "[ipv4-addr:value = 'a']" + String(repeating: ")", count: 100))?.contains("deeper") == true)
        #expect(error("[a:b = 'x']")?.contains("object type") == true)
        #expect(error("") != nil)
    }

    @Test func markingsAndVersions() throws {
        let now = Date()
        func read(_ extra: String) throws -> STIX.Object {
            let json = try JSONValue.parse(
                Array(
                    """
                    {"type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                     "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-02T00:00:00.000Z", "valid_from": "2026-01-01T00:00:00Z",
                     "pattern_type": "stix", "pattern": "[ipv4-addr:value = '198.51.100.7']" \(extra)}
                    """.utf8))
            return try STIX.read(json, context: STIX.Context([]), defaults: IndicatorDefaults(), now: now)
        }
        func tlp(_ object: STIX.Object) -> TLP? {
            if case .payloads(let payloads) = object.content, case .indicator(let indicator)? = payloads.first { return indicator.tlp }
            return nil
        }
        #expect(tlp(try read("")) == .amber)  // the request's default
        #expect(tlp(try read(#", "object_marking_refs": ["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"]"#)) == .green)
        #expect(tlp(try read(#", "object_marking_refs": ["marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"]"#)) == .clear)
        #expect(tlp(try read(#", "object_marking_refs": ["marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"]"#)) == .amberStrict)
        // An unknown marking is RED for re-sharing; several: the most restrictive.
        #expect(tlp(try read(#", "object_marking_refs": ["marking-definition--00000000-0000-4000-8000-000000000000"]"#)) == .red)
        #expect(
            tlp(
                try read(
                    #", "object_marking_refs": ["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9", "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"]"#
                )) == .amber)
        let object = try read(#", "confidence": 85, "labels": ["Botnet C2"], "indicator_types": ["malicious-activity"]"#)
        #expect(object.version?.modified == "2026-01-02T00:00:00.000Z")
        if case .payloads(let payloads) = object.content, case .indicator(let indicator)? = payloads.first {
            #expect(indicator.confidence == 85)
            #expect(indicator.tags == ["malicious-activity", "botnet-c2"])
        } else {
            Issue.record("expected an indicator")
        }
        if case .revoked = try read(#", "revoked": true"#).content {} else { Issue.record("expected a revocation") }
        if case .skipped(let why) = try read(#", "valid_until": "2026-01-01T12:00:00Z""#).content {
            #expect(why.contains("has passed"))
        } else {
            Issue.record("expected a skip")
        }
        #expect(throws: ValueError.self) { try read(#", "confidence": 101"#) }
        #expect(throws: ValueError.self) { try read(#", "valid_until": "2025-01-01T00:00:00Z""#) }
    }
}
