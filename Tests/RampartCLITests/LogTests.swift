import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The daemon's log: one parseable line per event in either format, and never a token, even
/// at debug level and for requests that present a wrong one.
@Suite struct LogTests {
    func exercise(format: String) throws -> String {
        let sandbox = try Sandbox()
        let config = try String(contentsOfFile: sandbox.configPath, encoding: .utf8)
            .replacingOccurrences(of: "log: {level: info}", with: "log: {level: debug, format: \(format)}")
        try config.write(toFile: sandbox.configPath, atomically: true, encoding: .utf8)
        let daemon = try DaemonProcess(sandbox)
        let calls: [[String]] = [
            [
                "-H", "Authorization: Bearer \(Sandbox.adminToken)", "-H", "Content-Type: text/plain", "--data-binary", "23.1.2.3\nnot valid",
                "\(daemon.url)/v1/indicators",
            ],
            ["-H", "Authorization: Bearer tok_wrong_secret_value", "\(daemon.url)/v1/decisions"],
            ["-H", "Authorization: Basic dXNlcjpwYXNzd29yZA==", "\(daemon.url)/v1/decisions"],
            ["-X", "POST", "-H", "Authorization: Bearer \(Sandbox.adminToken)", "\(daemon.url)/v1/reload"],
        ]
        for call in calls { _ = try run("/usr/bin/curl", ["-s", "-o", "/dev/null"] + call) }
        #expect(daemon.stop() == 0)
        return daemon.log
    }

    @Test(arguments: ["json", "logfmt"]) func linesParseAndHoldNoSecrets(format: String) throws {
        let log = try exercise(format: format)
        for secret in [Sandbox.adminToken, "tok_wrong_secret_value", "dXNlcjpwYXNzd29yZA==", "Bearer"] {
            #expect(!log.contains(secret), "the log holds \(secret)")
        }
        let lines = log.split(separator: "\n")
        #expect(lines.count >= 5, "\(log)")
        for line in lines {
            if format == "json" {
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["ts"] is String && object?["level"] is String && object?["msg"] is String, "\(line)")
            } else {
                #expect(line.hasPrefix("ts=") && line.contains(" level=") && line.contains(" msg="), "\(line)")
            }
        }
        #expect(log.contains("config.reloaded"))
    }
}
