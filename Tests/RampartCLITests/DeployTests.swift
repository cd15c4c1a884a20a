import Foundation
import RampartTesting
import Testing

/// The systemd unit and the install script, as an operator gets them.
@Suite struct DeployTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL

    static let noAnalyzer: String? =
        FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")
        ? nil : "systemd-analyze is missing (the systemd package has it)"

    /// The unit with its binary path pointed at the binary under test: `verify` checks that the
    /// programs it names exist.
    func unitCopy() throws -> String {
        let text = try String(contentsOf: Self.repository.appendingPathComponent("deploy/rampart.service"), encoding: .utf8)
        let directory = Scratch.directory("rampart-unit")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("rampart.service").path
        try text.replacingOccurrences(of: "/usr/local/bin/rampart", with: rampartBinary).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test(.enabled(if: noAnalyzer == nil, "\(noAnalyzer ?? "")")) func unitVerifiesClean() throws {
        let out = try run("/usr/bin/systemd-analyze", ["verify", try unitCopy()])
        #expect(out.status == 0 && out.stdout.isEmpty && out.stderr.isEmpty, "\(out.stdout)\(out.stderr)")
    }

    @Test(.enabled(if: noAnalyzer == nil, "\(noAnalyzer ?? "")")) func unitExposureIsAtMostTwo() throws {
        let out = try run("/usr/bin/systemd-analyze", ["security", "--offline=yes", "--no-pager", try unitCopy()])
        let line = (out.stdout + out.stderr).split(separator: "\n").first { $0.contains("Overall exposure level") }
        let score = line.flatMap { $0.split(separator: ":").last?.split(separator: " ").first }.flatMap { Double($0) }
        #expect(score.map { $0 <= 2.0 } == true, "\(line ?? "no score")\n\(out.stderr)")
    }

    @Test func unitDeclaresNotifyWatchdogAndOnlyNetAdmin() throws {
        let text = try String(contentsOf: Self.repository.appendingPathComponent("deploy/rampart.service"), encoding: .utf8)
        let lines = Set(text.split(separator: "\n").map(String.init))
        for line in [
            "Type=notify", "WatchdogSec=30s", "Restart=on-failure", "CapabilityBoundingSet=CAP_NET_ADMIN", "AmbientCapabilities=CAP_NET_ADMIN",
            "NoNewPrivileges=yes", "ProtectSystem=strict", "ExecStartPre=/usr/local/bin/rampart check --config /etc/rampart/rampart.yaml",
        ] {
            #expect(lines.contains(line), "deploy/rampart.service lacks \(line)")
        }
    }

    /// Into a staging root: installs, keeps an edited configuration on a second install, removes
    /// what it added on --uninstall (keeping configuration and state) and everything with --purge.
    @Test func installScriptInstallsKeepsAndRemoves() throws {
        let root = Scratch.directory("rampart-install").path
        let script = Self.repository.appendingPathComponent("deploy/install.sh").path
        func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: root + path) }

        let first = try run("/bin/bash", [script, "--root", root, "--binary", rampartBinary])
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        for path in [
            "/usr/local/bin/rampart", "/etc/systemd/system/rampart.service", "/etc/rampart/rampart.yaml", "/etc/rampart/playbooks",
            "/etc/rampart/lists", "/usr/local/share/doc/rampart/rampart.example.yaml", "/usr/local/share/doc/rampart/playbooks/block-partner-c2.yaml",
        ] {
            #expect(exists(path), "\(path) was not installed")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/etc/rampart/playbooks").isEmpty, "no playbook is active by default")

        try "node: {id: edited}\n".write(toFile: root + "/etc/rampart/rampart.yaml", atomically: true, encoding: .utf8)
        let second = try run("/bin/bash", [script, "--root", root, "--binary", rampartBinary])
        #expect(second.status == 0 && second.stdout.contains("kept the existing"))
        #expect(try String(contentsOfFile: root + "/etc/rampart/rampart.yaml", encoding: .utf8) == "node: {id: edited}\n")

        let removed = try run("/bin/bash", [script, "--root", root, "--uninstall"])
        #expect(removed.status == 0)
        #expect(!exists("/usr/local/bin/rampart") && !exists("/etc/systemd/system/rampart.service") && !exists("/usr/local/share/doc/rampart"))
        #expect(exists("/etc/rampart/rampart.yaml"))

        let purged = try run("/bin/bash", [script, "--root", root, "--uninstall", "--purge"])
        #expect(purged.status == 0 && !exists("/etc/rampart"))
        try? FileManager.default.removeItem(atPath: root)
    }
}
