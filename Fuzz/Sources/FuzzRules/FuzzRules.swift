import FuzzDriver
import RampartCore

/// Detection rules' syntax checks, every format (the first byte picks it): a rule or a refusal.
@main
enum FuzzRules {
    static func main() {
        runFuzzer { bytes in
            guard let first = bytes.first else { return }
            let format = RuleFormat.allCases[Int(first) % RuleFormat.allCases.count]
            _ = try? Rule(format: format, content: String(decoding: bytes.dropFirst(), as: UTF8.self))
        }
    }
}
