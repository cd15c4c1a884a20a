import FuzzDriver
import RampartCore

/// Indicator values: normalisation never crashes, and what it returns normalises to itself.
/// Regular expressions (an input with a NUL is a pattern, then a text): compiling and matching
/// never crash, and a pattern without a group finds a match exactly when it matches.
@main
enum FuzzValues {
    static func main() {
        runFuzzer { bytes in
            if let nul = bytes.firstIndex(of: 0) {
                let pattern = String(decoding: bytes[..<nul], as: UTF8.self)
                let text = String(decoding: bytes[(nul + 1)...], as: UTF8.self)
                guard let regex = try? LinearRegex(pattern) else { return }
                let found = regex.firstMatch(in: text)
                // Scalars, as the regex reads them: a match may end inside a character (before a
                // combining mark), where `text.contains` compares characters.
                if let found, !found.isEmpty, !Array(text.unicodeScalars).contains(Array(found.unicodeScalars)) {
                    fatalError("'\(pattern)' found '\(found)', which is not in the text")
                }
                if !regex.hasGroup, regex.matches(text) != (found != nil) {
                    fatalError("'\(pattern)' matches '\(text)': \(regex.matches(text)), but firstMatch found \(found.map { "'\($0)'" } ?? "nothing")")
                }
                return
            }
            let text = String(decoding: bytes, as: UTF8.self)
            if let (kind, value) = try? IndicatorValue.normalise(text) {
                guard let (again, same) = try? IndicatorValue.normalise(value, as: kind), again == kind, same == value else {
                    fatalError("normalising '\(value)' (\(kind)) again gave something else")
                }
            }
        }
    }
}
