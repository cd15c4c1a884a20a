import Foundation
import FuzzDriver
import RampartCore

/// JSON and OpenC2 commands: a command or a failure with an OpenC2 status, never a crash; a
/// deny or allow never lasts longer than the longest block.
@main
enum FuzzOpenC2 {
    static func main() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        runFuzzer { bytes in
            guard let json = try? JSONValue.parse(bytes, maxDepth: 16) else { return }
            do throws(OpenC2.Failure) {
                let command = try OpenC2.parse(json, now: now)
                switch command.action {
                case .deny(_, let duration, _), .allow(_, let duration, _):
                    precondition(duration > .zero && duration <= OpenC2.longest, "a window of \(duration)")
                default: break
                }
            } catch {
                precondition([400, 501].contains(error.status), "status \(error.status)")
            }
        }
    }
}
