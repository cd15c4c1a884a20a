import NIOPosix

/// Blocking work (WAL checkpoints, rule files, reading the configuration and resolving peers'
/// names at reload) runs on NIO's thread pool for blocking calls, never on the cooperative pool,
/// whose two threads on a two-core host serve every request. Child processes have threads of
/// their own (`Command`), and so do the store's writer and log syncer.
enum Blocking {
    static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }
}
