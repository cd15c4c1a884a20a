import ArgumentParser
import Foundation
import RampartCore

/// `--config FILE`, shared by every subcommand. Without it: `$RAMPART_CONFIG`, then the
/// development config when the binary runs from a checkout, then /etc/rampart/rampart.yaml.
struct ConfigOptions: ParsableArguments {
    @Option(
        name: .long, help: "The configuration file (default: $RAMPART_CONFIG, the checkout's deploy/rampart.dev.yaml, or /etc/rampart/rampart.yaml).")
    var config: String?

    var path: String { config ?? ConfigOptions.defaultPath() }

    func load() throws -> Config {
        do {
            return try Config.load(path: path)
        } catch {
            throw CLIError("\(error)")
        }
    }

    static func defaultPath() -> String {
        if let path = ProcessInfo.processInfo.environment["RAMPART_CONFIG"], !path.isEmpty { return path }
        if let checkout = checkoutDirectory() { return checkout + "/deploy/rampart.dev.yaml" }
        return "/etc/rampart/rampart.yaml"
    }

    /// The source checkout the running binary was built in (it lives under `.build/`), if any.
    static func checkoutDirectory() -> String? {
        guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = directory.path
            if FileManager.default.fileExists(atPath: candidate + "/Package.swift"),
                FileManager.default.fileExists(atPath: candidate + "/deploy/rampart.dev.yaml")
            {
                return candidate
            }
            directory.deleteLastPathComponent()
        }
        return nil
    }
}

/// A failure to show the user as it is, with exit code 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
