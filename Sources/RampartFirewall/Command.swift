import Foundation
import RampartCore
import Synchronization

/// Runs a command the way every external program Rampart starts is run (`exec` actions, `nft`,
/// the `exec` firewall backend): argv only, never a shell; the given environment and nothing of
/// the daemon's; input on stdin; a timeout (SIGTERM to its process group, then SIGKILL a second
/// later); the first `outputLimit` bytes (4 KiB unless asked) of each output stream kept.
public enum Command {
    public enum Outcome: Sendable {
        case exited(status: Int32, signalled: Bool, timedOut: Bool, stdout: String, stderr: String, milliseconds: Int)
        case notRun(String)

        /// The command's standard output when it exited 0 in time; otherwise what went wrong.
        public func output(of what: String, timeout: Duration) throws(Failure) -> String {
            switch self {
            case .exited(0, false, false, let stdout, _, _):
                return stdout
            case .exited(let status, let signalled, let timedOut, _, let stderr, _):
                let why = timedOut ? "timed out after \(timeout.text)" : signalled ? "killed by signal \(status)" : "exit status \(status)"
                throw Failure(description: "\(what) failed (\(why)): \(stderr.prefix(1000))")
            case .notRun(let why):
                throw Failure(description: why)
            }
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static let defaultOutputLimit = 4096

    /// Writing to a command that has exited must fail with EPIPE, not kill the daemon.
    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    /// Runs one command to completion on threads of its own (Process blocks).
    public static func run(
        _ argv: [String], environment: [String: String], input: [UInt8], timeout: Duration, outputLimit: Int = defaultOutputLimit
    ) async -> Outcome {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: runBlocking(argv, environment: environment, input: input, timeout: timeout, outputLimit: outputLimit))
            }
        }
    }

    /// `run`, on the calling thread, which it blocks until the command is done.
    public static func runBlocking(
        _ argv: [String], environment: [String: String], input: [UInt8], timeout: Duration, outputLimit: Int = defaultOutputLimit
    ) -> Outcome {
        _ = ignoreSIGPIPE
        let start = ContinuousClock.now
        let child: Child
        do {
            child = try Child.spawn(argv, environment: environment)
        } catch {
            return .notRun("could not start \(argv[0]): \(error)")
        }
        // The watchdog and the two readers are threads of their own: on Dispatch's global queues
        // they could wait behind other blocked work (another command's output) and fire late.
        let timedOut = Atomic<Bool>(false)
        let watchdog = Watchdog()
        Thread.detachNewThread {
            guard !watchdog.waitForExit(until: Date().addingTimeInterval(Double(timeout.milliseconds) / 1000)) else { return }
            timedOut.store(true, ordering: .releasing)
            child.signalGroup(SIGTERM)
            if !watchdog.waitForExit(until: Date().addingTimeInterval(1)) { child.signalGroup(SIGKILL) }
        }
        let captured = Mutex<(stdout: Data, stderr: Data)>((Data(), Data()))
        let readers = DispatchSemaphore(value: 0)
        for (fd, isOutput) in [(child.stdout, true), (child.stderr, false)] {
            Thread.detachNewThread {
                let data = readCapped(FileHandle(fileDescriptor: fd, closeOnDealloc: true), limit: outputLimit)
                captured.withLock { if isOutput { $0.stdout = data } else { $0.stderr = data } }
                readers.signal()
            }
        }
        // A command that exits without reading its input makes this write fail with EPIPE
        // (SIGPIPE is ignored): that is its business, not an error.
        let stdin = FileHandle(fileDescriptor: child.stdin, closeOnDealloc: true)
        try? stdin.write(contentsOf: Data(input))
        try? stdin.close()
        let status = child.wait()
        watchdog.exited()
        readers.wait()
        readers.wait()
        let elapsed = ContinuousClock.now - start
        let (stdout, stderr) = captured.withLock { ($0.stdout, $0.stderr) }
        return .exited(
            status: status.code, signalled: status.signalled, timedOut: timedOut.load(ordering: .acquiring),
            stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self),
            milliseconds: Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        )
    }

    /// Tells a command's watchdog thread that it exited.
    final class Watchdog: @unchecked Sendable {
        private let condition = NSCondition()
        private var done = false

        func exited() {
            condition.lock()
            done = true
            condition.broadcast()
            condition.unlock()
        }

        /// Whether the command exited before `deadline`.
        func waitForExit(until deadline: Date) -> Bool {
            condition.lock()
            defer { condition.unlock() }
            while !done && condition.wait(until: deadline) {}
            return done
        }
    }

    /// Reads to the end, keeping the first `limit` bytes (the rest is drained so the command never blocks).
    static func readCapped(_ handle: FileHandle, limit: Int) -> Data {
        var kept = Data()
        while let chunk = try? handle.read(upToCount: 65536), !chunk.isEmpty {
            if kept.count < limit { kept.append(chunk.prefix(limit - kept.count)) }
        }
        return kept
    }
}

/// A command started with posix_spawn: its own process group (so a timeout reaches what it
/// started), every signal back to its default disposition and unblocked (the daemon ignores or
/// traps SIGTERM, SIGHUP and SIGPIPE, and children would inherit that), pipes for its standard
/// streams and no other descriptor of the daemon's.
struct Child: Sendable {
    let pid: pid_t
    let stdin: Int32
    let stdout: Int32
    let stderr: Int32

    struct SpawnError: Error, CustomStringConvertible {
        let description: String
    }

    static func spawn(_ argv: [String], environment: [String: String]) throws -> Child {
        var pipes: [[Int32]] = []
        for _ in 0..<3 {
            var fds: [Int32] = [-1, -1]
            guard pipe(&fds) == 0 else {
                let reason = String(cString: strerror(errno))
                pipes.joined().forEach { close($0) }
                throw SpawnError(description: "pipe: \(reason)")
            }
            // Only the child's dup2'd copies may cross into it (or into any other command started meanwhile).
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            pipes.append(fds)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipes[0][0], 0)
        posix_spawn_file_actions_adddup2(&actions, pipes[1][1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipes[2][1], 2)
        closeTheRest(&actions)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, argv[0], &actions, &attributes, cArgv, cEnv)
        close(pipes[0][0])
        close(pipes[1][1])
        close(pipes[2][1])
        guard result == 0 else {
            close(pipes[0][1])
            close(pipes[1][0])
            close(pipes[2][0])
            throw SpawnError(description: String(cString: strerror(result)))
        }
        return Child(pid: pid, stdin: pipes[0][1], stdout: pipes[1][0], stderr: pipes[2][0])
    }

    /// Nothing else of the daemon's may reach the child: SwiftNIO opens its sockets without
    /// FD_CLOEXEC, and a child holding the listening socket keeps the port taken after the daemon
    /// dies (a restart cannot bind it) and clients' connections open after the daemon closed them.
    /// glibc 2.34's `posix_spawn_file_actions_addclosefrom_np` does it in the child; Swift's Glibc
    /// module leaves that GNU extension out, so it is looked up. Without it, every descriptor open
    /// now is marked close-on-exec (one opened meanwhile by another thread may still slip through).
    private static func closeTheRest(_ actions: inout posix_spawn_file_actions_t) {
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
            _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
            return
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            if let fd = Int32(name), fd > 2 { _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC) }
        }
    }

    func signalGroup(_ signal: Int32) {
        kill(-pid, signal)
    }

    /// Waits for the command to end: its exit status, or the signal that ended it.
    func wait() -> (code: Int32, signalled: Bool) {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        if status & 0x7f == 0 { return ((status >> 8) & 0xff, false) }
        return (status & 0x7f, true)
    }
}
