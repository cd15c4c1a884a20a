import Foundation
import Testing

@testable import RampartCore

/// Playbook regexes match what a backtracking engine matches, in linear time, and refuse what
/// would need backtracking.
@Suite struct LinearRegexTests {
    static let patterns = [
        #"^[a-z0-9]{16,}\.top$"#, #"\.onion$"#, #"^(www\.)?example\.(com|net)$"#, "a+b*c?", #"^\d{1,3}(\.\d{1,3}){3}$"#,
        #"[^.]+\.ru$"#, "(?:ab|cd)+e", "x{2,3}y", #"\w+@\w+\.\w+"#, "^$", "colou?r", #"[a-c\d_-]+!"#, "(a|b)*abb$", #"\s"#, "(?i)EVIL",
        "^(a+)+$", ".*.*x", "[]a]", "a{2}",
    ]
    static let texts = [
        "", "a", "abc", "aabbc", "abb", "babb", "x", "xx", "xxy", "xxxy", "colour", "color", "192.168.1.10", "1.2.3", "evil.com",
        "mail@example.com", "abcdefghijklmnop.top", "short.top", "example.com", "www.example.net", "www.example.org", "ababe",
        "cdcde", "ae", "bad.ru", "a.b.ru", "onion", "x.onion", "a b", "AB-9_!", "Evil.example", "]", "aa", "x\nx", "a\u{2028}x", "a{,2}",
    ]

    @Test func matchesWhatFoundationMatches() throws {
        for pattern in Self.patterns {
            let linear = try LinearRegex(pattern)
            let reference = try NSRegularExpression(pattern: pattern)
            for text in Self.texts + [String(repeating: "a", count: 30)] {
                let expected = reference.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
                #expect(linear.matches(text) == expected, "\(pattern) on \(text)")
            }
        }
    }

    /// Patterns that make a backtracking engine take seconds to hours on short values take
    /// milliseconds on a 4 KB one here.
    /// What the first group (else the whole pattern) matched is what a backtracking engine's
    /// leftmost match gives, lazy and alternative forms included.
    @Test func firstMatchIsWhatFoundationFinds() throws {
        let extra = [
            #"(\d+\.\d+\.\d+\.\d+)"#, #"blocked (\S+) port"#, "(a|ab)(c|bcd)", "(a*?)b", "x(y?)", "(a+?)a*", "(?i)src=([A-Z.0-9]+)",
            "(?:ab)+(c)?", "(a)|b", #"^\w+ (\w+)$"#, "$", "(x$)|$", "($)", "(^a)?",
        ]
        let texts = Self.texts + ["2026-01-01 blocked 77.90.185.20 port 22", "ip=1.2.3.4 and 5.6.7.8", "abcd", "aaab", "SRC=10.0.0.1 dst", "b"]
        for pattern in Self.patterns.filter({ $0 != "^(a+)+$" }) + extra {
            let linear = try LinearRegex(pattern)
            let reference = try NSRegularExpression(pattern: pattern)
            for text in texts {
                var expected: Substring?
                if let match = reference.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) {
                    let range = match.numberOfRanges > 1 ? match.range(at: 1) : match.range
                    expected = Range(range, in: text).map { text[$0] }
                }
                #expect(linear.firstMatch(in: text) == expected, "\(pattern) on \(text)")
            }
        }
    }

    @Test func hostilePatternsStayLinear() throws {
        let long = String(repeating: "a", count: 4096)
        for pattern in ["(a+)+$", ".*.*.*x", "(a|aa)+$", "a*a*a*a*b", "(.*a){12}x"] {
            let regex = try LinearRegex(pattern)
            let start = ContinuousClock.now
            _ = regex.matches(long + "!")
            _ = regex.firstMatch(in: long + "!")
            #expect(ContinuousClock.now - start < .seconds(2), "\(pattern)")
        }
    }

    @Test func refusesWhatNeedsBacktrackingWithAReason() {
        for (pattern, reason) in [
            (#"(a)\1"#, "backreferences"), ("(?=a)b", "lookaround"), (#"\bword"#, "word boundaries"), ("a{1,5000}", "1000"),
            ("(a", "not closed"), ("a)", "unbalanced"), ("*a", "repeats nothing"), ("[z-a]", "backwards"), ("[abc", "not closed"),
            ("a{3,1}", "wrong way round"), ("a{99999999999999999999}", "1000"), ("a**", "repeats a repetition"),
            ("a{2}{3}", "repeats a repetition"), ("a+?+", "repeats a repetition"),
            (String(repeating: "(", count: 101) + "a" + String(repeating: ")", count: 101), "nest at most 100"),
        ] {
            #expect(throws: ValueError.self, "\(pattern)") { _ = try LinearRegex(pattern) }
            do {
                _ = try LinearRegex(pattern)
            } catch {
                #expect(error.message.contains(reason), "\(pattern): \(error.message)")
            }
        }
    }

    /// A brace that is not a count of digits is a literal, as in PCRE: the fuzzer found that
    /// `{-1,3}` was read as a count of -1 and crashed the daemon.
    @Test func aBraceWithoutDigitsIsALiteral() throws {
        for (pattern, text, found) in [
            (#"^\({-1,3}()$"#, "({-1,3}", ""), ("a{-1,3}", "a{-1,3}", "a{-1,3}"), ("a{1,x}", "a{1,x}", "a{1,x}"), ("a{ 2}", "a{ 2}", "a{ 2}"),
            ("a{1,-2}", "a{1,-2}", "a{1,-2}"),
        ] {
            let regex = try LinearRegex(pattern)
            #expect(regex.matches(text), "\(pattern)")
            #expect(!regex.matches("aa"), "\(pattern)")
            #expect(regex.firstMatch(in: text) == found[...], "\(pattern)")
        }
    }

    /// Groups nest up to a bound: the fuzzer crashed the parser's recursion with 1,400 of them.
    @Test func groupsNestUpToABound() throws {
        let deep = try LinearRegex("^" + String(repeating: "(?:a|", count: 100) + "b" + String(repeating: ")*", count: 100) + "$")
        #expect(deep.matches("aab") && !deep.matches("ac"))
        let hostile = String(repeating: "(", count: 100_000)
        #expect(throws: ValueError.self) { _ = try LinearRegex(hostile) }
    }
}
