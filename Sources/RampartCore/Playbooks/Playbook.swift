import Foundation

/// A compiled playbook: which items it matches and what it does about them.
public struct Playbook: Sendable {
    public enum Trigger: String, Sendable, CaseIterable {
        case indicator, rule
    }

    public enum Mode: String, Sendable, CaseIterable {
        case enforce, simulate
    }

    public var name: String
    public var description: String?
    /// The file it was loaded from, for messages.
    public var file: String
    public var on: Trigger = .indicator
    public var mode: Mode = .enforce
    /// Lower runs first.
    public var priority = 100
    /// Ends evaluation after this playbook when it matches.
    public var stop = false
    public var match: Condition = .all([])
    /// Corroboration before acting, counted in the store when the item is committed.
    public var sightings: Sightings?
    /// In order; each kind in `Actions/`.
    public var actions: [any PlaybookAction] = []

    public init(name: String, file: String) {
        self.name = name
        self.file = file
    }
}

/// `sightings: {min: 2, distinct: source, within: 1h}`: the value must have been seen at least
/// `min` times (counting this item), or by `min` distinct sources, API keys or peers (`via`), or
/// origin nodes, within the window.
public struct Sightings: Sendable, Equatable {
    public enum Distinct: String, Sendable, CaseIterable {
        case source, via, origin
    }

    public var min: Int
    public var distinct: Distinct?
    public var within: Duration

    public init(min: Int, distinct: Distinct?, within: Duration) {
        self.min = min
        self.distinct = distinct
        self.within = within
    }

    public var summary: String {
        "seen \(distinct.map { "by \(min) distinct \($0.rawValue)s" } ?? "\(min) times") within \(within.text)"
    }
}
