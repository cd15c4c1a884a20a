import Foundation
import Logging
import RampartStore
import ServiceLifecycle

/// Tells the service manager how the daemon is doing, through the datagram socket systemd names
/// in `NOTIFY_SOCKET` (the sd_notify protocol, spoken without libsystemd). Outside systemd there
/// is no socket and every call does nothing.
public struct SystemdNotifier: Sendable {
    /// The socket's path; an abstract socket starts with `@`.
    let socketPath: String?
    /// How often systemd expects `WATCHDOG=1` at the latest (`WATCHDOG_USEC`), when it is meant for
    /// this process (`WATCHDOG_PID` absent or ours).
    public let watchdogTimeout: Duration?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        let forUs = environment["WATCHDOG_PID"].map { $0 == String(getpid()) } ?? true
        watchdogTimeout = environment["WATCHDOG_USEC"].flatMap(UInt64.init).flatMap { forUs && $0 > 0 ? .microseconds($0) : nil }
    }

    /// Listener accepting, playbooks loaded.
    public func ready(status: String) { send("READY=1\nSTATUS=\(status)") }

    /// A reload begins; `ready(status:)` ends it.
    public func reloading() { send("RELOADING=1\nMONOTONIC_USEC=\(Self.monotonicMicroseconds())") }

    public func stopping() { send("STOPPING=1\nSTATUS=stopping: draining requests") }

    public func watchdog() { send("WATCHDOG=1") }

    public func status(_ text: String) { send("STATUS=\(text)") }

    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }

    /// One datagram; failures are ignored, as sd_notify does (the manager may be gone).
    func send(_ message: String) {
        guard let socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }  // abstract namespace
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        _ = message.utf8CString.withUnsafeBufferPointer { text in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, text.baseAddress, text.count - 1, 0, $0, length) }
            }
        }
    }
}

/// Pings the systemd watchdog at half its timeout, each time only after a write has gone through
/// the store's writer thread: a daemon whose commits are stuck stops pinging and is restarted,
/// where a bare timer would keep it looking alive. Says STOPPING=1 when shutdown begins.
struct SystemdService: Service {
    let notifier: SystemdNotifier
    let store: Store
    let logger: Logger

    func run() async throws {
        try await withGracefulShutdownHandler {
            guard let timeout = notifier.watchdogTimeout else {
                try await gracefulShutdown()
                return
            }
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                do {
                    _ = try await store.write { _ in }
                    notifier.watchdog()
                } catch {
                    logger.error("watchdog.store_failed", metadata: ["rampart.error": "\(error)"])
                }
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: timeout / 2) }
            }
        } onGracefulShutdown: {
            notifier.stopping()
        }
    }
}
