import Foundation
import HummingbirdTesting
import RampartCore
import RampartServer
import RampartTesting
import Testing

@Suite struct DecisionAPITests {
    /// A revocation reason peers would refuse (over 1,024 bytes, or with a control character) is
    /// refused where it enters, and the decision stays in force.
    @Test func revocationReasonsArePeersCheckedOnEntry() async throws {
        let node = try TestNode()
        try await node.run { client, _ in
            let created = try await client.call(
                .post, "/v1/decisions", contentType: "application/json", body: #"{"value":"77.90.185.20","duration":"1h"}"#)
            let id = try #require((created["decision"] as? [String: Any])?["id"] as? String)
            for reason in [String(repeating: "x", count: 1025), "line%0Abreak"] {
                let refused = try await client.call(.delete, "/v1/decisions/\(id)?reason=\(reason)")
                #expect(refused.status == .badRequest)
                #expect(refused.problemCode == "invalid_parameter")
                let rule = try await client.call(.delete, "/v1/rules/\(id)?reason=\(reason)")
                #expect(rule.problemCode == "invalid_parameter")
            }
            let shown = try await client.call(.get, "/v1/decisions/\(id)", as: "read")
            #expect(shown["active"] as? Bool == true)
            let revoked = try await client.call(.delete, "/v1/decisions/\(id)?reason=\(String(repeating: "y", count: 1024))")
            #expect(revoked.status == .ok)
        }
    }

    @Test func manualBlockMergeListAndRevoke() async throws {
        let node = try TestNode()
        try await node.run { client, _ in
            let created = try await client.call(
                .post, "/v1/decisions", contentType: "application/json",
                body: #"{"value":"77.90.185.20","duration":"1h","direction":"inbound","reason":"scanner"}"#
            )
            #expect(created.status == .created)
            #expect(created["outcome"] as? String == "created")
            let decision = try #require(created["decision"] as? [String: Any])
            let id = try #require(decision["id"] as? String)
            #expect(created.headers[.location] == "/v1/decisions/\(id)")
            #expect(decision["value"] as? String == "77.90.185.20")
            #expect(decision["direction"] as? String == "inbound")
            #expect(decision["active"] as? Bool == true)
            #expect(decision["simulated"] as? Bool == false)

            // A longer block of the same value merges into the same decision: longest expiry, union of directions.
            let merged = try await client.call(
                .post, "/v1/decisions", contentType: "application/json", body: #"{"value":"77.90.185.20","duration":"4h","direction":"outbound"}"#
            )
            #expect(merged.status == .ok)
            #expect(merged["outcome"] as? String == "extended")
            let mergedDecision = try #require(merged["decision"] as? [String: Any])
            #expect(mergedDecision["id"] as? String == id)
            #expect(mergedDecision["direction"] as? String == "both")

            // A shorter one changes nothing, but is recorded as merged.
            let shorter = try await client.call(
                .post, "/v1/decisions", contentType: "application/json", body: #"{"value":"77.90.185.20","duration":"1m","direction":"both"}"#)
            #expect(shorter["outcome"] as? String == "unchanged")

            try await waitUntil { node.firewall.current.map(\.target.description) == ["77.90.185.20"] }
            #expect(node.firewall.current.first?.direction == .both)

            let cidr = try await client.call(
                .post, "/v1/decisions", contentType: "application/json", body: #"{"value":"45.9.148.0/24","duration":"2h"}"#)
            #expect(cidr.status == .created)

            // Filters: contains-IP finds the CIDR; origin; active.
            let containing = try await client.call(.get, "/v1/decisions?value=45.9.148.77", as: "read")
            #expect((containing["decisions"] as? [[String: Any]])?.map { $0["value"] as? String } == ["45.9.148.0/24"])
            let all = try await client.call(.get, "/v1/decisions?active=true&origin=test-1", as: "read")
            #expect((all["decisions"] as? [[String: Any]])?.count == 2)
            #expect(all.json.keys.contains("next"))
            let firstPage = try await client.call(.get, "/v1/decisions?limit=1", as: "read")
            let cursor = try #require(firstPage["next"] as? String)
            let secondPage = try await client.call(.get, "/v1/decisions?limit=1&cursor=\(cursor)", as: "read")
            let pageValues = [firstPage, secondPage].compactMap { ($0["decisions"] as? [[String: Any]])?.first?["value"] as? String }
            #expect(Set(pageValues) == ["77.90.185.20", "45.9.148.0/24"])
            #expect(try await client.call(.get, "/v1/decisions/\(id)", as: "read")["value"] as? String == "77.90.185.20")
            #expect(try await client.call(.get, "/v1/decisions/nope", as: "read").status == .notFound)

            // Revoke by id and by value; the firewall follows.
            let revoked = try await client.call(.delete, "/v1/decisions/\(id)?reason=false%20positive")
            #expect(revoked.status == .ok)
            #expect((revoked["revoked"] as? [[String: Any]])?.first?["state"] as? String == "revoked")
            #expect(try await client.call(.delete, "/v1/decisions/\(id)").status == .notFound)
            #expect(try await client.call(.delete, "/v1/decisions?value=45.9.148.0/24").status == .ok)
            try await waitUntil { node.firewall.current.isEmpty }
            let active = try await client.call(.get, "/v1/decisions?active=true", as: "read")
            #expect((active["decisions"] as? [[String: Any]])?.isEmpty == true)

            // Everything is in the audit chain, in order.
            let audit = try await client.call(.get, "/v1/audit?limit=1000", as: "read")
            let events = (audit["entries"] as? [[String: Any]])?.compactMap { $0["event"] as? String }
            #expect(
                events == ["decision.created", "decision.extended", "decision.merged", "decision.created", "decision.revoked", "decision.revoked"])
        }
    }

    @Test func safetyRailsRefuseAndAudit() async throws {
        let node = try TestNode()
        try await node.run { client, _ in
            let refusals: [(String, String)] = [
                ("127.0.0.1", "protected"), ("203.0.113.9", "protected"), ("10.1.2.3", "non_global"),
                ("0.0.0.0/0", "prefix_too_wide"), ("::ffff:127.0.0.1", "protected"), ("45.0.0.0/8", "prefix_too_wide"),
            ]
            for (value, code) in refusals {
                let answer = try await client.call(
                    .post, "/v1/decisions", contentType: "application/json", body: #"{"value":"\#(value)","duration":"1h"}"#)
                #expect(answer.status == .unprocessableContent, "\(value)")
                #expect(answer.problemCode == code, "\(value): \(answer.json)")
            }
            let invalid = try await client.call(
                .post, "/v1/decisions", contentType: "application/json", body: #"{"value":"8.8.8.8","duration":"forever"}"#)
            #expect(invalid.status == .badRequest)
            #expect(invalid.problemCode == "invalid_decision")
            let unknownField = try await client.call(
                .post, "/v1/decisions", contentType: "application/json", body: #"{"value":"8.8.8.8","duraton":"1h"}"#)
            #expect(unknownField.status == .badRequest)

            #expect(node.firewall.current.isEmpty)
            let audit = try await client.call(.get, "/v1/audit", as: "read")
            let events = (audit["entries"] as? [[String: Any]])?.compactMap { $0["event"] as? String }
            #expect(events == Array(repeating: "decision.refused", count: refusals.count))
        }
    }

    @Test func expiredDecisionsLeaveTheActiveListAndTheFirewall() async throws {
        let clock = ManualClock()
        let node = try TestNode(clock: clock)
        try await node.run { client, _ in
            let created = try await client.call(
                .post, "/v1/decisions", contentType: "application/json", body: #"{"value":"2a0e:1c80::1","duration":"30s"}"#)
            #expect(created.status == .created)
            try await waitUntil { node.firewall.current.count == 1 }

            // The store's checkpoint loop, the expiry sweep and the reconcile timer sleep on the
            // manual clock: advanced only once all three wait, each wakes exactly once per step.
            try await clock.waitForSleepers(3)
            clock.advance(by: .seconds(29))
            try await clock.waitForSleepers(3)
            #expect((try await client.call(.get, "/v1/decisions?active=true", as: "read")["decisions"] as? [Any])?.count == 1)
            #expect(node.firewall.current.count == 1)
            clock.advance(by: .seconds(2))
            // Out of the active list the moment it expires ...
            let listed = try await client.call(.get, "/v1/decisions", as: "read")
            let decision = try #require((listed["decisions"] as? [[String: Any]])?.first)
            #expect(decision["active"] as? Bool == false)
            #expect(decision["state"] as? String == "expired")
            #expect((try await client.call(.get, "/v1/decisions?active=true", as: "read")["decisions"] as? [Any])?.isEmpty == true)
            // ... closed by the sweep this step woke, audited, and out of the firewall once durable.
            try await clock.waitForSleepers(3)
            let audit = try await client.call(.get, "/v1/audit", as: "read")
            #expect((audit["entries"] as? [[String: Any]])?.last?["event"] as? String == "decision.expired")
            try await waitUntil { node.firewall.current.isEmpty }
        }
    }
}

/// Polls `condition` until it holds, failing after `seconds`.
func waitUntil(seconds: Double = 5, _ condition: () async throws -> Bool) async throws {
    if try await eventually(seconds, condition) { return }
    Issue.record("condition did not hold within \(seconds) s")
}
