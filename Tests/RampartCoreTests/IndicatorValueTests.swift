import Foundation
import Testing

@testable import RampartCore

/// Table-driven: every row is a raw value, an optional declared kind, and the expected outcome.
struct IndicatorValueTests {
    struct Accepted: CustomTestStringConvertible, Sendable {
        var raw: String
        var declared: IndicatorKind?
        var kind: IndicatorKind
        var value: String
        var testDescription: String { "\(raw.debugDescription) -> \(kind.rawValue) \(value)" }
        init(_ raw: String, as declared: IndicatorKind? = nil, _ kind: IndicatorKind, _ value: String) {
            self.raw = raw
            self.declared = declared
            self.kind = kind
            self.value = value
        }
    }

    static let accepted: [Accepted] = [
        // IPv4
        Accepted("198.51.100.7", .ipv4, "198.51.100.7"),
        Accepted("0.0.0.0", .ipv4, "0.0.0.0"),
        Accepted("255.255.255.255", .ipv4, "255.255.255.255"),
        Accepted("  77.90.185.20\t", .ipv4, "77.90.185.20"),
        // IPv6: canonical text (RFC 5952), IPv4-mapped unmapped
        Accepted("2001:DB8:0:0:0:0:0:1", .ipv6, "2001:db8::1"),
        Accepted("2001:0db8:0000:0000:0001:0000:0000:0001", .ipv6, "2001:db8::1:0:0:1"),
        Accepted("2001:db8:0:1:1:1:1:1", .ipv6, "2001:db8:0:1:1:1:1:1"),
        Accepted("::", .ipv6, "::"),
        Accepted("::1", .ipv6, "::1"),
        Accepted("fe80::", .ipv6, "fe80::"),
        Accepted("::ffff:1.2.3.4", .ipv4, "1.2.3.4"),
        Accepted("::FFFF:c000:0280", .ipv4, "192.0.2.128"),
        Accepted("64:ff9b::192.0.2.33", .ipv6, "64:ff9b::c000:221"),
        Accepted("::ffff:1.2.3.4", as: .ipv6, .ipv4, "1.2.3.4"),
        // CIDR
        Accepted("198.51.100.0/24", .cidr, "198.51.100.0/24"),
        Accepted("0.0.0.0/0", .cidr, "0.0.0.0/0"),
        Accepted("1.2.3.4/32", .cidr, "1.2.3.4/32"),
        Accepted("2001:DB8::/32", .cidr, "2001:db8::/32"),
        Accepted("::ffff:1.2.3.0/120", .cidr, "1.2.3.0/24"),
        // Domains: lower case, IDNA, trailing dot
        Accepted("Example.COM", .domain, "example.com"),
        Accepted("example.com.", .domain, "example.com"),
        Accepted("bücher.example", .domain, "xn--bcher-kva.example"),
        Accepted("BÜCHER.example", .domain, "xn--bcher-kva.example"),
        Accepted("xn--bcher-kva.example", .domain, "xn--bcher-kva.example"),
        Accepted("XN--BCHER-KVA.example", .domain, "xn--bcher-kva.example"),
        Accepted("例え.テスト", .domain, "xn--r8jz45g.xn--zckzah"),
        Accepted("mañana。com", .domain, "xn--maana-pta.com"),
        Accepted("_dmarc.example.com", .domain, "_dmarc.example.com"),
        Accepted("ｅｘａｍｐｌｅ．ｃｏｍ", .domain, "example.com"),
        Accepted("1.2.3.4.example", .domain, "1.2.3.4.example"),
        // URLs
        Accepted("HTTP://Evil.Example:80/Path?q=1", .url, "http://evil.example/Path?q=1"),
        Accepted("https://evil.example", .url, "https://evil.example/"),
        Accepted("https://evil.example:8443/a#frag", .url, "https://evil.example:8443/a#frag"),
        Accepted("http://[2001:DB8::1]:8080/x", .url, "http://[2001:db8::1]:8080/x"),
        Accepted("http://198.51.100.7/gate.php", .url, "http://198.51.100.7/gate.php"),
        Accepted("http://paypal.com@evil.example/login", .url, "http://paypal.com@evil.example/login"),
        Accepted("http://bücher.example/ä", .url, "http://xn--bcher-kva.example/%C3%A4"),
        // Hashes
        Accepted("D41D8CD98F00B204E9800998ECF8427E", .md5, "d41d8cd98f00b204e9800998ecf8427e"),
        Accepted("da39a3ee5e6b4b0d3255bfef95601890afd80709", .sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        Accepted(
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", .sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        // E-mail
        Accepted("Phish.Er+tag@Evil.Example", .email, "Phish.Er+tag@evil.example"),
        Accepted("a@bücher.example", .email, "a@xn--bcher-kva.example"),
    ]

    @Test(arguments: accepted)
    func accepts(_ row: Accepted) throws {
        let (kind, value) = try IndicatorValue.normalise(row.raw, as: row.declared)
        #expect(kind == row.kind)
        #expect(value == row.value)
    }

    struct Refused: CustomTestStringConvertible, Sendable {
        var raw: String
        var declared: IndicatorKind?
        var code: ValueError.Code
        var mentions: String
        var testDescription: String { "\(raw.prefix(40).debugDescription) refused: \(code)" }
        init(_ raw: String, as declared: IndicatorKind? = nil, _ code: ValueError.Code, mentions: String = "") {
            self.raw = raw
            self.declared = declared
            self.code = code
            self.mentions = mentions
        }
    }

    static let refused: [Refused] = [
        // Ambiguous or malformed IPv4
        Refused("010.1.1.1", .ambiguousIPv4, mentions: "octal"),
        Refused("1.2.3.04", .ambiguousIPv4),
        Refused("1.2.3", .invalidIPv4),
        Refused("1.2.3.4.5", .invalidIPv4),
        Refused("1.2.3.256", .invalidIPv4),
        Refused("1..2.3", .invalidIPv4),
        Refused("0x7f.0.0.1", .invalidDomain, mentions: "numeric"),
        Refused("1.2.3.4", as: .ipv6, .kindMismatch),
        // CIDR
        Refused("1.2.3.4/33", .invalidCIDR, mentions: "33"),
        Refused("1.2.3.4/24", .hostBitsSet, mentions: "1.2.3.0/24"),
        Refused("1.2.3.0/024", .invalidCIDR),
        Refused("1.2.3.0/", .invalidCIDR),
        Refused("2001:db8::/129", .invalidCIDR),
        Refused("2001:db8::1/32", .hostBitsSet),
        Refused("1.2.3.4", as: .cidr, .invalidCIDR),
        // IPv6
        Refused("fe80::1%eth0", .zoneID, mentions: "zone"),
        Refused("fe80::1%25eth0", .zoneID),
        Refused("1::2::3", .invalidIPv6),
        Refused("1:2:3:4:5:6:7:8:9", .invalidIPv6),
        Refused("12345::", .invalidIPv6),
        Refused(":1:2:3:4:5:6:7", .invalidIPv6),
        Refused("::1.2.3.4:5", .invalidIPv6),
        Refused("gggg::", .invalidIPv6),
        // Domains
        Refused("localhost", .invalidDomain, mentions: "single label"),
        Refused("a..example", .invalidDomain),
        Refused("-bad.example", .invalidDomain),
        Refused("bad_.com_", .invalidDomain),
        Refused("xn--zz.example", .invalidDomain, mentions: "Punycode"),
        Refused("xn--abc.example", .invalidDomain, mentions: "Punycode"),
        Refused("exa$mple.com", .invalidDomain),
        Refused("☃️.example", .invalidDomain),
        Refused(String(repeating: "a", count: 64) + ".example", .invalidDomain, mentions: "63"),
        Refused(Array(repeating: "abcdefghij", count: 26).joined(separator: "."), .tooLong),
        // URLs
        Refused("http://user:secret@evil.example/", .credentialsInURL, mentions: "password"),
        Refused("http://:secret@evil.example/", .credentialsInURL),
        Refused("http://evil.example:99999/", .invalidURL, mentions: "port"),
        Refused("http:///path", .invalidURL),
        Refused("1http://evil.example/", .invalidURL),
        Refused("http://[::1/", .invalidURL),
        Refused("http://010.1.1.1/", .ambiguousIPv4),
        // Hashes
        Refused("d41d8cd98f00b204e9800998ecf8427", as: .md5, .invalidHash, mentions: "32"),
        Refused("d41d8cd98f00b204e9800998ecf8427ez", as: .md5, .invalidHash, mentions: "hexadecimal"),
        Refused("da39a3ee5e6b4b0d3255bfef95601890afd80709", as: .sha256, .invalidHash, mentions: "64"),
        // E-mail
        Refused("a..b@evil.example", .invalidEmail),
        Refused("\"quoted\"@evil.example", .invalidEmail),
        Refused("@evil.example", .invalidEmail),
        Refused("a@localhost", .invalidDomain),
        // Whitespace, control characters, size
        Refused("", .emptyValue),
        Refused("   \t ", .emptyValue),
        Refused("1.2.3.4 5.6.7.8", .controlCharacter, mentions: "space"),
        Refused("evil\u{0}.example", .controlCharacter, mentions: "U+0"),
        Refused("1.2.3.4\u{0}", .controlCharacter),
        Refused("evil.example\r\nx", .controlCharacter),
        Refused("http://evil.example/" + String(repeating: "a", count: 10_000), .tooLong, mentions: "4096"),
        Refused(String(repeating: "a", count: 10_000), .tooLong),
    ]

    @Test(arguments: refused)
    func refuses(_ row: Refused) {
        #expect {
            try IndicatorValue.normalise(row.raw, as: row.declared)
        } throws: { error in
            guard let error = error as? ValueError else { return false }
            return error.code == row.code && (row.mentions.isEmpty || error.message.contains(row.mentions))
        }
    }

    /// Found by Fuzz/FuzzValues: a URL within the limit whose non-ASCII characters, percent-encoded,
    /// made a stored value over it, which a peer (normalising again) refused. Now refused here.
    @Test func aValueTooLongOnceNormalisedIsRefused() throws {
        let url = "http://a.example/x?" + String(repeating: "\u{FFFD}", count: 600)
        #expect(url.utf8.count < IndicatorValue.maxLength)
        let error = #expect(throws: ValueError.self) { try IndicatorValue.normalise(url) }
        #expect(error?.code == .tooLong)
        #expect(error?.message.contains("once normalised") == true)
        let fits = "http://a.example/x?" + String(repeating: "\u{FFFD}", count: 400)
        let (_, value) = try IndicatorValue.normalise(fits)
        #expect(try IndicatorValue.normalise(value, as: .url).1 == value, "what is stored normalises to itself")
    }

    @Test func errorMessagesNeverEchoControlCharacters() throws {
        let error = #expect(throws: ValueError.self) { try IndicatorValue.normalise("a\u{1b}[31m.example") }
        let message = try #require(error).message
        #expect(!message.unicodeScalars.contains { $0.value < 0x20 })
        #expect(message.contains("\\u{1b}"))
    }

    @Test func punycodeRoundTrips() throws {
        for label in ["bücher", "mañana", "例え", "テスト", "ليهمابتكلموشعربي؟"] {
            let encoded = try #require(Punycode.encode(Array(label.unicodeScalars)))
            let decoded = try #require(Punycode.decode(Substring(encoded)))
            #expect(String(String.UnicodeScalarView(decoded)) == label)
        }
        // RFC 3492 sample (A): Arabic (Egyptian).
        #expect(Punycode.encode(Array("ليهمابتكلموشعربي؟".unicodeScalars)) == "egbpdaj6bu4bxfgehfvwxn")
    }
}

@Suite struct IndicatorFieldTests {
    func indicator(_ json: String) throws -> Indicator {
        try Indicator(json: JSONValue.parse(Array(json.utf8)), defaults: IndicatorDefaults(), now: Date())
    }

    @Test func tagsAreTrimmedLowerCasedAndDeduplicated() throws {
        let parsed = try indicator(#"{"value": "8.8.8.8", "tags": ["c2", " Botnet ", "C2", "mitre:t1071", "tlp=amber", "ça-va"]}"#)
        #expect(parsed.tags == ["c2", "botnet", "mitre:t1071", "tlp=amber", "ça-va"])
    }

    @Test(arguments: [#"["a b"]"#, #"["x;rm"]"#, #"[""]"#, #"["   "]"#, "[\"\(String(repeating: "a", count: 65))\"]", #"["a\u0000"]"#, "[1]"])
    func badTagsAreRefused(_ tags: String) {
        #expect(throws: ValueError.self) { try indicator(#"{"value": "8.8.8.8", "tags": \#(tags)}"#) }
    }
}
