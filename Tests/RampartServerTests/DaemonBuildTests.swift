import Foundation
import Logging
import RampartCore
import RampartServer
import Testing

struct DaemonBuildTests {
    /// A build that fails after the store opened (here: a signing key that is not one) leaves
    /// nothing running: no writer thread keeps the database open.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/proc/self/fd"), "needs /proc/self/fd"))
    func aFailedBuildLeavesTheDatabaseClosed() throws {
        let node = try TestNode(extraYAML: "signing: {key_file: bad.key}")
        let directory = (node.config.path as NSString).deletingLastPathComponent
        try "not a key".write(toFile: directory + "/bad.key", atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { _ = try Daemon.build(config: node.config, logger: Logger(label: "test")) }
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")
        }
        #expect(open.filter { $0.hasPrefix(directory) } == [])
    }
}
