import Foundation
import RampartCore
import Testing

/// OpenC2 commands as the Language Specification 1.0 and the SLPF profile define them: what is
/// malformed is a 400, what is valid but not carried out here a 501 with the profile's text.
struct OpenC2Tests {
    let now = Date(milliseconds: 1_800_000_000_000)

    func parse(_ text: String) throws(OpenC2.Failure) -> OpenC2.Command {
        let json: JSONValue
        do { json = try JSONValue.parse(Array(text.utf8)) } catch { throw .badRequest("test JSON: \(error.message)") }
        return try OpenC2.parse(json, now: now)
    }

    func failure(_ text: String) -> OpenC2.Failure? {
        do {
            _ = try parse(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func denyAndAllowTakeANetworkATimeWindowAndADirection() throws {
        let deny = try parse(
            #"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"args":{"duration":60000,"slpf":{"direction":"ingress","drop_process":"none"}},"actuator":{"slpf":{}},"command_id":"c1"}"#
        )
        #expect(deny.action == .deny(try IPNetwork(parsing: "198.51.100.7", allowBareAddress: true), .seconds(60), .inbound))
        #expect(deny.responseRequested == .complete)
        #expect(deny.commandID == "c1")
        let stop = now.milliseconds + 3_600_000
        let allow = try parse(#"{"action":"allow","target":{"ipv6_net":"2001:db8::/32"},"args":{"stop_time":\#(stop),"response_requested":"none"}}"#)
        #expect(allow.action == .allow(try IPNetwork(parsing: "2001:db8::/32"), .seconds(3600), .both))
        #expect(allow.responseRequested == OpenC2.ResponseRequested.none)
        let started = now.milliseconds - 10_000
        let window = try parse(#"{"action":"deny","target":{"ipv4_net":"198.51.100.0/24"},"args":{"start_time":\#(started),"duration":70000}}"#)
        #expect(window.action == .deny(try IPNetwork(parsing: "198.51.100.0/24"), .seconds(60), .both))
        let forever = try parse(#"{"action":"deny","target":{"ipv4_net":"198.51.100.9"}}"#)
        #expect(forever.action == .deny(try IPNetwork(parsing: "198.51.100.9", allowBareAddress: true), OpenC2.longest, .both))
    }

    @Test func queryAndDelete() throws {
        #expect(try parse(#"{"action":"query","target":{"features":[]}}"#).action == .queryFeatures([]))
        #expect(
            try parse(#"{"action":"query","target":{"features":["versions","pairs","versions"]},"args":{"response_requested":"complete"}}"#).action
                == .queryFeatures([.versions, .pairs]))
        #expect(try parse(#"{"action":"delete","target":{"slpf:rule_number":42}}"#).action == .delete(ruleNumber: 42))
        #expect(try parse(#"{"action":"delete","target":{"slpf:rule_number":"43"}}"#).action == .delete(ruleNumber: 43), "lycan sends a string")
    }

    @Test func malformedCommandsAre400() {
        for bad in [
            #"{"action":"deny"}"#,
            #"{"action":"deny","target":{}}"#,
            #"{"action":"deny","target":{"ipv4_net":"127.0.0.1/64"}}"#,
            #"{"action":"deny","target":{"ipv4_net":"2001:db8::1"}}"#,
            #"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"args":{}}"#,
            #"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"args":{"duration":-5}}"#,
            #"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"args":{"duration":1.5}}"#,
            #"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"args":{"start_time":1,"stop_time":2,"duration":1}}"#,
            #"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"args":{"stop_time":1000}}"#,
            #"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"args":{"colour":"red"}}"#,
            #"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"args":{"slpf":{"direction":"sideways"}}}"#,
            #"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"unknown":1}"#,
            #"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"command_id":"has space"}"#,
            #"{"action":"query","target":{"features":["colour"]}}"#,
            #"{"action":"query","target":{"features":[]},"args":{"duration":5}}"#,
            #"{"action":"delete","target":{"slpf:rule_number":-1}}"#,
            #"{"action":"delete","target":{"slpf:rule_number":"x1"}}"#,
            #"[1]"#,
        ] {
            #expect(failure(bad)?.status == 400, "\(bad)")
        }
    }

    @Test func whatThisConsumerDoesNotDoIs501WithTheProfilesText() {
        let cases: [(String, String)] = [
            (#"{"action":"deny","target":{"ipv4_connection":{"src_addr":"198.51.100.7"}}}"#, "Target type not supported"),
            (#"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"args":{"slpf":{"drop_process":"false_ack"}}}"#, "Option not supported"),
            (#"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"args":{"slpf":{"insert_rule":10}}}"#, "Option not supported"),
            (#"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"args":{"slpf":{"persistent":false}}}"#, "Option not supported"),
            (#"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"args":{"start_time":1900000000000}}"#, "Option not supported"),
            (#"{"action":"update","target":{"file":{"name":"rules.txt"}}}"#, "Command not supported"),
            (#"{"action":"scan","target":{"ipv4_net":"198.51.100.7"}}"#, "Command not supported"),
        ]
        for (command, text) in cases {
            #expect(failure(command) == OpenC2.Failure(status: 501, text: text), "\(command)")
        }
        #expect(failure(#"{"action":"deny","target":{"ipv4_net":"198.51.100.7"},"actuator":{"x-acme":{}}}"#)?.status == 501)
    }
}
