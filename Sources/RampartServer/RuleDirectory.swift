import Foundation
import Logging
import RampartCore
import RampartStore

/// The rules directory under the state directory, which follows the store's installed rules:
/// files are written (each atomically, through a temporary file and a rename) or removed after
/// their commit, and brought back to the store at start and on reload, so a crash between the two
/// loses nothing. Rampart owns the directory: a file in it that no installed rule names is removed.
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
        let url = url(of: file)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(file.content.utf8).write(to: url, options: .atomic)
    }

    /// Removes files; a failure is logged (the next reconcile removes them).
    public func remove(_ files: [RuleFile]) {
        for file in files {
            do {
                try FileManager.default.removeItem(at: url(of: file))
            } catch CocoaError.fileNoSuchFile {
                continue
            } catch {
                logger.error("rule.remove_failed", metadata: ["rampart.path": "\(file.relativePath)", "rampart.error": "\(error)"])
            }
        }
    }

    func url(of file: RuleFile) -> URL {
        root.deletingLastPathComponent().appendingPathComponent(file.relativePath)
    }

    /// Rewrites every file that is missing or differs from the store and removes the files no
    /// installed rule names; returns how many files changed.
    @discardableResult
    public func reconcile(_ files: [RuleFile]) -> Int {
        let stale = files.filter { FileManager.default.contents(atPath: url(of: $0).path) != Data($0.content.utf8) }
        write(stale)
        let expected = Set(files.map(\.relativePath))
        var extra: [URL] = []
        for format in RuleFormat.allCases {
            let directory = root.appendingPathComponent(format.rawValue)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] where !name.hasPrefix(".") {
                if !expected.contains("rules/\(format.rawValue)/\(name)") { extra.append(directory.appendingPathComponent(name)) }
            }
        }
        for url in extra {
            do { try FileManager.default.removeItem(at: url) } catch {
                logger.error("rule.remove_failed", metadata: ["rampart.path": "\(url.path)", "rampart.error": "\(error)"])
            }
        }
        return stale.count + extra.count
    }
}
