import Foundation
import Testing

/// The code keeps the repository's `.swift-format` (line length 150, as Hummingbird): a new
/// violation fails the suite, and so CI. `swift format -i -r Sources Tests Benchmarks Plugins Fuzz` fixes most.
@Suite struct FormatTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL.path

    /// swift-format ships with the Swift toolchain (6.0 and later), next to `swift`.
    static let swiftFormat: String? = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        .map { "\($0)/swift-format" }.first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: swiftFormat != nil, "swift-format is not on PATH (it comes with the Swift toolchain)"))
    func theCodeKeepsTheRepositorysFormat() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(Self.swiftFormat))
        process.arguments = ["lint", "--strict", "--recursive", "Sources", "Tests", "Benchmarks", "Plugins", "Fuzz", "Package.swift"]
        process.currentDirectoryURL = URL(fileURLWithPath: Self.root)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0 && text.isEmpty, "swift-format lint:\n\(text)")
    }
}
