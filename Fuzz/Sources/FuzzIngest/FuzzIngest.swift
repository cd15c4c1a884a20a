import Foundation
import FuzzDriver
import RampartCore

/// The ingest body parsers (JSON, NDJSON, text; the first byte picks the format): no crash, and
/// never more items than the limit.
@main
enum FuzzIngest {
    static func main() {
        let limits = IngestParser.Limits(maxItems: 1000, maxDepth: 32)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        runFuzzer { bytes in
            guard let first = bytes.first else { return }
            let format: IngestParser.Format = [.json, .ndjson, .text, .stix][Int(first) % 4]
            guard
                var reader = try? IngestParser.Reader(
                    Array(bytes.dropFirst()), format: format, defaults: IndicatorDefaults(), now: now, limits: limits)
            else { return }
            var count = 0
            while reader.next() != nil {
                count += 1
                precondition(count <= limits.maxItems, "more items than the limit")
            }
        }
    }
}
