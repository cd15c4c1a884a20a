import Foundation
import Testing

@testable import RampartFirewall

@Suite struct CommandTests {
    /// A command gets its three standard streams and nothing else the daemon has open: SwiftNIO's
    /// sockets have no FD_CLOEXEC, and an `nft` child that inherited the listening socket kept the
    /// port taken after a kill -9, so the restarted daemon could not bind it.
    @Test func childrenInheritOnlyTheirStandardStreams() throws {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let fileFD = open("/dev/null", O_RDONLY)
        try #require(socketFD > 2 && fileFD > 2)
        defer {
            close(socketFD)
            close(fileFD)
        }
        for fd in [socketFD, fileFD] {
            let outcome = Command.runBlocking(
                ["/bin/sh", "-c", "ls /proc/$$/fd; test ! -e /proc/$$/fd/\(fd)"], environment: [:], input: [], timeout: .seconds(10))
            guard case .exited(let status, false, false, let stdout, _, _) = outcome else {
                Issue.record("not run: \(outcome)")
                continue
            }
            #expect(status == 0, "descriptor \(fd) is open in the child; its descriptors: \(stdout)")
        }
    }
}
