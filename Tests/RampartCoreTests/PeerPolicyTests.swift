import Foundation
import Testing
import Yams

@testable import RampartCore

/// The pure parts of propagation: the delivery schedule (with a manual clock), sharing and trust
/// configuration, and the message format.
@Suite struct PeerPolicyTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func seconds(_ schedule: DeliverySchedule, after now: Date) -> Double {
        guard case .waiting(let until) = schedule.state else { return -1 }
        return until.timeIntervalSince(now)
    }

    /// A replay (enable) while a request is in flight: that request's answer, even a 410, no
    /// longer decides the schedule, so the replay is not undone.
    @Test func anAttemptBegunBeforeAReplayDoesNotUndoIt() {
        var schedule = DeliverySchedule()
        schedule.record(.failed(status: 410, retryAfter: nil), at: t0, random: 0)
        #expect(schedule.state == .disabled(reason: "the peer answered 410 Gone"))
        let begun = schedule.epoch
        schedule.enable()
        #expect(schedule.state == .ready)
        let stale = schedule.record(.failed(status: 410, retryAfter: nil), begun: begun, at: t0, random: 0)
        #expect(!stale)
        #expect(schedule.state == .ready)
        #expect(schedule.failures == 0)
        // An attempt begun after the replay counts.
        let current = schedule.record(.failed(status: 410, retryAfter: nil), begun: schedule.epoch, at: t0, random: 0)
        #expect(current)
        #expect(schedule.state == .disabled(reason: "the peer answered 410 Gone"))
    }

    @Test func backoffDoublesWithJitterAndResetsOnDelivery() {
        var schedule = DeliverySchedule()
        #expect(schedule.isDue(at: t0))
        // First retry within 1 s, whatever the jitter.
        for random in [0.0, 0.5, 0.999] {
            var s = DeliverySchedule()
            s.record(.failed(status: nil, retryAfter: nil), at: t0, random: random)
            #expect(seconds(s, after: t0) > 0 && seconds(s, after: t0) <= 1)
        }
        var now = t0
        var delays: [Double] = []
        for _ in 0..<10 {
            schedule.record(.failed(status: 503, retryAfter: nil), at: now, random: 1)
            delays.append(seconds(schedule, after: now))
            #expect(!schedule.isDue(at: now))
            now = now.addingTimeInterval(delays.last!)
            #expect(schedule.isDue(at: now))
        }
        #expect(delays.prefix(5) == [0.5, 1, 2, 4, 8])
        #expect(delays.last == 60)  // capped at maxDelay
        // Jitter: random 0 waits half the step.
        var half = DeliverySchedule()
        half.record(.failed(status: 500, retryAfter: nil), at: t0, random: 0)
        half.record(.failed(status: 500, retryAfter: nil), at: t0, random: 0)
        #expect(seconds(half, after: t0) == 0.5)
        schedule.record(.delivered, at: now, random: 0.3)
        #expect(schedule.state == .ready && schedule.failures == 0)
    }

    @Test func retryAfterIsHonouredAndBounded() {
        var schedule = DeliverySchedule()
        schedule.record(.failed(status: 429, retryAfter: .seconds(42)), at: t0, random: 0.5)
        #expect(seconds(schedule, after: t0) == 42)
        schedule.record(.failed(status: 503, retryAfter: .seconds(86_400 * 30)), at: t0, random: 0.5)
        #expect(seconds(schedule, after: t0) == 3600)
        #expect(DeliverySchedule.retryAfter("120", now: t0) == .seconds(120))
        #expect(DeliverySchedule.retryAfter("Fri, 15 Jan 2027 08:00:30 GMT", now: Date(timeIntervalSince1970: 1_800_000_000)) != nil)
        #expect(DeliverySchedule.retryAfter("soon", now: t0) == nil)
    }

    @Test func redirectsFailAndGoneDisables() {
        var schedule = DeliverySchedule()
        schedule.record(.failed(status: 301, retryAfter: nil), at: t0, random: 0.5)
        #expect(schedule.failures == 1)
        #expect(!schedule.isDue(at: t0))
        schedule.record(.failed(status: 410, retryAfter: nil), at: t0, random: 0.5)
        #expect(schedule.state == .disabled(reason: "the peer answered 410 Gone"))
        #expect(!schedule.isDue(at: t0.addingTimeInterval(86_400 * 365)))
        schedule.enable()
        #expect(schedule.isDue(at: t0))
        #expect(schedule.deadBefore(t0) == t0.addingTimeInterval(-86_400))
    }

    func item(tlp: TLP, kind: IndicatorKind = .ipv4, value: String = "198.18.0.9", tags: [String] = []) -> Item {
        Item(
            id: IDGenerator.shared.next(),
            payload: .indicator(Indicator(kind: kind, value: value, tlp: tlp, source: "feed", tags: tags, description: "secret notes")),
            via: "api:soc", origin: "a", suggested: ["block", "rule"], receivedAt: t0
        )
    }

    @Test func tlpRedNeverLeavesWhateverThePolicy() {
        var open = SharingPolicy()
        open.maxTLP = .amberStrict
        for policy in [SharingPolicy(), open] {
            #expect(throws: SharingPolicy.Withheld.self) { try policy.share(item(tlp: .red)).get() }
        }
        #expect((try? SharingPolicy().share(item(tlp: .amberStrict)).get()) == nil)
        #expect((try? open.share(item(tlp: .amberStrict)).get()) != nil)
    }

    @Test func sharingFiltersKindsRegionsActionsAndRedacts() throws {
        var policy = SharingPolicy()
        policy.kinds = [.ipv4]
        policy.regions = ["eu"]
        policy.actions = ["block"]
        policy.redact = ["description", "source"]
        #expect((try? policy.share(item(tlp: .green, kind: .domain, value: "evil.example")).get()) == nil)
        #expect((try? policy.share(item(tlp: .green, tags: ["region:us"])).get()) == nil)
        let shared = try policy.share(item(tlp: .green, tags: ["region:eu", "c2"])).get()
        #expect(shared.suggested == ["block"])
        #expect(shared.indicator?.description == nil && shared.indicator?.source == nil)
        #expect(shared.indicator?.tags == ["region:eu", "c2"])
        // Items without a region tag go to every peer.
        #expect((try? policy.share(item(tlp: .green)).get()) != nil)
    }

    @Test func rulesGoAsWrittenUnderTheSamePolicy() throws {
        let content = #"alert ip any any -> any any (msg:"x"; sid:1;)"#
        func ruleItem(tlp: TLP, tags: [String] = []) throws -> Item {
            Item(
                id: IDGenerator.shared.next(), payload: .rule(try Rule(format: .suricata, content: content, tlp: tlp, tags: tags)), via: "api:soc",
                origin: "a", suggested: ["rule"], receivedAt: Date()
            )
        }
        var policy = SharingPolicy()
        policy.kinds = [.ipv4]  // indicator kinds: they do not hold rules back
        policy.regions = ["eu"]
        policy.redact = ["tags", "description"]
        func withheld(_ item: Item) -> ErrorCode? {
            if case .failure(let reason) = policy.share(item) { reason.code } else { nil }
        }
        #expect(try withheld(ruleItem(tlp: .red)) == "tlp_red")
        #expect((try? policy.share(ruleItem(tlp: .amberStrict)).get()) == nil)
        #expect((try? policy.share(ruleItem(tlp: .green, tags: ["region:us"])).get()) == nil)
        let shared = try policy.share(ruleItem(tlp: .green, tags: ["region:eu", "c2"])).get()
        #expect(shared.rule?.content == content && shared.rule?.tags == ["region:eu"] && shared.suggested == ["rule"])
        policy.items = ["indicator"]
        #expect(try withheld(ruleItem(tlp: .green)) == "item_type")
        #expect((try? policy.share(item(tlp: .green)).get()) != nil)
    }

    func config(_ peers: String, signing: Bool = true) throws -> Config {
        let yaml = """
            node: {id: a}
            state_dir: /tmp/s
            playbooks: /tmp/p
            \(signing ? "signing: {key_file: /tmp/node.key}" : "")
            peers:
            \(peers)
            """
        return try Config.parse(YAMLSource.parse(yaml, file: "rampart.yaml"), path: "/etc/rampart/rampart.yaml")
    }

    @Test func peersParseWithTheirPolicies() throws {
        let key = WebhookSignature.SigningKey().publicKey.text
        let parsed = try config(
            """
              - name: cert-fr
                url: https://rampart.cert-fr.example:8470/v1/peer/events
                public_key: \(key)
                share: {max_tlp: green, items: [rule], kinds: [ipv4, cidr], actions: [block], regions: [eu], redact: [description]}
                accept: {items: [indicator], suggested: [block], max_duration: 24h, min_confidence: 60, rate: 1000/min}
                expires: 2027-12-31
            """
        )
        let peer = try #require(parsed.peers.first)
        #expect(peer.nodeID == "cert-fr" && peer.via == "peer:cert-fr")
        #expect(
            peer.share.maxTLP == .green && peer.share.items == ["rule"] && peer.share.kinds == [.ipv4, .cidr] && peer.share.redact == ["description"])
        #expect(peer.accept.items == [.indicator] && peer.accept.maxDuration == .seconds(86_400) && peer.accept.minConfidence == 60)
        #expect(peer.accept.rate?.count == 1000 && peer.accept.rate?.per == .seconds(60))
        #expect(peer.hasExpired(at: try Timestamp.parse("2027-12-31T00:00:00Z")))
        #expect(!peer.hasExpired(at: try Timestamp.parse("2027-12-30T23:59:59Z")))
    }

    @Test func peerMistakesAreReportedWithTheirPlace() throws {
        let problems: [String]
        do {
            _ = try config(
                """
                  - name: x
                    url: ftp://x.example/
                    share: {max_tlp: red, redact: [value], items: [revoke]}
                    accept: {rate: lots}
                  - name: x
                    url: http://x.example/
                    secret: whsec_short
                """,
                signing: false
            )
            problems = []
        } catch {
            problems = (error as? Diagnostics)?.items.map(\.description) ?? ["\(error)"]
        }
        let expected = [
            "rampart.yaml:7:10: peers[0].url must be an http:// or https:// URL",
            "rampart.yaml:6:5: peer 'x' needs a public_key",
            "rampart.yaml:10:5: peer name 'x' is used twice",
            "TLP:RED never leaves this node",
            "peers[0].share.redact: 'value' cannot be redacted",
            "peers[0].share.items: unknown item type 'revoke'; expected indicator or rule",
            "peers[0].accept.rate: expected COUNT/s, COUNT/min or COUNT/h",
            "peers[1].secret: a shared secret is whsec_",
            "peer 'x' shares no secret, so what is sent to it is signed with this node's key: set signing.key_file",
        ]
        for text in expected {
            #expect(problems.contains { $0.contains(text) }, "missing: \(text)\nin: \(problems.joined(separator: "\n"))")
        }
    }

    @Test func notifyTemplatesMustMakeJSONAndPropagateMustNameKnownPeers() throws {
        func problems(_ actions: String) -> [String] {
            let yaml = "name: p\nmatch: {kind: [ipv4]}\nactions:\n\(actions)\n"
            do {
                _ = try PlaybookLoader.parse(YAMLSource.parse(yaml, file: "p.yaml"), file: "p.yaml", lists: [:], peers: ["cert-fr"])
                return []
            } catch {
                return error.items.map(\.description)
            }
        }
        #expect(problems(#"  - notify: {url: "https://chat.example/hook", template: '{"text": "{{value}}"}'}"#).isEmpty)
        #expect(
            problems(#"  - notify: {url: "https://chat.example/hook", template: '{"text": {{value}}}'}"#).first?.contains(
                "does not make a JSON document") == true)
        #expect(problems(#"  - notify: {url: "ftp://chat.example/hook", template: '{}'}"#).first?.contains("http:// or https://") == true)
        #expect(
            problems(#"  - notify: {url: "https://chat.example/hook", template: '{"v": "{{valeu}}"}'}"#).first?.contains(
                "names 'valeu', which is not a field") == true)
        #expect(problems("  - propagate: {to: [cert-fr], suggest: [block], relay: true, hops: 2}").isEmpty)
        #expect(
            problems("  - propagate: {to: [cert-de]}") == [
                "p.yaml:4:21: actions[0].propagate.to: unknown peer 'cert-de'; the configuration has cert-fr (or say to: all)"
            ])
        #expect(problems("  - propagate: {to: all, suggest: [dance]}").first?.contains("unknown action 'dance'") == true)
    }

    @Test func messagesRoundTripAndBadEntriesAreRefusedAlone() throws {
        var sent = item(tlp: .green)
        sent.suggested = ["block"]
        let revocation = PeerMessage.Revocation(id: IDGenerator.shared.next(), item: sent.id, reason: "false positive")
        let garbage: [UInt8] = Array(#"{"id":"nope","type":"indicator"}"#.utf8)
        let body = PeerMessage.encode(path: ["a", "b"], hopsLeft: 2, entries: [sent.wireJSON, revocation.json, garbage], at: t0)
        let message = try PeerMessage.decode(body, via: "peer:b", maxItems: 10, now: t0)
        #expect(message.origin == "a" && message.sender == "b" && message.hopsLeft == 2)
        guard case .item(let received) = try message.entries[0].get() else { Issue.record("not an item"); return }
        #expect(received.id == sent.id && received.indicator == sent.indicator && received.via == "peer:b")
        #expect(received.path == ["a", "b"] && received.hopsLeft == 2 && received.suggested == ["block"])
        guard case .revocation(let back) = try message.entries[1].get() else { Issue.record("not a revocation"); return }
        #expect(back == revocation)
        #expect(throws: ValueError.self) { try message.entries[2].get() }
        // An item claiming another origin than the message's is refused.
        let forged = PeerMessage.encode(path: ["c"], hopsLeft: 0, entries: [sent.wireJSON], at: t0)
        #expect(throws: ValueError.self) { try PeerMessage.decode(forged, via: "peer:c", maxItems: 10, now: t0).entries[0].get() }
        #expect(throws: ValueError.self) { try PeerMessage.decode(body, via: "peer:b", maxItems: 2, now: t0) }
        #expect(throws: ValueError.self) { try PeerMessage.decode(Array(#"{"type":"other"}"#.utf8), via: "peer:b", maxItems: 2, now: t0) }
    }
}
