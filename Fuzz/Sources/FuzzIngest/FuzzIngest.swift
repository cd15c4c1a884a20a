import Foundation
import FuzzDriver
import RampartCore

/// The ingest body parsers (JSON, NDJSON, text, STIX bundles and TAXII envelopes with their
/// patterns; the first byte picks the format): no crash, never more items than the limit, and
/// every indicator a STIX object yields is accepted again as it is (what is stored, and sent to
/// peers, must be).
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
            while let entry = reader.next() {
                count += 1
                precondition(count <= limits.maxItems, "more items than the limit")
                guard case .success(.stix(let object)) = entry.result, case .payloads(let payloads) = object.content else { continue }
                for case .indicator(let indicator) in payloads {
                    let again = try? IndicatorValue.normalise(indicator.value, as: indicator.kind)
                    precondition(again?.1 == indicator.value, "a STIX value that is not accepted again as it is: \(indicator.value)")
                }
            }
        }
    }
}
