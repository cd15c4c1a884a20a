import Foundation
import Yams

/// `block: {duration: 4h, direction: inbound, escalate: {factor: 2, max: 30d}}`: blocks the
/// item's address or network, through a decision that merges with those in force.
public struct BlockAction: PlaybookAction, Equatable {
    public static let kind = "block"
    public var duration: Duration
    public var direction: Direction
    public var escalate: Escalation?

    public init(duration: Duration, direction: Direction, escalate: Escalation? = nil) {
        self.duration = duration
        self.direction = direction
        self.escalate = escalate
    }

    public static func parse(_ body: Node, action: Node, path: String, playbook: Playbook, peers: [String]?, reader: YAMLReader) -> BlockAction? {
        guard let block = reader.fields(body, allowed: ["duration", "direction", "escalate"], what: "\(path).block") else { return nil }
        let duration = block.required("duration").flatMap { reader.duration($0, "\(path).block.duration") }
        var escalate: Escalation?
        if let n = block["escalate"], let fields = reader.fields(n, allowed: ["factor", "max"], what: "\(path).block.escalate") {
            let factor = fields.required("factor").flatMap { f in
                reader.word(f, "\(path).block.escalate.factor") { (text) throws(ValueError) -> Double in
                    guard let value = Double(text), value > 1, value <= 100 else {
                        throw ValueError(.invalidField, "expected a number above 1 and at most 100, such as 2 or 1.5, found '\(text.preview)'")
                    }
                    return value
                }
            }
            let max = fields.required("max").flatMap { reader.duration($0, "\(path).block.escalate.max") }
            if let max, let duration, max < duration {
                reader.error(n, "\(path).block.escalate.max (\(max.text)) is shorter than the duration (\(duration.text))")
            }
            if let factor, let max { escalate = Escalation(factor: factor, max: max) }
        }
        var direction = Direction.both
        if let n = block["direction"] {
            direction = reader.word(n, "\(path).block.direction") { (text) throws(ValueError) in try Direction(name: text) } ?? .both
        }
        let nonIP = playbook.match.possibleKinds.filter { !$0.isNetwork }
        if !nonIP.isEmpty {
            reader.error(
                action,
                "block acts on addresses and networks, but this playbook can match \(Condition.list(nonIP.map(\.rawValue))); limit match.kind to ipv4, ipv6 and cidr"
            )
        }
        guard let duration else { return nil }
        return BlockAction(duration: duration, direction: direction, escalate: escalate)
    }

    public func plan(_ item: Item, playbook: Playbook, in context: PlanContext) -> [Intent] {
        guard let target = item.indicator?.network else { return [.nothing("nothing to block in \(item.label)")] }
        var request = BlockRequest(
            target: target, direction: direction, duration: duration, playbook: playbook.name, item: item.id, origin: item.origin,
            reason: "playbook \(playbook.name)", simulated: playbook.mode == .simulate, escalation: escalate
        )
        request.maxDuration = context.maxBlock
        return [.block(request)]
    }

    public func explain(_ intent: Intent, item: Item, playbook: Playbook, in context: PlanContext) -> String {
        guard case .block(let request) = intent else { return "block: \(Intent.why(intent))" }
        if let refusal = context.policy.check(request.target) { return "block: refused by the safety rails: \(refusal.message)" }
        let escalation = escalate.map { ", \($0.factor.formatted())x longer for each earlier block by this playbook, up to \($0.max.text)" } ?? ""
        let verb = playbook.mode == .simulate ? "record (simulate, not enforced) a block of" : "block"
        return "block: \(verb) \(request.target) for \(duration.text)\(escalation), \(direction.rawValue)"
    }
}
