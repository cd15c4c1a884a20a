import Foundation
import Logging
import RampartCore
import RampartStore

/// The rules directory under the state directory, which follows the store's `rule` table: files
/// are written after their commit (each atomically, through a temporary file and a rename) and
/// brought back to the table at start and on reload, so a crash between the two loses nothing.
public struct RuleDirectory: Sendable {
    public let root: URL
    let logger: Logger

    public init(stateDirectory: String, logger: Logger) {
        root = URL(fileURLWithPath: stateDirectory).appendingPathComponent("rules")
        self.logger = logger
    }

    /// Writes the files; a failure is logged (the store has the rule; the next reconcile writes it).
    public func write(_ files: [RuleFile]) {
        for file in files {
            do {
                try write(file)
            } catch {
                logger.error("rule.write_failed", metadata: ["rampart.path": "\(file.relativePath)", "rampart.error": "\(error)"])
            }
        }
    }

    func write(_ file: RuleFile) throws {
        let url = root.deletingLastPathComponent().appendingPathComponent(file.relativePath)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(file.content.utf8).write(to: url, options: .atomic)
    }

    /// Rewrites every file that is missing or differs from the store; returns how many.
    @discardableResult
    public func reconcile(_ files: [RuleFile]) -> Int {
        let stale = files.filter { file in
            let url = root.deletingLastPathComponent().appendingPathComponent(file.relativePath)
            return FileManager.default.contents(atPath: url.path) != Data(file.content.utf8)
        }
        write(stale)
        return stale.count
    }
}
