import Foundation
import RampartTesting
import Testing

/// The libFuzzer targets (Fuzz/, a package of their own): each replays its seed corpus and fuzzes
/// for 10 s without a crash, a leak or a failed check. `Fuzz/run.sh SECONDS` runs them longer.
@Suite struct FuzzTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fuzz/run.sh")
        .standardizedFileURL.path

    /// libFuzzer's runtime in the toolchain of the `swift` on PATH, or why the targets cannot be built.
    static let unavailable: String? = {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/swift" }
        guard let swift = path.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { return "swift is not on PATH" }
        let real = URL(fileURLWithPath: swift).resolvingSymlinksInPath().deletingLastPathComponent().deletingLastPathComponent()
        let clang = real.appendingPathComponent("lib/clang").path
        let found = (try? FileManager.default.contentsOfDirectory(atPath: clang))?.contains {
            FileManager.default.fileExists(atPath: "\(clang)/\($0)/lib/linux/libclang_rt.fuzzer-x86_64.a")
        }
        return found == true ? nil : "this Swift toolchain has no libFuzzer runtime (\(clang)/*/lib/linux/libclang_rt.fuzzer-x86_64.a)"
    }()

    @Test(.enabled(if: unavailable == nil, "\(unavailable ?? "")"))
    func everyTargetRunsWithoutAFinding() async throws {
        let out = try await onOwnThread { try run("/bin/bash", [Self.script, "10"]) }
        #expect(out.status == 0, "\(out.stdout)\(out.stderr.suffix(4000))")
        print(out.stdout)
        // One line per target that run.sh names.
        let script = try String(contentsOfFile: Self.script, encoding: .utf8)
        let targets = script.firstMatch(of: /TARGETS=\(([^)]*)\)/).map { $0.1.split(separator: " ").count } ?? 0
        #expect(targets >= 7)
        #expect(out.stdout.split(separator: "\n").filter { $0.hasSuffix("no failure") }.count == targets, "\(out.stdout)")
    }
}
