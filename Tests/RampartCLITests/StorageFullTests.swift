import Foundation
import Testing

/// Mounting a small tmpfs takes root; without it the test is skipped, saying so.
let tmpfsUnavailable: String? = getuid() == 0 ? nil : "needs root to mount a small tmpfs for the state directory"

/// A full disk is a clear answer, not a generic 500: 507 `storage_full`, `/readyz` not ready;
/// nothing already accepted is lost, and once space is back the daemon takes writes again
/// without a restart.
@Suite(.serialized, .enabled(if: tmpfsUnavailable == nil, "\(tmpfsUnavailable ?? "")"))
struct StorageFullTests {
    @Test func aFullDiskAnswers507AndRecoversWhenSpaceIsBack() throws {
        let sandbox = try Sandbox()
        let state = sandbox.directory.appendingPathComponent("state").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        #expect(try run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", state]).status == 0)
        defer { _ = try? run("/usr/bin/umount", ["-l", state]) }
        let daemon = try DaemonProcess(sandbox)
        defer { _ = daemon.stop() }
        func post(_ count: Int, from start: Int) throws -> (status: String, code: String) {
            let lines = (start..<start + count).map { "45.\($0 / 65536 % 256).\($0 / 256 % 256).\($0 % 256)" }.joined(separator: "\n")
            let out = try run(
                "/usr/bin/curl",
                [
                    "-s", "-w", "\n%{http_code}", "-H", "Authorization: Bearer \(Sandbox.adminToken)", "-H", "Content-Type: text/plain",
                    "--data-binary", lines, "\(daemon.url)/v1/indicators",
                ]
            ).stdout
            let status = String(out.split(separator: "\n").last ?? "")
            let code = (try? JSONSerialization.jsonObject(with: Data(out.utf8.dropLast(status.count + 1))) as? [String: Any])?["code"] as? String
            return (status, code ?? "")
        }
        func ready() throws -> String {
            try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(daemon.url)/readyz"]).stdout
        }
        var accepted = 0
        var answer = (status: "", code: "")
        for round in 0..<40 {
            answer = try post(500, from: round * 500)
            guard answer.status == "202" else { break }
            accepted += 500
        }
        #expect(answer == ("507", "storage_full"), "\(answer)")
        #expect(accepted > 0)
        // Still not ready after the expiry sweep's idle commits (every second), which change nothing.
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try ready() == "503")
        #expect(daemon.log.contains("store.storage_full"))

        #expect(try run("/usr/bin/mount", ["-o", "remount,size=64m", state]).status == 0)
        // Ready again once there is room, before any write (a node that is not ready gets none).
        #expect(try eventually(5) { try ready() == "200" })
        #expect(try post(10, from: 1_000_000).status == "202")
        #expect(try ready() == "200")
        _ = daemon.stop()
        let verify = try run(rampartBinary, ["audit", "verify", "--config", sandbox.configPath])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        // Everything acknowledged before the disk filled, and after, is there, chained.
        #expect(verify.stdout.contains("audit chain intact: \(accepted + 10) entries"), "\(verify.stdout)")
    }
}
