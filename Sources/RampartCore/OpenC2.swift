import Foundation

/// OpenC2 commands Rampart carries out as a Stateless Packet Filter (OASIS OpenC2 Language
/// Specification 1.0, SLPF profile 1.0): `query features`, `deny` and `allow` of `ipv4_net` and
/// `ipv6_net`, `delete` of `slpf:rule_number`. Parsing is strict: what is malformed is a 400, what
/// is valid but not carried out here is a 501 with the status text the profile gives.
public enum OpenC2 {
    /// An OpenC2 response status and its text, for what cannot be carried out.
    public struct Failure: Error, Sendable, Equatable {
        public var status: Int
        public var text: String

        public init(status: Int, text: String) {
            self.status = status
            self.text = text
        }

        public static func badRequest(_ text: String) -> Failure { Failure(status: 400, text: text) }
        static let targetNotSupported = Failure(status: 501, text: "Target type not supported")
        static let optionNotSupported = Failure(status: 501, text: "Option not supported")
        static let commandNotSupported = Failure(status: 501, text: "Command not supported")
    }

    public enum ResponseRequested: String, Sendable {
        case none, ack, status, complete
    }

    public enum Feature: String, Sendable, CaseIterable {
        case versions, profiles, pairs, rateLimit = "rate_limit"
    }

    public enum Action: Sendable, Equatable {
        case queryFeatures([Feature])
        /// Block, or allow, the network (traffic from or to it, by `direction`) for `duration`.
        case deny(IPNetwork, Duration, Direction)
        case allow(IPNetwork, Duration, Direction)
        case delete(ruleNumber: Int64)
    }

    public struct Command: Sendable, Equatable {
        public var action: Action
        public var responseRequested: ResponseRequested
        public var commandID: String?
    }

    /// The action-target pairs carried out, as `query features` with `pairs` reports them.
    public static let pairs: KeyValuePairs<String, [String]> = [
        "query": ["features"], "deny": ["ipv4_net", "ipv6_net"], "allow": ["ipv4_net", "ipv6_net"], "delete": ["slpf:rule_number"],
    ]

    /// A command with no time window lasts this long (Rampart's longest block).
    public static let longest: Duration = .seconds(366 * 86_400)

    /// Reads a command (`{"action": ..., "target": ..., "args": ..., "actuator": ...}`) at `now`.
    public static func parse(_ json: JSONValue, now: Date) throws(Failure) -> Command {
        guard case .object(let members) = json else { throw .badRequest("the command must be a JSON object") }
        var fields: [String: JSONValue] = [:]
        for (name, value) in members {
            guard ["action", "target", "args", "actuator", "command_id"].contains(name) else {
                throw .badRequest("unknown command field '\(name.preview)'")
            }
            fields[name] = value
        }
        guard case .string(let action)? = fields["action"] else { throw .badRequest("'action' must be a string") }
        guard case .object(let targets)? = fields["target"], targets.count == 1, let (targetName, target) = targets.first else {
            throw .badRequest("'target' must be an object with exactly one target")
        }
        var commandID: String?
        if let id = fields["command_id"] {
            guard case .string(let text) = id, (1...36).contains(text.count), !text.contains(where: \.isWhitespace) else {
                throw .badRequest("'command_id' must be a string of 1 to 36 characters without spaces")
            }
            commandID = text
        }
        if let actuator = fields["actuator"] {
            guard case .object(let profiles) = actuator, profiles.count == 1, let (profile, specifiers) = profiles.first else {
                throw .badRequest("'actuator' must be an object with exactly one profile")
            }
            guard profile == "slpf" else { throw Failure(status: 501, text: "Actuator profile not supported: this consumer is slpf") }
            guard case .object = specifiers else { throw .badRequest("'actuator.slpf' must be an object") }
        }
        let args = try Args(fields["args"])

        switch action {
        case "query":
            guard targetName == "features" else { throw .targetNotSupported }
            guard case .array(let names) = target else { throw .badRequest("'features' must be an array") }
            var features: [Feature] = []
            for name in names {
                guard case .string(let text) = name, let feature = Feature(rawValue: text) else {
                    throw .badRequest("unknown feature; expected versions, profiles, pairs or rate_limit")
                }
                if !features.contains(feature) { features.append(feature) }
            }
            guard !args.hasAnyBut(responseRequested: .complete) else {
                throw .badRequest("query features takes no argument but response_requested: complete")
            }
            return Command(action: .queryFeatures(features), responseRequested: args.responseRequested ?? .complete, commandID: commandID)
        case "deny", "allow":
            guard targetName == "ipv4_net" || targetName == "ipv6_net" else { throw .targetNotSupported }
            guard case .string(let text) = target else { throw .badRequest("'\(targetName)' must be a string in CIDR notation") }
            let network: IPNetwork
            do {
                network = try IPNetwork(parsing: text, allowBareAddress: true)
            } catch {
                throw .badRequest("'\(targetName)': \(error.message)")
            }
            guard (network.family == .v4) == (targetName == "ipv4_net") else { throw .badRequest("'\(text.preview)' is not an \(targetName)") }
            let duration = try args.duration(now: now)
            let direction = args.direction ?? .both
            let what: Action = action == "deny" ? .deny(network, duration, direction) : .allow(network, duration, direction)
            return Command(action: what, responseRequested: args.responseRequested ?? .complete, commandID: commandID)
        case "delete":
            guard targetName == "slpf:rule_number" else { throw .targetNotSupported }
            let number: Int64?
            switch target {
            case .number(let value): number = value == value.rounded() && value >= 0 && value < 1e15 ? Int64(value) : nil
            case .string(let text): number = Int64(text).flatMap { $0 >= 0 ? $0 : nil }
            default: number = nil
            }
            guard let number else { throw .badRequest("'slpf:rule_number' must be a non-negative integer (or its digits as a string)") }
            guard args.start == nil, args.stop == nil, args.length == nil, args.direction == nil else {
                throw .badRequest("delete takes no time window or direction")
            }
            return Command(action: .delete(ruleNumber: number), responseRequested: args.responseRequested ?? .complete, commandID: commandID)
        case "update":
            throw .commandNotSupported
        default:
            throw .commandNotSupported
        }
    }

    /// A command's `args`, checked.
    struct Args {
        var start: Date?
        var stop: Date?
        var length: Duration?
        var responseRequested: ResponseRequested?
        var direction: Direction?

        init(_ json: JSONValue?) throws(Failure) {
            guard let json else { return }
            guard case .object(let members) = json, !members.isEmpty else { throw .badRequest("'args' must be an object with at least one argument") }
            func milliseconds(_ value: JSONValue, _ name: String) throws(Failure) -> Int64 {
                guard case .number(let number) = value, number == number.rounded(), number >= 0, number < 1e15 else {
                    throw .badRequest("'\(name)' must be a whole number of milliseconds")
                }
                return Int64(number)
            }
            for (name, value) in members {
                switch name {
                case "start_time": start = Date(milliseconds: try milliseconds(value, name))
                case "stop_time": stop = Date(milliseconds: try milliseconds(value, name))
                case "duration":
                    let ms = try milliseconds(value, name)
                    guard ms > 0 else { throw .badRequest("'duration' must be positive") }
                    length = .milliseconds(ms)
                case "response_requested":
                    guard case .string(let text) = value, let parsed = ResponseRequested(rawValue: text) else {
                        throw .badRequest("'response_requested' must be none, ack, status or complete")
                    }
                    responseRequested = parsed
                case "slpf":
                    guard case .object(let options) = value else { throw .badRequest("'args.slpf' must be an object") }
                    for (option, setting) in options {
                        switch (option, setting) {
                        case ("direction", .string("both")): direction = .both
                        case ("direction", .string("ingress")): direction = .inbound
                        case ("direction", .string("egress")): direction = .outbound
                        case ("direction", _): throw .badRequest("'direction' must be both, ingress or egress")
                        // The firewall drops; it neither rejects nor pretends to accept.
                        case ("drop_process", .string("none")): break
                        case ("drop_process", .string("reject")), ("drop_process", .string("false_ack")): throw .optionNotSupported
                        case ("drop_process", _): throw .badRequest("'drop_process' must be none, reject or false_ack")
                        // Decisions are kept across restarts: persistent: false cannot be honoured.
                        case ("persistent", .bool(true)): break
                        case ("persistent", .bool(false)): throw .optionNotSupported
                        case ("persistent", _): throw .badRequest("'persistent' must be a boolean")
                        // Rule numbers are Rampart's own.
                        case ("insert_rule", .number): throw .optionNotSupported
                        case ("insert_rule", _): throw .badRequest("'insert_rule' must be an integer")
                        default: throw .badRequest("unknown slpf argument '\(option.preview)'")
                        }
                    }
                default:
                    throw .badRequest("unknown argument '\(name.preview)'")
                }
            }
            if start != nil && stop != nil && length != nil { throw .badRequest("give at most two of start_time, stop_time and duration") }
        }

        func hasAnyBut(responseRequested allowed: ResponseRequested) -> Bool {
            start != nil || stop != nil || length != nil || direction != nil || (responseRequested.map { $0 != allowed } ?? false)
        }

        /// From now: a window that starts later cannot be scheduled here; none lasts `longest`.
        func duration(now: Date) throws(Failure) -> Duration {
            if let start, start.timeIntervalSince(now) > 1 { throw .optionNotSupported }
            let end: Date? = stop ?? length.map { (start ?? now).addingTimeInterval(Double($0.milliseconds) / 1000) }
            guard let end else { return OpenC2.longest }
            let left = end.timeIntervalSince(now)
            guard left >= 1 else { throw .badRequest("the time window has already ended") }
            return min(.milliseconds(Int64(left * 1000)), OpenC2.longest)
        }
    }
}
