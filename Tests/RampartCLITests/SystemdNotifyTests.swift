import Foundation
import Testing

/// The daemon speaks sd_notify to a socket this test binds, as systemd would: READY=1 once it
/// listens, WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1 (with MONOTONIC_USEC) then READY=1
/// around a SIGHUP reload, STOPPING=1 on SIGTERM, then exit 0.
@Suite struct SystemdNotifyTests {
    /// A bound unix datagram socket: what systemd listens on.
    final class NotifySocket {
        let path: String
        let fd: Int32

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: Array(path.utf8)) }
            let bound = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard fd >= 0, bound == 0 else { throw DaemonProcess.DaemonError(message: "cannot bind \(path): errno \(errno)") }
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(fd) }

        /// Messages received until `until` holds for one of them, or `seconds` pass.
        func receive(for seconds: Double, until: (String) -> Bool = { _ in false }) -> [String] {
            var messages: [String] = []
            let deadline = Date().addingTimeInterval(seconds)
            var buffer = [UInt8](repeating: 0, count: 4096)
            while Date() < deadline {
                let count = recv(fd, &buffer, buffer.count, 0)
                guard count > 0 else { continue }
                let message = String(decoding: buffer[..<count], as: UTF8.self)
                messages.append(message)
                if until(message) { break }
            }
            return messages
        }
    }

    @Test func notifiesReadyWatchdogReloadingAndStopping() throws {
        let sandbox = try Sandbox()
        let socket = try NotifySocket(path: sandbox.directory.appendingPathComponent("notify").path)
        let daemon = try DaemonProcess(sandbox, environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "400000"])
        defer { if daemon.process.isRunning { _ = daemon.stop() } }

        let start = socket.receive(for: 5) { $0.hasPrefix("READY=1") }
        #expect(start.last?.hasPrefix("READY=1\nSTATUS=ready: listening on") == true, "\(start)")
        #expect(!start.dropLast().contains { $0.contains("READY=1") })

        // Pings at half the timeout: about 5 in a second.
        let pings = socket.receive(for: 1).filter { $0 == "WATCHDOG=1" }
        #expect((3...7).contains(pings.count), "\(pings.count) pings in 1 s")

        kill(daemon.process.processIdentifier, SIGHUP)
        let reload = socket.receive(for: 5) { $0.hasPrefix("READY=1") }.filter { $0 != "WATCHDOG=1" }
        #expect(reload.count == 2, "\(reload)")
        let fields = reload.first?.split(separator: "\n") ?? []
        #expect(fields.first == "RELOADING=1")
        let stamp = fields.last.flatMap { $0.hasPrefix("MONOTONIC_USEC=") ? UInt64($0.dropFirst("MONOTONIC_USEC=".count)) : nil }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nowMicroseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
        #expect(stamp.map { $0 <= nowMicroseconds && nowMicroseconds - $0 < 5_000_000 } == true, "\(fields)")
        #expect(reload.last?.hasPrefix("READY=1\nSTATUS=ready: reloaded, 0 playbooks in force") == true, "\(reload)")

        daemon.process.terminate()
        let stop = socket.receive(for: 5) { $0.hasPrefix("STOPPING=1") }
        #expect(stop.last?.hasPrefix("STOPPING=1") == true, "\(stop)")
        daemon.process.waitUntilExit()
        #expect(daemon.process.terminationStatus == 0)
    }
}
