/// Every event the audit log records, by the name it has there. `docs/operations.md` has the
/// table of them (checked against this list by `DocsTests`). An item's events go into the item's
/// own entry (`caused`); the others get an entry each.
public enum AuditEvent: String, CaseIterable, Sendable {
    // An item's entry, and what it holds.
    case itemAccepted = "item.accepted"
    case playbookMatched = "playbook.matched"
    case actionRule = "action.rule"
    case actionExec = "action.exec"
    case actionPropagate = "action.propagate"
    case actionNotify = "action.notify"
    case ruleRendered = "rule.rendered"
    case ruleInstalled = "rule.installed"
    case ruleUnchanged = "rule.unchanged"
    case ruleInvalid = "rule.invalid"
    case ruleRefused = "rule.refused"
    // Decisions: in an item's entry when the item caused them, otherwise entries of their own.
    case decisionCreated = "decision.created"
    case decisionExtended = "decision.extended"
    case decisionMerged = "decision.merged"
    case decisionRefused = "decision.refused"
    case decisionRevoked = "decision.revoked"
    case decisionExpired = "decision.expired"
    case allowCreated = "allow.created"
    case allowRevoked = "allow.revoked"
    case allowExpired = "allow.expired"
    // Entries of their own.
    case itemRefused = "item.refused"
    case itemsRefused = "items.refused"
    case ruleRemoved = "rule.removed"
    case ruleRevoked = "rule.revoked"
    case configReloaded = "config.reloaded"
    case configReloadFailed = "config.reload_failed"
    case peerReceived = "peer.received"
    case peerDelivered = "peer.delivered"
    case peerDeliveryFailed = "peer.delivery_failed"
    case peerWithheld = "peer.withheld"
    case peerRefused = "peer.refused"
    case peerDisabled = "peer.disabled"
    case peerReplayed = "peer.replayed"
    case peerSynced = "peer.synced"
    case peerPurged = "peer.purged"
    case revocationRefused = "revocation.refused"
    case revocationKept = "revocation.kept"

    /// What a simulated action of `kind` records, and what an exec records once it ran.
    public static func action(_ kind: String) -> AuditEvent? {
        AuditEvent(rawValue: "action.\(kind)")
    }
}
