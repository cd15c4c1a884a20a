import Foundation
import FuzzDriver
import RampartCore

/// Webhook signature headers and their verification: the first three lines are webhook-id,
/// webhook-timestamp and webhook-signature, the rest the body. Nothing verifies without the
/// right key, and nothing crashes.
@main
enum FuzzSignature {
    static func main() {
        let secret = try! WebhookSignature.Secret(text: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        runFuzzer { bytes in
            let parts = bytes.split(separator: UInt8(ascii: "\n"), maxSplits: 3, omittingEmptySubsequences: false)
            func line(_ index: Int) -> String? { index < parts.count ? String(decoding: parts[index], as: UTF8.self) : nil }
            let body = parts.count > 3 ? Array(parts[3]) : []
            do {
                try WebhookSignature.verify(
                    id: line(0), timestamp: line(1), signature: line(2), body: body, now: now, publicKeys: [], secrets: [secret])
                fatalError("a signature verified without the secret's code")
            } catch {}
        }
    }
}
