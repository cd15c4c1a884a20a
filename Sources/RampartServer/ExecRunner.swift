import Foundation
import Logging
import RampartCore
import RampartStore
import ServiceLifecycle
import Synchronization

/// A command an `exec` action runs once the item that caused it is committed.
public struct ExecJob: Sendable {
    public var item: String
    public var playbook: String
    public var argv: [String]
    /// The item as JSON, for the command's standard input.
    public var input: [UInt8]
    public var environment: [String: String]
    public var timeout: Duration
}

/// Runs `exec` actions: argv only (never a shell), a clean environment with `RAMPART_*`
/// variables, the item as JSON on stdin, a timeout (SIGTERM, then SIGKILL a second later), at most
/// `maxRunning` at once and `maxQueued` waiting; output is captured (the first 4 KiB of each
/// stream) into an `action.exec` audit entry, as is every failure, timeout and overflow.
public final class ExecRunner: Service, Sendable {
    let store: Store
    let logger: Logger
    let maxRunning: Int
    let maxQueued: Int
    let now: @Sendable () -> Date
    private let queue = Mutex<[ExecJob]>([])
    private let running = Atomic<Int>(0)
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    static let outputLimit = 4096

    public init(store: Store, logger: Logger, maxRunning: Int = 4, maxQueued: Int = 10_000, now: @escaping @Sendable () -> Date) {
        self.store = store
        self.logger = logger
        self.maxRunning = maxRunning
        self.maxQueued = maxQueued
        self.now = now
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        // Writing an item to a command that has exited must fail with EPIPE, not kill the daemon.
        signal(SIGPIPE, SIG_IGN)
    }

    /// Queues jobs; what does not fit is audited as dropped.
    public func submit(_ jobs: [ExecJob]) {
        guard !jobs.isEmpty else { return }
        let overflow: [ExecJob] = queue.withLock { queue in
            let room = max(0, maxQueued - queue.count)
            queue += jobs.prefix(room)
            return Array(jobs.dropFirst(room))
        }
        if !overflow.isEmpty {
            logger.error("exec.dropped", metadata: ["rampart.jobs": "\(overflow.count)", "rampart.reason": "queue full"])
            Task { try? await self.record(overflow.map { ($0, Outcome.notRun("dropped: \(self.maxQueued) exec actions were already waiting")) }) }
        }
        wake.yield()
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await _ in wakeups {
                    while running.load(ordering: .acquiring) < maxRunning, let job = queue.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
                        running.add(1, ordering: .acquiringAndReleasing)
                        group.addTask {
                            let outcome = await ExecRunner.execute(job)
                            try? await self.record([(job, outcome)])
                            self.running.subtract(1, ordering: .acquiringAndReleasing)
                            self.wake.yield()
                        }
                    }
                }
            }
            // Shutting down: what never started is recorded as such.
            let left = queue.withLock { queue in defer { queue.removeAll() }; return queue }
            if !left.isEmpty { try? await record(left.map { ($0, Outcome.notRun("not run: the daemon stopped first")) }) }
        } onGracefulShutdown: {
            self.wake.finish()
        }
    }

    enum Outcome: Sendable {
        case exited(status: Int32, signalled: Bool, timedOut: Bool, stdout: String, stderr: String, milliseconds: Int)
        case notRun(String)
    }

    func record(_ results: [(ExecJob, Outcome)]) async throws {
        let at = now()
        _ = try await store.write { tx in
            for (job, outcome) in results {
                try tx.audit("action.exec", subject: job.item, at: at) { w in
                    w.field("playbook", job.playbook)
                    w.field("argv", job.argv)
                    switch outcome {
                    case .exited(let status, let signalled, let timedOut, let stdout, let stderr, let milliseconds):
                        w.field(signalled ? "signal" : "exit_status", Int(status))
                        w.field("timed_out", timedOut)
                        w.field("duration_ms", milliseconds)
                        w.field("stdout", stdout)
                        w.field("stderr", stderr)
                    case .notRun(let why):
                        w.field("error", why)
                    }
                }
            }
        }
        for (job, outcome) in results {
            switch outcome {
            case .exited(let status, let signalled, let timedOut, _, _, _) where status != 0 || signalled || timedOut:
                logger.warning(
                    "exec.failed",
                    metadata: ["rampart.playbook": "\(job.playbook)", "rampart.item": "\(job.item)", "rampart.status": "\(status)", "rampart.timed_out": "\(timedOut)"]
                )
            case .notRun(let why):
                logger.warning("exec.not_run", metadata: ["rampart.playbook": "\(job.playbook)", "rampart.item": "\(job.item)", "rampart.reason": "\(why)"])
            default:
                break
            }
        }
    }

    /// Runs one command to completion on threads of its own (Process blocks).
    static func execute(_ job: ExecJob) async -> Outcome {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: executeBlocking(job))
            }
        }
    }

    static func executeBlocking(_ job: ExecJob) -> Outcome {
        let start = ContinuousClock.now
        let child: Child
        do {
            child = try Child.spawn(job.argv, environment: job.environment)
        } catch {
            return .notRun("could not start \(job.argv[0]): \(error)")
        }
        let timedOut = Atomic<Bool>(false)
        let exited = Atomic<Bool>(false)
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(job.timeout.milliseconds))) {
            guard !exited.load(ordering: .acquiring) else { return }
            timedOut.store(true, ordering: .releasing)
            child.signalGroup(SIGTERM)
            DispatchQueue.global().asyncAfter(deadline: .now() + 1) {
                if !exited.load(ordering: .acquiring) { child.signalGroup(SIGKILL) }
            }
        }
        let captured = Mutex<(stdout: Data, stderr: Data)>((Data(), Data()))
        let readers = DispatchGroup()
        for (fd, isOutput) in [(child.stdout, true), (child.stderr, false)] {
            DispatchQueue.global().async(group: readers) {
                let data = readCapped(FileHandle(fileDescriptor: fd, closeOnDealloc: true), limit: outputLimit)
                captured.withLock { if isOutput { $0.stdout = data } else { $0.stderr = data } }
            }
        }
        // A command that exits without reading its input makes this write fail with EPIPE
        // (SIGPIPE is ignored, see `init`): that is its business, not an error.
        let input = FileHandle(fileDescriptor: child.stdin, closeOnDealloc: true)
        try? input.write(contentsOf: Data(job.input))
        try? input.close()
        let status = child.wait()
        exited.store(true, ordering: .releasing)
        readers.wait()
        let elapsed = ContinuousClock.now - start
        let (stdout, stderr) = captured.withLock { ($0.stdout, $0.stderr) }
        return .exited(
            status: status.code, signalled: status.signalled, timedOut: timedOut.load(ordering: .acquiring),
            stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self),
            milliseconds: Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        )
    }

    /// Reads to the end, keeping the first `limit` bytes (the rest is drained so the command never blocks).
    static func readCapped(_ handle: FileHandle, limit: Int) -> Data {
        var kept = Data()
        while let chunk = try? handle.read(upToCount: 65536), !chunk.isEmpty {
            if kept.count < limit { kept.append(chunk.prefix(limit - kept.count)) }
        }
        return kept
    }

    /// The environment of an `exec` command: nothing of the daemon's own (it may hold tokens).
    public static func environment(for item: Item, playbook: String) -> [String: String] {
        var environment = [
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "RAMPART_ITEM_ID": item.id, "RAMPART_PLAYBOOK": playbook,
            "RAMPART_VIA": item.via, "RAMPART_ORIGIN": item.origin,
        ]
        if let indicator = item.indicator {
            environment["RAMPART_KIND"] = indicator.kind.rawValue
            environment["RAMPART_VALUE"] = indicator.value
            environment["RAMPART_CONFIDENCE"] = String(indicator.confidence)
            environment["RAMPART_SEVERITY"] = indicator.severity.rawValue
            environment["RAMPART_TLP"] = indicator.tlp.rawValue
        }
        return environment
    }
}

/// A command started with posix_spawn: its own process group (so a timeout reaches what it
/// started), every signal back to its default disposition and unblocked (the daemon ignores or
/// traps SIGTERM, SIGHUP and SIGPIPE, and children would inherit that), and pipes for its
/// standard streams.
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
