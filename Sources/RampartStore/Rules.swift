import Foundation
import GRDB
import RampartCore

/// What the file `rules/FORMAT/NAME.EXT` under the state directory holds.
public struct RuleFile: Sendable, Hashable {
    public var format: RuleFormat
    public var name: String
    public var content: String

    public init(format: RuleFormat, name: String, content: String) {
        self.format = format
        self.name = name
        self.content = content
    }

    public var relativePath: String { format.relativePath(name: name) }
}

/// A rule in the rules directory, with where it came from.
public struct InstalledRule: Sendable {
    public var format: RuleFormat
    public var ruleID: String
    public var name: String
    public var version: String?
    public var title: String
    /// The rule item installed.
    public var item: String
    /// The item a playbook rendered it from, if one did.
    public var parent: String?
    public var origin: String
    public var via: String
    public var playbook: String
    public var content: String
    public var installedAt: Date

    public var file: RuleFile { RuleFile(format: format, name: name, content: content) }

    init?(row: Row) {
        guard let format = RuleFormat(rawValue: row["format"]) else { return nil }
        self.format = format
        ruleID = row["rule_id"]
        name = row["name"]
        version = row["version"]
        title = row["title"]
        item = row["item"]
        parent = row["parent"]
        origin = row["origin"]
        via = row["via"]
        playbook = row["playbook"]
        content = row["content"]
        installedAt = Date(milliseconds: row["installed_at"])
    }
}

/// What installing a rule did.
public enum RuleInstall: Sendable, Equatable {
    /// Written; `removed` is the file of the version it replaced, when that had another name.
    case installed(RuleFile, removed: RuleFile?)
    /// The same rule, same content and name, was installed already.
    case unchanged
    /// Refused (audited): an older version than the one installed, or a name another rule has.
    case refused(String)
}

extension StoreTransaction {
    /// The signature id and content of the rule a playbook renders for a value: the id of an
    /// earlier rendering for the same playbook and value is kept (local sids start at 1,000,000).
    public mutating func renderRule(format: RuleFormat, playbook: String, item: Item, render: (Int) -> String, at now: Date) throws -> String {
        let value = item.indicator?.value ?? item.id
        let name = RuleAction.fileName(playbook: playbook, value: value)
        let existing = try Int.fetchOne(cached("SELECT sid FROM rule WHERE format = ? AND name = ?"), arguments: [format.rawValue, name])
        let sid = try existing ?? ((Int.fetchOne(cached("SELECT MAX(sid) FROM rule")) ?? 999_999) + 1)
        let content = render(sid)
        try execute(
            "INSERT OR REPLACE INTO rule(format, name, sid, playbook, item, value, content, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [format.rawValue, name, sid, playbook, item.id, value, content, now.milliseconds]
        )
        return content
    }

    /// The rule installed for a format and rule id.
    public func installedRule(format: RuleFormat, ruleID: String) throws -> InstalledRule? {
        try Row.fetchOne(cached("SELECT * FROM installed_rule WHERE format = ? AND rule_id = ?"), arguments: [format.rawValue, ruleID])
            .flatMap(InstalledRule.init(row:))
    }

    /// Installs a rule item's rule (the item is stored already), replacing the installed version
    /// of the same rule unless that one is newer; audited whatever happens.
    public mutating func install(_ item: Item, playbook: String, at now: Date) throws -> RuleInstall {
        guard let rule = item.rule else { return .refused("the item is not a rule") }
        let existing = try installedRule(format: rule.format, ruleID: rule.ruleID)
        if let existing, existing.content == rule.content, existing.name == rule.name { return .unchanged }
        var refusal: String?
        if let existing, let installed = existing.version, let offered = rule.version, StoreTransaction.isOlder(offered, than: installed) {
            refusal = "version \(offered) is older than the installed version \(installed) (item \(existing.item))"
        } else if let holder = try String.fetchOne(
            cached("SELECT rule_id FROM installed_rule WHERE format = ? AND name = ? AND rule_id != ?"),
            arguments: [rule.format.rawValue, rule.name, rule.ruleID]
        ) {
            refusal = "the name \(rule.name) belongs to the installed rule \(holder)"
        }
        if let refusal {
            try audit(.ruleRefused, subject: item.id, at: now) { w in
                w.field("playbook", playbook)
                w.field("format", rule.format.rawValue)
                w.field("rule_id", rule.ruleID)
                w.field("reason", refusal)
            }
            return .refused(refusal)
        }
        try execute(
            """
            INSERT OR REPLACE INTO installed_rule(format, rule_id, name, version, title, item, parent, origin, via, playbook, content, installed_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                rule.format.rawValue, rule.ruleID, rule.name, rule.version, rule.title, item.id, rule.parent, item.origin, item.via, playbook,
                rule.content, now.milliseconds,
            ]
        )
        try audit(.ruleInstalled, subject: item.id, at: now) { w in
            w.field("playbook", playbook)
            w.field("format", rule.format.rawValue)
            w.field("rule_id", rule.ruleID)
            if let version = rule.version { w.field("version", version) }
            w.field("path", rule.relativePath)
            if let existing {
                w.field("replaced_item", existing.item)
                if let version = existing.version { w.field("replaced_version", version) }
            }
        }
        let removed = existing.flatMap { $0.name == rule.name ? nil : $0.file }
        return .installed(RuleFile(format: rule.format, name: rule.name, content: rule.content), removed: removed)
    }

    /// Versions compare as numbers when both are (Suricata's rev), else as text (Sigma's dates).
    static func isOlder(_ a: String, than b: String) -> Bool {
        if let x = Int(a), let y = Int(b) { return x < y }
        return a < b
    }

    /// Removes the rules an item installed (a revoked rule item); returns their files.
    public mutating func uninstallRules(ofItem item: String, reason: String, by: String, now: Date) throws -> [RuleFile] {
        try uninstallRules(where: "item = ?", [item], reason: reason, by: by, now: now)
    }

    /// Removes the rules that items from `via` (`peer:NAME`) installed.
    public mutating func uninstallRules(from via: String, reason: String, by: String, now: Date) throws -> [RuleFile] {
        try uninstallRules(where: "via = ?", [via], reason: reason, by: by, now: now)
    }

    private mutating func uninstallRules(
        where condition: String, _ arguments: StatementArguments, reason: String, by: String, now: Date
    ) throws -> [RuleFile] {
        let rules = try Row.fetchAll(cached("SELECT * FROM installed_rule WHERE \(condition)"), arguments: arguments).compactMap(
            InstalledRule.init(row:))
        for rule in rules {
            try execute("DELETE FROM installed_rule WHERE format = ? AND rule_id = ?", [rule.format.rawValue, rule.ruleID])
            try audit(.ruleRemoved, subject: rule.item, at: now) { w in
                w.field("format", rule.format.rawValue)
                w.field("rule_id", rule.ruleID)
                w.field("path", rule.file.relativePath)
                w.field("reason", reason)
                w.field("by", by)
            }
        }
        return rules.map(\.file)
    }
}

extension Store {
    /// Every installed rule, by format and name.
    public func installedRules() async throws -> [InstalledRule] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM installed_rule ORDER BY format, name").compactMap(InstalledRule.init(row:))
        }
    }
}
