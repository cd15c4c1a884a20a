import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where tests put their files: under a directory of this test process's own in the system's
/// temporary directory, removed when the process exits. One left behind by a run that was killed
/// is removed by the next (its process is gone), so test runs never fill the disk.
public enum Scratch {
    private static let prefix = "rampart-tests-"

    private static let root: URL = {
        let base = FileManager.default.temporaryDirectory
        for name in (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), kill(pid, 0) != 0, errno == ESRCH else { continue }
            try? FileManager.default.removeItem(at: base.appendingPathComponent(name))
        }
        let root = base.appendingPathComponent("\(prefix)\(getpid())")
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        atexit { Scratch.removeRoot() }
        return root
    }()

    private static func removeRoot() {
        try? FileManager.default.removeItem(at: root)
    }

    /// A new path (not created) for one test's files: `NAME-UUID` under this process's directory.
    public static func directory(_ name: String) -> URL {
        root.appendingPathComponent("\(name)-\(UUID().uuidString)")
    }
}
