import Foundation

/// Normalisation of domain names: lower case, Unicode labels to Punycode (`xn--`), no trailing dot.
enum DomainName {
    static let maxLength = 253

    /// Returns the canonical ASCII form of a domain name, or throws saying what is wrong with it.
    static func normalise(_ raw: Substring) throws(ValueError) -> String {
        func fail(_ why: String) -> ValueError {
            ValueError(.invalidDomain, "'\(raw.preview)' is not a domain name: \(why)")
        }
        guard raw.utf8.count <= 1024 else { throw ValueError(.tooLong, "domain name of \(raw.utf8.count) bytes; at most \(maxLength) are allowed") }
        var text = String(raw)
        let isASCII = text.utf8.allSatisfy { $0 < 0x80 }
        if !isASCII {
            // UTS 46 style mapping: ideographic full stops are dots, compatibility forms fold, case folds.
            text = text.replacingOccurrences(of: "\u{3002}", with: ".")
            text = text.precomposedStringWithCompatibilityMapping.lowercased().precomposedStringWithCanonicalMapping
        }
        if text.hasSuffix(".") { text.removeLast() }
        guard !text.isEmpty else { throw fail("empty") }
        var labels: [String] = []
        for label in text.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty else { throw fail("empty label") }
            if label.utf8.allSatisfy({ $0 < 0x80 }) {
                labels.append(try asciiLabel(label, fail))
            } else {
                labels.append(try unicodeLabel(label, fail))
            }
        }
        guard labels.count >= 2 else { throw fail("a single label; expected a name such as example.com") }
        let tld = labels[labels.count - 1]
        guard !tld.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            throw fail("the last label is numeric; IP addresses are written as four decimal octets without leading zeros")
        }
        guard !tld.contains("_") else { throw fail("'_' is not allowed in the top-level label") }
        let result = labels.joined(separator: ".")
        guard result.utf8.count <= maxLength else {
            throw ValueError(.tooLong, "domain name of \(result.utf8.count) characters; at most \(maxLength) are allowed")
        }
        return result
    }

    private static func asciiLabel(_ label: Substring, _ fail: (String) -> ValueError) throws(ValueError) -> String {
        let lower = label.lowercased()
        guard lower.utf8.count <= 63 else { throw fail("label '\(label.preview)' is longer than 63 characters") }
        for byte in lower.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"):
                continue
            default:
                throw fail("label '\(label.preview)' holds a character other than letters, digits, '-' and '_'")
            }
        }
        guard lower.first != "-", lower.last != "-" else { throw fail("label '\(label.preview)' starts or ends with '-'") }
        if lower.hasPrefix("xn--") {
            let encoded = lower.dropFirst(4)
            guard let decoded = Punycode.decode(encoded), decoded.contains(where: { !$0.isASCII }),
                decoded.allSatisfy(isAllowedInLabel), Punycode.encode(decoded) == String(encoded)
            else {
                throw fail("label '\(label.preview)' is not valid Punycode")
            }
        }
        return lower
    }

    private static func unicodeLabel(_ label: Substring, _ fail: (String) -> ValueError) throws(ValueError) -> String {
        let scalars = Array(label.unicodeScalars)
        guard let bad = scalars.first(where: { !isAllowedInLabel($0) }) else {
            guard let encoded = Punycode.encode(scalars) else { throw fail("label '\(label.preview)' cannot be encoded") }
            let ascii = "xn--" + encoded
            guard ascii.utf8.count <= 63 else { throw fail("label '\(label.preview)' is longer than 63 characters once encoded") }
            guard scalars.first != "-", scalars.last != "-" else { throw fail("label '\(label.preview)' starts or ends with '-'") }
            return ascii
        }
        throw fail("label '\(label.preview)' holds U+\(String(bad.value, radix: 16, uppercase: true)), which is not a letter, digit or mark")
    }

    static func isAllowedInLabel(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII {
            let b = UInt8(scalar.value)
            return (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b == 45 || b == 95
        }
        switch scalar.properties.generalCategory {
        case .lowercaseLetter, .otherLetter, .modifierLetter, .titlecaseLetter, .decimalNumber,
            .nonspacingMark, .spacingMark, .enclosingMark:
            return true
        default:
            return false
        }
    }
}
