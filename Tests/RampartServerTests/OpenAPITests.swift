import Foundation
import HTTPTypes
import HummingbirdTesting
import RampartServer
import Testing

/// docs/openapi.yaml is served, and kept in step with the routes: every route the daemon
/// registers is described, and every operation described is answered by a route.
@Suite struct OpenAPITests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/openapi.yaml")
        .standardizedFileURL.path

    /// `METHOD /path` of every operation the document describes.
    static func described() throws -> Set<String> {
        var operations: Set<String> = []
        var path: String?
        for line in try String(contentsOfFile: Self.path, encoding: .utf8).split(separator: "\n") {
            if let match = line.firstMatch(of: /^  (\/\S*):$/) { path = String(match.1) }
            if let match = line.firstMatch(of: /^    (get|post|put|delete|head|patch):$/), let path {
                operations.insert("\(match.1.uppercased()) \(path)")
            }
            if !line.hasPrefix(" ") { path = nil }
        }
        return operations
    }

    @Test func everyRouteIsDescribedAndEveryOperationAnswers() async throws {
        let described = try Self.described()
        #expect(described.count > 20)
        // With a TAXII collection, so that the TAXII routes are registered too.
        let node = try TestNode(extraYAML: "taxii:\n  collections:\n    - {id: 365fed99-08fa-4dcd-a1b3-fb247eb41d01, title: shared, read: [ops]}")
        try await node.run { client, parts in
            #expect(
                Set(parts.routes) == described,
                "routes not described: \(Set(parts.routes).subtracting(described).sorted()); described, not routed: \(described.subtracting(parts.routes).sorted())"
            )
            for operation in described {
                let parts = operation.split(separator: " ")
                let path = parts[1].replacingOccurrences(of: #"\{[a-z]+\}"#, with: "x1", options: .regularExpression)
                let method = try #require(HTTPRequest.Method(rawValue: String(parts[0])))
                let (status, body) = try await client.execute(
                    uri: path, method: method, headers: [.authorization: "Bearer \(TestNode.tokens["admin"]!)"]
                ) { ($0.status, String(buffer: $0.body)) }
                #expect(!body.contains("no such endpoint") && status != .methodNotAllowed, "\(operation): \(status) \(body)")
            }
            let served = try await client.execute(uri: "/openapi.yaml", method: .get) { $0 }
            #expect(served.status == .ok)
            #expect(served.headers[.contentType] == "application/yaml")
            #expect(String(buffer: served.body) == (try String(contentsOfFile: Self.path, encoding: .utf8)))
        }
    }
}
