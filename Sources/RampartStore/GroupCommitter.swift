import Foundation
import GRDB
import RampartCore
import Synchronization

/// Runs write jobs on one dedicated thread, many jobs to a transaction: while one transaction
/// commits, new jobs queue, and the next transaction takes them (up to a total weight, so that a
/// transaction's dirty pages fit SQLite's page cache instead of spilling into the log twice). Each job runs in its own
/// savepoint, so a job that fails rolls back alone; callers resume only after the commit that
/// holds their job is durable.
///
/// Durable means on disk: a second thread syncs the write-ahead log after commits (one
/// `fdatasync` covers every commit written before it) and only then resumes their callers. The
/// writer goes on with the next transaction meanwhile, instead of waiting for the disk inside
/// SQLite's commit (`synchronous = FULL`), so writing and syncing overlap.
///
/// The firewall changes a transaction's jobs decided go to the `CommitObserver` as soon as it
/// has committed, while its log sync is still to come, and the observer hears again once the log
/// holding it is on disk.
final class GroupCommitter: @unchecked Sendable {
    private let pool: DatabasePool
    private let logPath: String
    private let condition = NSCondition()
    private var pending: [any Job] = []
    private var stopped = false
    private var thread: Thread?
    /// Committed batches waiting for the log to reach the disk, oldest first.
    private let syncCondition = NSCondition()
    /// Committed batches waiting for the log sync; `wrote`: the commit changed rows (only such a
    /// commit reaching the disk shows that a full disk has room again).
    private var unsynced: [(commit: UInt64, jobs: [any Job], wrote: Bool)] = []
    private var writerDone = false
    private var syncs = 0
    /// Whether `start()` ran, and who waits in `stop()` for both threads to end.
    private var started = false
    private var syncerDone = false
    private var joiners: [CheckedContinuation<Void, Never>] = []

    /// How many times the log was synced.
    var logSyncs: Int {
        syncCondition.lock()
        defer { syncCondition.unlock() }
        return syncs
    }
    /// Owned by the writer thread (read once at start, then only there).
    private var state: WriterState
    private var statements: PreparedStatements?
    /// How many transactions committed; each commit's number is the count after it.
    private var commits: UInt64 = 0
    /// Set by `start`, before the threads that read it exist.
    private var observer: (any CommitObserver)?
    /// The most work one transaction takes: jobs weigh 1 unless their caller says how many items
    /// they write.
    private let maxWeightPerTransaction = 4096
    private var lastActivity = ContinuousClock.now
    /// The writer's count of enforced decisions in force, as of the last commit, for readers: a
    /// scrape reads it instead of counting 100k rows.
    private let publishedActiveBlocks = Atomic<Int>(0)
    var activeBlocks: Int { publishedActiveBlocks.load(ordering: .relaxed) }
    /// Set when a write fails because the disk is full; cleared once a write that changed rows is
    /// durable again, or once the disk has `roomAgain` free (a commit that changed nothing, such
    /// as an idle expiry sweep, proves nothing, but a daemon that says it is not ready gets no
    /// writes to prove it with).
    private let storageFull = Atomic<Bool>(false)
    var isStorageFull: Bool { storageFull.load(ordering: .relaxed) }
    /// The log's descriptor for syncs (the syncer's thread only); -1 until the first sync.
    private var logDescriptor: Int32 = -1

    init(pool: DatabasePool, state: WriterState) {
        self.pool = pool
        self.logPath = pool.path + "-wal"
        self.state = state
        publishedActiveBlocks.store(state.activeBlocks, ordering: .relaxed)
    }

    /// Starts the writer and sync threads; once only. `observer` hears of each commit's firewall
    /// changes, on the writer's thread, and of each log sync, on the syncer's.
    func start(observer: (any CommitObserver)?) {
        condition.lock()
        defer { condition.unlock() }
        guard !started, !stopped else { return }
        started = true
        self.observer = observer
        let thread = Thread { [self] in
            self.loop()
            syncCondition.lock()
            writerDone = true
            syncCondition.signal()
            syncCondition.unlock()
        }
        thread.name = "rampart-writer"
        thread.stackSize = 8 << 20
        self.thread = thread
        thread.start()
        let syncer = Thread { [self] in
            self.syncLoop()
            syncCondition.lock()
            syncerDone = true
            let waiting = joiners
            joiners = []
            syncCondition.unlock()
            for joiner in waiting { joiner.resume() }
        }
        syncer.name = "rampart-log-sync"
        syncer.start()
    }

    /// Commits and syncs the jobs already queued, refuses new ones, and returns once both threads
    /// have ended (at once when they never started; queued jobs then fail).
    func stop() async {
        let (wasStarted, abandoned) = beginStop()
        for job in abandoned { job.fail(StoreError(code: "store_closed", message: "the store was closed before it started")) }
        guard wasStarted else { return }
        await withCheckedContinuation { (joiner: CheckedContinuation<Void, Never>) in
            syncCondition.lock()
            if syncerDone {
                syncCondition.unlock()
                joiner.resume()
            } else {
                joiners.append(joiner)
                syncCondition.unlock()
            }
        }
    }

    /// Refuses new jobs and wakes the writer; returns whether the threads run, and the jobs that
    /// will never run because they do not.
    private func beginStop() -> (started: Bool, abandoned: [any Job]) {
        condition.lock()
        defer { condition.unlock() }
        stopped = true
        condition.broadcast()
        guard !started else { return (true, []) }
        defer { pending = [] }
        return (false, pending)
    }

    /// Queues `work` for the next transaction and returns at once; `PendingWrite.value()` waits
    /// for the commit. Jobs run in the order they were enqueued. `weight` is how many items the
    /// job writes, roughly.
    func enqueue<T: Sendable>(weight: Int = 1, _ work: @escaping @Sendable (inout StoreTransaction) throws -> T) -> PendingWrite<T> {
        let pending = PendingWrite<T>()
        condition.lock()
        if stopped {
            condition.unlock()
            pending.resolve(.failure(StoreError(code: "store_closed", message: "the store is shutting down")))
            return pending
        }
        self.pending.append(TypedJob(work: work, pending: pending, weight: max(1, weight)))
        lastActivity = .now
        condition.signal()
        condition.unlock()
        return pending
    }

    /// How long since the last job was queued or committed.
    var idleTime: Duration {
        condition.lock()
        defer { condition.unlock() }
        return pending.isEmpty ? ContinuousClock.now - lastActivity : .zero
    }

    private func loop() {
        while true {
            condition.lock()
            while pending.isEmpty && !stopped { condition.wait() }
            if pending.isEmpty && stopped {
                condition.unlock()
                return
            }
            // At least one job; then jobs while the total stays under the bound.
            var count = 0
            var weight = 0
            while count < pending.count && (count == 0 || weight + pending[count].weight <= maxWeightPerTransaction) {
                weight += pending[count].weight
                count += 1
            }
            let batch = Array(pending.prefix(count))
            pending.removeFirst(count)
            condition.unlock()
            commit(batch)
            condition.lock()
            lastActivity = .now
            condition.unlock()
        }
    }

    private func commit(_ batch: [any Job]) {
        let before = state
        var firewall: [FirewallChange] = []
        var wrote = false
        do {
            try pool.writeWithoutTransaction { db in
                let changesBefore = db.totalChangesCount
                defer { wrote = db.totalChangesCount != changesBefore }
                let statements = try self.statements ?? PreparedStatements(db)
                self.statements = statements
                try db.inTransaction(.immediate) {
                    for job in batch {
                        let snapshot = state
                        var transaction = StoreTransaction(db: db, state: state, statements: statements)
                        var failed = false
                        try db.inSavepoint {
                            failed = !job.run(&transaction)
                            return failed ? .rollback : .commit
                        }
                        if !failed {
                            state = transaction.state
                            firewall += transaction.firewall
                        } else {
                            state = snapshot
                            // A job that failed for want of space fails the batch: the commit would too.
                            if job.failedForSpace { throw job.failure ?? CancellationError() }
                        }
                    }
                    return .commit
                }
            }
        } catch {
            // Nothing of it reached the firewall: changes go out only after a commit.
            state = before
            let error = classified(error)
            for job in batch { job.fail(error) }
            return
        }
        commits += 1
        publishedActiveBlocks.store(state.activeBlocks, ordering: .relaxed)
        if !firewall.isEmpty { observer?.committed(commits, firewall: firewall) }
        syncCondition.lock()
        unsynced.append((commits, batch, wrote))
        syncCondition.signal()
        syncCondition.unlock()
    }

    /// Syncs the log for the batches committed since the last sync, then resumes their callers;
    /// ends once the writer has stopped and every batch it committed is synced.
    private func syncLoop() {
        while true {
            syncCondition.lock()
            while unsynced.isEmpty && !writerDone { syncCondition.wait() }
            if unsynced.isEmpty {
                syncCondition.unlock()
                if logDescriptor >= 0 { close(logDescriptor) }
                logDescriptor = -1
                return
            }
            let batches = unsynced
            unsynced.removeAll()
            syncCondition.unlock()
            let jobs = batches.flatMap(\.jobs)
            do {
                try syncLog()
                if storageFull.load(ordering: .relaxed), batches.contains(where: \.wrote) || freeBytes() >= Self.roomAgain {
                    storageFull.store(false, ordering: .relaxed)
                }
                observer?.durable(through: batches[batches.count - 1].commit)
                for job in jobs { job.complete() }
            } catch {
                // Committed but perhaps not on disk: the callers hear of it rather than a 2xx, and
                // the observer waits for a later sync that covers these commits too.
                for job in jobs { job.fail(error) }
            }
        }
    }

    static let roomAgain = 16 << 20

    /// The bytes free for the daemon on the filesystem holding the log.
    private func freeBytes() -> Int {
        var stats = statvfs()
        guard statvfs((logPath as NSString).deletingLastPathComponent, &stats) == 0 else { return 0 }
        return Int(stats.f_bavail) * Int(stats.f_frsize)
    }

    /// `fdatasync` of the write-ahead log, through a descriptor of its own (syncing a file syncs
    /// it whoever wrote it). The descriptor is opened at the first sync and kept: SQLite keeps the
    /// same log file while the database is open (checkpoints reuse or truncate it, never replace
    /// it), and a sync must not need a new descriptor when clients have taken them all.
    private func syncLog() throws {
        if logDescriptor < 0 {
            logDescriptor = open(logPath, O_RDWR | O_CLOEXEC)
            guard logDescriptor >= 0 else {
                throw StoreError(code: "sync_failed", message: "cannot open \(logPath) to sync it: \(String(cString: strerror(errno)))")
            }
        }
        guard fdatasync(logDescriptor) == 0 else {
            if errno == ENOSPC { throw classified(StoreError(code: .storageFull, message: "syncing \(logPath) failed: no space left on the disk")) }
            throw StoreError(code: "sync_failed", message: "syncing \(logPath) failed: \(String(cString: strerror(errno)))")
        }
        syncCondition.lock()
        syncs += 1
        syncCondition.unlock()
    }
}

extension GroupCommitter {
    /// A write's error as callers see it: SQLite's "database or disk is full" (and a sync's
    /// ENOSPC) become `storage_full`, noted until a write is durable again.
    fileprivate func classified(_ error: any Error) -> any Error {
        guard meansDiskFull(error) else { return error }
        storageFull.store(true, ordering: .relaxed)
        if let error = error as? StoreError { return error }
        return StoreError(
            code: .storageFull, message: "the disk holding the database is full; nothing of this write was kept (free space, and retry)")
    }
}

/// Whether `error` says the disk is full: SQLite's, or a `storage_full` store error.
private func meansDiskFull(_ error: any Error) -> Bool {
    if let error = error as? StoreError { return error.isStorageFull }
    return (error as? DatabaseError)?.resultCode == .SQLITE_FULL
}

/// Hears what committed transactions change in the firewall: `committed` on the writer's thread
/// right after a commit (it must not block: the next transaction waits for it), `durable` on the
/// log syncer's thread once every commit up to the one named is on disk. Commits are numbered
/// from 1, in order.
public protocol CommitObserver: AnyObject, Sendable {
    func committed(_ commit: UInt64, firewall: [FirewallChange])
    func durable(through commit: UInt64)
}

/// What the writer thread keeps between transactions: the head of the audit chain and counters.
struct WriterState: Sendable {
    var auditSeq: Int64
    var auditHash: [UInt8]
    var activeBlocks: Int
    /// The number of the last change to a decision (`decision.change_seq`): every creation,
    /// extension, revocation and expiry takes the next one, so that a reader (the CrowdSec bouncer
    /// API) finds what changed after a point it saw.
    var decisionChange: Int64
    /// The allow entries not yet revoked or marked expired (few: checked against every block).
    var allows: [AllowEntry] = []
    /// The last `stix_export.seq`.
    var exportSeq: Int64 = 0

    mutating func nextDecisionChange() -> Int64 {
        decisionChange += 1
        return decisionChange
    }

    /// The next `stix_export.seq` at `now`: the time in milliseconds times 1024 plus a counter,
    /// never less than the last one.
    mutating func nextExportSeq(at now: Date) -> Int64 {
        exportSeq = max(now.milliseconds << 10, exportSeq + 1)
        return exportSeq
    }
}

private protocol Job: AnyObject {
    var weight: Int { get }
    /// Runs inside the transaction; false when the job's own work threw (its savepoint rolls back).
    func run(_ transaction: inout StoreTransaction) -> Bool
    /// After the commit: resumes the caller with the job's result.
    func complete()
    /// The commit failed: resumes the caller with the error.
    func fail(_ error: any Error)
    /// Whether the job's own work failed for want of space, and with what.
    var failedForSpace: Bool { get }
    var failure: (any Error)? { get }
}

private final class TypedJob<T: Sendable>: Job {
    let work: @Sendable (inout StoreTransaction) throws -> T
    let pending: PendingWrite<T>
    let weight: Int
    var result: Result<T, any Error>?

    init(work: @escaping @Sendable (inout StoreTransaction) throws -> T, pending: PendingWrite<T>, weight: Int) {
        self.work = work
        self.pending = pending
        self.weight = weight
    }

    func run(_ transaction: inout StoreTransaction) -> Bool {
        do {
            result = .success(try work(&transaction))
            return true
        } catch {
            result = .failure(error)
            return false
        }
    }

    func complete() {
        pending.resolve(result ?? .failure(StoreError(code: "internal", message: "job did not run")))
    }

    var failure: (any Error)? {
        if case .failure(let error)? = result { error } else { nil }
    }

    var failedForSpace: Bool { failure.map(meansDiskFull) ?? false }

    func fail(_ error: any Error) {
        pending.resolve(.failure(error))
    }
}

/// The result of a queued write, available once its transaction committed (or failed).
public final class PendingWrite<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, any Error>?
    private var waiter: CheckedContinuation<T, any Error>?

    func resolve(_ result: Result<T, any Error>) {
        lock.lock()
        if let waiter {
            self.waiter = nil
            lock.unlock()
            waiter.resume(with: result)
        } else {
            self.result = result
            lock.unlock()
        }
    }

    /// Waits for the commit and returns the job's result, or throws its error or the commit's.
    public func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            lock.lock()
            if let result {
                lock.unlock()
                continuation.resume(with: result)
            } else {
                waiter = continuation
                lock.unlock()
            }
        }
    }
}
