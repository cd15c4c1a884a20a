import Foundation
import RampartCore

/// Playbooks from YAML text, items and a planning context, for the action kinds' tests.
enum ActionFixture {
    static let at = Date(timeIntervalSince1970: 1_800_000_000)

    static func playbook(_ yaml: String, peers: [String]? = nil) throws(Diagnostics) -> Playbook {
        try PlaybookLoader.parse(YAMLSource.parse(yaml, file: "p.yaml"), file: "p.yaml", lists: [:], peers: peers)
    }

    /// The messages a playbook's problems give, or [] when it loads.
    static func errors(_ yaml: String, peers: [String]? = nil) -> [String] {
        do {
            _ = try playbook(yaml, peers: peers)
            return []
        } catch {
            return error.items.map(\.description)
        }
    }

    static func item(_ value: String, tlp: TLP = .amber, path: [String] = [], origin: String = "here") throws -> Item {
        let (kind, normalised) = try IndicatorValue.normalise(value)
        var indicator = Indicator(kind: kind, value: normalised)
        indicator.tlp = tlp
        return Item(
            id: "0190aaaa-0000-7000-8000-000000000001", payload: .indicator(indicator), via: "api:feeder", origin: origin, path: path,
            hopsLeft: path.isEmpty ? nil : 3, receivedAt: at
        )
    }

    static func context(peers: [Peer] = [], policy: SafetyPolicy = SafetyPolicy(), maxBlock: Duration? = nil) -> PlanContext {
        PlanContext(nodeID: "here", peers: peers, policy: policy, at: at, maxBlock: maxBlock)
    }
}
