import Foundation
import RampartTesting
import Testing

@testable import RampartCore

/// Standard Webhooks signatures: the specification's test vector, rotation, tolerance, tampering;
/// and interoperability with the `standardwebhooks` Python package (v1) and the `cryptography`
/// package's Ed25519 (v1a), both third-party implementations.
@Suite struct WebhookSignatureTests {
    typealias Signature = WebhookSignature

    // The test vector published with the Standard Webhooks specification.
    static let vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let vectorID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    static let vectorTimestamp = 1_614_265_330
    static let vectorBody = Array(#"{"test": 2432232314}"#.utf8)
    static let vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    @Test func specificationVector() throws {
        let secret = try Signature.Secret(text: Self.vectorSecret)
        #expect(
            try Signature.sign(id: Self.vectorID, timestamp: Self.vectorTimestamp, body: Self.vectorBody, key: nil, secret: secret)
                == Self.vectorSignature)
        let at = Date(timeIntervalSince1970: Double(Self.vectorTimestamp))
        try Signature.verify(
            id: Self.vectorID, timestamp: String(Self.vectorTimestamp), signature: Self.vectorSignature, body: Self.vectorBody, now: at,
            publicKeys: [], secrets: [secret]
        )
    }

    @Test func rotationToleranceAndTampering() throws {
        let (old, new) = (Signature.SigningKey(), Signature.SigningKey())
        let body = Array(#"{"type":"rampart.items.v1"}"#.utf8)
        let now = Date()
        let stamp = Int(now.timeIntervalSince1970)
        // The sender signs with both keys while peers move from the old public key to the new one.
        let both =
            try Signature.sign(id: "m1", timestamp: stamp, body: body, key: old) + " "
            + Signature.sign(id: "m1", timestamp: stamp, body: body, key: new)
        func verify(_ signature: String, body: [UInt8] = body, timestamp: String? = nil, keys: [Signature.PublicKey]) throws(Signature.Failure) {
            try Signature.verify(
                id: "m1", timestamp: timestamp ?? String(stamp), signature: signature, body: body, now: now, publicKeys: keys, secrets: [])
        }
        try verify(both, keys: [new.publicKey])
        try verify(both, keys: [old.publicKey])
        try verify("v9,abc v1a,!!! " + both, keys: [new.publicKey])
        // A header of many bogus entries is refused before any is checked, even with a good one in it.
        let bogus = Array(repeating: "v1a," + Data(count: 64).base64EncodedString(), count: 150).joined(separator: " ")
        #expect(throws: Signature.Failure.tooManySignatures) { try verify(bogus + " " + both, keys: [new.publicKey]) }
        #expect(throws: Signature.Failure.noValidSignature) { try verify(both, keys: [Signature.SigningKey().publicKey]) }
        #expect(throws: Signature.Failure.noValidSignature) { try verify(both, body: body + [0x20], keys: [new.publicKey]) }
        #expect(throws: Signature.Failure.outsideTolerance) { try verify(both, timestamp: String(stamp - 301), keys: [new.publicKey]) }
        #expect(throws: Signature.Failure.outsideTolerance) { try verify(both, timestamp: String(stamp + 301), keys: [new.publicKey]) }
        #expect(throws: Signature.Failure.badTimestamp) { try verify(both, timestamp: "12a", keys: [new.publicKey]) }
        #expect(throws: Signature.Failure.missingHeaders) {
            try Signature.verify(id: nil, timestamp: String(stamp), signature: both, body: body, now: now, publicKeys: [new.publicKey], secrets: [])
        }
        // Keys survive their text form.
        #expect(try Signature.SigningKey(text: new.text).publicKey.text == new.publicKey.text)
        #expect(throws: Signature.KeyError.self) { try Signature.PublicKey(text: "whpk_c2hvcnQ=") }
        #expect(throws: Signature.KeyError.self) { try Signature.Secret(text: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") }
    }

    /// The repository's `.venv` python, when it has the third-party packages.
    static let pythonPath = Venv.python(importing: "standardwebhooks, cryptography")

    func runPython(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [Self.pythonPath!, "-c", script] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test(
        .enabled(if: pythonPath != nil, "the standardwebhooks and cryptography Python packages are not in .venv (deploy/setup-dev.sh installs them)"))
    func interoperatesWithThirdPartyImplementations() throws {
        let secretText = "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let secret = try Signature.Secret(text: secretText)
        let key = Signature.SigningKey()
        let body = #"{"type":"rampart.items.v1","data":{"items":[{"value":"77.90.185.20"}]}}"#
        let stamp = Int(Date().timeIntervalSince1970)
        let header = try Signature.sign(id: "msg_1", timestamp: stamp, body: Array(body.utf8), key: key, secret: secret)

        // Python verifies what Rampart signs: v1 with standardwebhooks, v1a with cryptography's Ed25519.
        let verify = """
            import base64, sys, standardwebhooks
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
            secret, public, header, stamp, body = sys.argv[1:6]
            standardwebhooks.Webhook(secret).verify(body, {"webhook-id": "msg_1", "webhook-timestamp": stamp, "webhook-signature": header}, json_parse=False)
            v1a = [s.split(",", 1)[1] for s in header.split(" ") if s.startswith("v1a,")][0]
            Ed25519PublicKey.from_public_bytes(base64.b64decode(public[5:])).verify(base64.b64decode(v1a), f"msg_1.{stamp}.{body}".encode())
            print("ok")
            """
        let checked = try runPython(verify, [secretText, key.publicKey.text, header, String(stamp), body])
        #expect(checked.status == 0 && checked.output == "ok", "\(checked.output)")

        // Rampart verifies what Python signs.
        let sign = """
            import base64, datetime, sys, standardwebhooks
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            secret, stamp, body = sys.argv[1:4]
            v1 = standardwebhooks.Webhook(secret).sign("msg_2", datetime.datetime.fromtimestamp(int(stamp), tz=datetime.timezone.utc), body)
            private = Ed25519PrivateKey.generate()
            v1a = "v1a," + base64.b64encode(private.sign(f"msg_2.{stamp}.{body}".encode())).decode()
            raw = private.public_key().public_bytes_raw()
            print(v1, v1a, "whpk_" + base64.b64encode(raw).decode())
            """
        let signed = try runPython(sign, [secretText, String(stamp), body])
        let parts = signed.output.split(separator: " ").map(String.init)
        #expect(signed.status == 0 && parts.count == 3, "\(signed.output)")
        guard parts.count == 3 else { return }
        let now = Date(timeIntervalSince1970: Double(stamp))
        try Signature.verify(
            id: "msg_2", timestamp: String(stamp), signature: parts[0], body: Array(body.utf8), now: now, publicKeys: [], secrets: [secret])
        let pythonKey = try Signature.PublicKey(text: parts[2])
        try Signature.verify(
            id: "msg_2", timestamp: String(stamp), signature: parts[1], body: Array(body.utf8), now: now, publicKeys: [pythonKey], secrets: [])
        #expect(throws: Signature.Failure.noValidSignature) {
            try Signature.verify(
                id: "msg_3", timestamp: String(stamp), signature: parts[1], body: Array(body.utf8), now: now, publicKeys: [pythonKey], secrets: [])
        }
    }
}
