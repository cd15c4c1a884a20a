import ArgumentParser
import Foundation
import RampartCore

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make this node's Ed25519 key pair for signing what it sends to peers (Standard Webhooks v1a).",
        discussion: """
            Writes the private key (whsk_...) to --out, readable by its owner only, and prints the
            public key (whpk_...) that peers put in their configuration to verify this node.
            """
    )

    @Option(help: "Where to write the private key; an existing file is never overwritten.")
    var out: String

    func run() throws {
        let key = WebhookSignature.SigningKey()
        let fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw CLIError(
                errno == EEXIST ? "\(out) exists; keygen never overwrites a key" : "cannot create \(out): \(String(cString: strerror(errno)))")
        }
        let text = Array((key.text + "\n").utf8)
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == text.count, synced else { throw CLIError("cannot write \(out)") }
        print(
            """
            private key written to \(out) (mode 0600)
            public key, for peers' configuration:
              \(key.publicKey.text)
            """)
    }
}
