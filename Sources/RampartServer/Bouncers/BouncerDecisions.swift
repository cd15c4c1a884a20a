import Foundation
import RampartCore
import RampartStore

/// What a bouncer asked for (query parameters) and may see (its key's configuration), applied to
/// decisions as CrowdSec's API filters them.
struct BouncerFilter: Sendable {
    var scopes: Set<Config.BouncerScope>
    /// Nodes whose decisions the key may see (its `origins`); nil: all.
    var keyOrigins: Set<String>?
    /// `origins=`: the origin names bouncers see (see `BouncerDecision.originName`).
    var origins: Set<String>?
    var scenariosContaining: [String] = []
    var scenariosNotContaining: [String] = []

    /// The key's filter, narrowed by the request's `scopes` (default `ip,range`), `origins`,
    /// `scenarios_containing` and `scenarios_not_containing`; other parameters are ignored, as
    /// CrowdSec's API ignores them.
    init(bouncer: Config.Bouncer, parameters: [String: String]) {
        scopes = bouncer.scopes
        keyOrigins = bouncer.origins
        if let asked = parameters["scopes"] ?? parameters["scope"] {
            scopes.formIntersection(Self.list(asked).compactMap { Config.BouncerScope(rawValue: $0.lowercased()) })
        }
        origins = parameters["origins"].map { Set(Self.list($0)) }
        scenariosContaining = parameters["scenarios_containing"].map { Self.list($0).map { $0.lowercased() } } ?? []
        scenariosNotContaining = parameters["scenarios_not_containing"].map { Self.list($0).map { $0.lowercased() } } ?? []
    }

    private static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func admits(_ decision: BouncerDecision) -> Bool {
        guard scopes.contains(decision.target.isHost ? .ip : .range) else { return false }
        if let keyOrigins, !keyOrigins.contains(decision.origin) { return false }
        if let origins, !origins.contains(decision.originName) { return false }
        if !scenariosContaining.isEmpty || !scenariosNotContaining.isEmpty {
            let scenario = decision.scenario.lowercased()
            if !scenariosContaining.isEmpty && !scenariosContaining.contains(where: { scenario.contains($0) }) { return false }
            if scenariosNotContaining.contains(where: { scenario.contains($0) }) { return false }
        }
        return true
    }
}

extension BouncerDecision {
    /// The playbook that decided it, or `manual`.
    var scenario: String { playbook ?? "manual" }

    /// The origin node as CrowdSec's `origin`: letters, digits, `-` and `_` only (the firewall
    /// bouncer names nftables sets after it), so a node id's `.` becomes `_`.
    var originName: String { String(origin.map { $0 == "." ? "_" : $0 }) }

    /// The decision as CrowdSec's API writes one: every field present and non-null (the firewall
    /// bouncer dereferences them unchecked). `duration` is the time left in Go's syntax, rounded
    /// up to whole seconds and at least `1s` (an element with a zero timeout would never expire);
    /// a decision no longer in force says how long ago it ended, or `0s`.
    func write(to w: inout JSONWriter, now: Date) {
        w.beginObject()
        let left = expiresAt.timeIntervalSince(now)
        w.field("duration", inForce ? GoDuration.format(seconds: max(1, Int64(left.rounded(.up)))) : GoDuration.format(seconds: min(0, Int64(left))))
        w.key("id")
        w.value(number)
        w.field("origin", originName)
        w.field("scenario", scenario)
        w.field("scope", target.isHost ? "Ip" : "Range")
        w.field("type", "ban")
        w.field("uuid", id)
        w.field("value", target.description)
        w.endObject()
    }
}

/// Go's `time.Duration.String()` for whole seconds: `3h59m58s`, `59m58s`, `58s`, `0s`, `-1m2s`
/// (hours are not folded into days: Go's parser has no `d`).
enum GoDuration {
    static func format(seconds: Int64) -> String {
        if seconds == 0 { return "0s" }
        let sign = seconds < 0 ? "-" : ""
        let total = seconds.magnitude
        let (hours, minutes, rest) = (total / 3600, total / 60 % 60, total % 60)
        if hours > 0 { return "\(sign)\(hours)h\(minutes)m\(rest)s" }
        if minutes > 0 { return "\(sign)\(minutes)m\(rest)s" }
        return "\(sign)\(rest)s"
    }
}
