import Foundation

/// The repository's `.venv` (deploy/setup-dev.sh makes it), where the third-party Python packages
/// the tests check Rampart against are installed.
public enum Venv {
    /// Not standardized: that would resolve the venv's symbolic link to the interpreter outside it.
    public static let python = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path + "/../../.venv/bin/python3"

    /// `python` when it can import `modules` (comma-separated, as in an import statement), else nil.
    public static func python(importing modules: String) -> String? {
        guard FileManager.default.isExecutableFile(atPath: python) else { return nil }
        let probe = Process()
        // Through env: Process resolves symbolic links, and the venv's python3 is one.
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = [python, "-c", "import \(modules)"]
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return nil }
        probe.waitUntilExit()
        return probe.terminationStatus == 0 ? python : nil
    }
}
