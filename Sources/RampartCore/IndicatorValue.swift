import Foundation

/// Validation and normalisation of indicator values, and inference of their kind.
public enum IndicatorValue {
    /// Longest value accepted, in bytes (URLs are the longest kind).
    public static let maxLength = 4096

    /// Validates `raw` as `kind` (or as the kind it looks like when `kind` is nil) and returns the
    /// kind with the canonical value. Leading and trailing ASCII whitespace is ignored.
    public static func normalise(_ raw: Substring, as kind: IndicatorKind? = nil) throws(ValueError) -> (IndicatorKind, String) {
        let text = raw.trimmingASCIIWhitespace()
        guard !text.isEmpty else { throw ValueError(.emptyValue, "empty value") }
        guard text.utf8.count <= maxLength else {
            throw ValueError(.tooLong, "value of \(text.utf8.count) bytes; at most \(maxLength) are allowed")
        }
        if let bad = text.utf8.first(where: { $0 <= 0x20 || $0 == 0x7f }) {
            throw ValueError(
                .controlCharacter,
                "'\(text.preview)' contains \(bad == 0x20 ? "a space" : "the control character U+\(String(bad, radix: 16, uppercase: true))")"
            )
        }
        let resolved = kind ?? infer(text)
        let value: String
        switch resolved {
        case .ipv4, .ipv6:
            let address = try IPAddress(parsing: text)
            let actual: IndicatorKind = address.family == .v4 ? .ipv4 : .ipv6
            // An IPv4-mapped IPv6 address declared as ipv6 is the IPv4 host it maps.
            let unmapped = resolved == .ipv6 && actual == .ipv4 && text.contains(":")
            guard actual == resolved || kind == nil || unmapped else {
                throw ValueError(.kindMismatch, "'\(text.preview)' is an \(actual.rawValue) address, not \(resolved.rawValue)")
            }
            return (actual, address.description)
        case .cidr:
            value = try IPNetwork(parsing: text).cidrNotation
        case .domain:
            value = try DomainName.normalise(text)
        case .url:
            value = try URLValue.normalise(text)
        case .email:
            value = try EmailValue.normalise(text)
        case .md5, .sha1, .sha256:
            value = try hash(text, as: resolved)
        }
        // Normalising can lengthen a value (a URL's non-ASCII characters are percent-encoded,
        // three times as long); what is stored, and sent to peers, must be accepted again.
        guard value.utf8.count <= maxLength else {
            throw ValueError(.tooLong, "'\(text.preview)' is \(value.utf8.count) bytes once normalised; at most \(maxLength) are allowed")
        }
        return (resolved, value)
    }

    public static func normalise(_ raw: String, as kind: IndicatorKind? = nil) throws(ValueError) -> (IndicatorKind, String) {
        try normalise(Substring(raw), as: kind)
    }

    /// The kind a value looks like. The value is validated afterwards as that kind, so a value that
    /// looks like an address but is not one (`010.1.1.1`, `1.2.3.4/33`) is refused, never taken for a domain.
    static func infer(_ text: Substring) -> IndicatorKind {
        var colon = false
        var slash = false
        var at = false
        var allHex = true
        var onlyDigitsAndDots = true
        var previous: (UInt8, UInt8) = (0, 0)
        for byte in text.utf8 {
            if byte == UInt8(ascii: "/"), previous == (UInt8(ascii: ":"), UInt8(ascii: "/")) { return .url }
            switch byte {
            case UInt8(ascii: ":"): colon = true
            case UInt8(ascii: "/"): slash = true
            case UInt8(ascii: "@"): at = true
            default: break
            }
            if allHex && hexValue(byte) == nil { allHex = false }
            if onlyDigitsAndDots && !((byte >= 48 && byte <= 57) || byte == UInt8(ascii: ".")) { onlyDigitsAndDots = false }
            previous = (previous.1, byte)
        }
        if at { return .email }
        if allHex {
            switch text.utf8.count {
            case 32: return .md5
            case 40: return .sha1
            case 64: return .sha256
            default: break
            }
        }
        if slash { return .cidr }
        if colon { return .ipv6 }
        if onlyDigitsAndDots { return .ipv4 }
        return .domain
    }

    static func hash(_ text: Substring, as kind: IndicatorKind) throws(ValueError) -> String {
        let expected = kind == .md5 ? 32 : kind == .sha1 ? 40 : 64
        guard text.utf8.allSatisfy({ hexValue($0) != nil }) else {
            throw ValueError(.invalidHash, "'\(text.preview)' is not a \(kind.rawValue) hash: only hexadecimal digits are allowed")
        }
        guard text.utf8.count == expected else {
            throw ValueError(
                .invalidHash,
                "'\(text.preview)' has \(text.utf8.count) hex digits; a \(kind.rawValue) hash has \(expected)"
            )
        }
        return text.lowercased()
    }
}

extension Substring {
    func trimmingASCIIWhitespace() -> Substring {
        var s = self
        while let first = s.utf8.first, first == 32 || first == 9 || first == 10 || first == 13 { s = s.dropFirst() }
        while let last = s.utf8.last, last == 32 || last == 9 || last == 10 || last == 13 { s = s.dropLast() }
        return s
    }
}

/// URLs: scheme and host normalised (host as a domain or an address), credentials refused.
enum URLValue {
    static func normalise(_ text: Substring) throws(ValueError) -> String {
        func fail(_ why: String) -> ValueError {
            ValueError(.invalidURL, "'\(text.preview)' is not a URL: \(why)")
        }
        guard let schemeEnd = text.range(of: "://") else { throw fail("expected scheme://host") }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard let first = scheme.utf8.first, first >= 97 && first <= 122,
            scheme.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 43 || $0 == 45 || $0 == 46 })
        else { throw fail("invalid scheme") }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        let tail = rest[authorityEnd...]
        if let at = authority.lastIndex(of: "@") {
            let userinfo = authority[..<at]
            if userinfo.contains(":") {
                throw ValueError(
                    .credentialsInURL,
                    "'\(text.preview)' carries a password in its user:password@ part; remove the credentials before sharing the URL"
                )
            }
            guard !userinfo.isEmpty else { throw fail("empty user name before '@'") }
            authority = authority[authority.index(after: at)...]
        }
        let userPart = authority.startIndex == rest.startIndex ? "" : String(rest[..<authority.startIndex])
        var host: String
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw fail("unclosed '[' in host") }
            let inner = authority[authority.index(after: authority.startIndex)..<close]
            let address = try IPAddress(parsing: inner)
            host = address.family == .v6 ? "[\(address)]" : address.description
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected text after ']'") }
                portText = after.dropFirst()
            }
        } else {
            var hostText = authority
            if let colon = authority.lastIndex(of: ":") {
                hostText = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            }
            guard !hostText.isEmpty else { throw fail("empty host") }
            if IndicatorValue.infer(hostText) == .ipv4 {
                host = try IPAddress(parsing: hostText).description
            } else {
                host = try DomainName.normalise(hostText)
            }
        }
        var port = ""
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                let number = Int(portText), (1...65535).contains(number)
            else { throw fail("port must be 1-65535") }
            let isDefault = (scheme == "http" && number == 80) || (scheme == "https" && number == 443)
            if !isDefault { port = ":\(number)" }
        }
        var path = ""
        for byte in tail.utf8 {
            if byte >= 0x80 {
                path += "%" + String(byte, radix: 16, uppercase: true)
            } else {
                path.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        if path.isEmpty || !path.hasPrefix("/") { path = "/" + path }
        return "\(scheme)://\(userPart)\(host)\(port)\(path)"
    }
}

/// E-mail addresses: a dot-atom local part (RFC 5322, no quoted forms) and a normalised domain.
enum EmailValue {
    static func normalise(_ text: Substring) throws(ValueError) -> String {
        func fail(_ why: String) -> ValueError {
            ValueError(.invalidEmail, "'\(text.preview)' is not an e-mail address: \(why)")
        }
        guard let at = text.lastIndex(of: "@") else { throw fail("expected local@domain") }
        let local = text[..<at]
        let domain = text[text.index(after: at)...]
        guard !local.isEmpty, local.utf8.count <= 64 else { throw fail("the local part must have 1-64 characters") }
        let allowed = Set("!#$%&'*+-/=?^_`{|}~.".utf8)
        guard local.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || allowed.contains($0) })
        else { throw fail("the local part holds a character that needs quoting") }
        guard local.first != ".", local.last != ".", !local.contains("..") else {
            throw fail("dots in the local part must separate words")
        }
        guard !domain.isEmpty else { throw fail("empty domain") }
        return "\(local)@\(try DomainName.normalise(domain))"
    }
}
