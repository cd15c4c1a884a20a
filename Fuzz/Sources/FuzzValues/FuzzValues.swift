import FuzzDriver
import RampartCore

/// Indicator values: normalisation never crashes, and what it returns normalises to itself.
@main
enum FuzzValues {
    static func main() {
        runFuzzer { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            if let (kind, value) = try? IndicatorValue.normalise(text) {
                guard let (again, same) = try? IndicatorValue.normalise(value, as: kind), again == kind, same == value else {
                    fatalError("normalising '\(value)' (\(kind)) again gave something else")
                }
            }
        }
    }
}
