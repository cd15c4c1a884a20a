import Foundation
import RampartTesting
import Testing

/// The `rampart` binary built next to the test bundle.
let rampartBinary: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("rampart").path
}()

struct Output {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a program to completion with no standard input.
func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], directory: URL? = nil) throws -> Output {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    if let directory { process.currentDirectoryURL = directory }
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    let (out, err) = (Pipe(), Pipe())
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Output(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
}

func rampart(_ arguments: String...) throws -> Output {
    try run(rampartBinary, arguments)
}

/// A temporary directory with a configuration for a daemon on a free loopback port.
struct Sandbox {
    let directory: URL
    let configPath: String
    var databasePath: String { directory.appendingPathComponent("state/rampart.sqlite").path }
    static let adminToken = TestKeys.admin

    /// - Parameters:
    ///   - node: the node id.
    ///   - extra: more top-level configuration (YAML lines).
    init(node: String = "cli-test", listen: String = "127.0.0.1:0", extra: String = "") throws {
        directory = Scratch.directory("rampart-cli")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("playbooks"), withIntermediateDirectories: true)
        configPath = directory.appendingPathComponent("rampart.yaml").path
        try """
        node: {id: \(node)}
        listen: \(listen)
        state_dir: state
        playbooks: playbooks
        \(TestKeys.apiKeysYAML(adminOnly: true))
        log: {level: info}
        \(extra)
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }
}

/// `rampart serve` as a child process; its log goes to a file the test reads.
final class DaemonProcess {
    let process = Process()
    let logPath: String
    private(set) var port = 0

    /// - Parameters:
    ///   - namespace: a network namespace to run the daemon in (`ip netns exec`).
    ///   - environment: variables added to the test's own.
    init(_ sandbox: Sandbox, namespace: String? = nil, environment: [String: String] = [:]) throws {
        logPath = sandbox.directory.appendingPathComponent("daemon-\(UUID().uuidString).log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let command = [rampartBinary, "serve", "--config", sandbox.configPath]
        let argv = namespace.map { ["/usr/sbin/ip", "netns", "exec", $0] + command } ?? command
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: logPath)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        // daemon.ready ... rampart.listen=127.0.0.1:PORT (logfmt) or "rampart.listen":"127.0.0.1:PORT" (JSON)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, process.isRunning {
            if let line = log.split(separator: "\n").first(where: { $0.contains("daemon.ready") }),
                let match = line.firstMatch(of: /rampart\.listen"?[=:]"?([^\s",]+)/),
                let port = match.1.split(separator: ":").last.flatMap({ Int($0.filter(\.isNumber)) })
            {
                self.port = port
                return
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.terminate()
        throw DaemonError(message: "the daemon did not become ready:\n\(log)")
    }

    struct DaemonError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var url: String { "http://127.0.0.1:\(port)" }

    /// SIGTERM, and the exit status.
    func stop() -> Int32 {
        process.terminate()
        process.waitUntilExit()
        return process.terminationStatus
    }
}

func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return try condition()
}
