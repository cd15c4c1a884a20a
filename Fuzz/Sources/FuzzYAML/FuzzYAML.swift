import FuzzDriver
import RampartCore

/// The YAML loaders: the configuration and a playbook from the same text; every outcome is a
/// value or diagnostics, never a crash.
@main
enum FuzzYAML {
    static func main() {
        runFuzzer { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            guard let root = try? YAMLSource.parse(text, file: "fuzz.yaml") else { return }
            _ = try? Config.parse(root, path: "/nonexistent/fuzz.yaml")
            _ = try? PlaybookLoader.parse(root, file: "fuzz.yaml", lists: [:])
        }
    }
}
