import Foundation
import RampartCore
import Testing

/// Every playbook example in docs/playbooks.md compiles as shown.
@Suite struct DocsTests {
    static let doc = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/playbooks.md")

    static func examples() throws -> [String] {
        let text = try String(contentsOf: doc, encoding: .utf8)
        return text.components(separatedBy: "```yaml\n").dropFirst().map { $0.components(separatedBy: "```").first ?? "" }
    }

    @Test func everyExampleCompiles() throws {
        let examples = try Self.examples()
        #expect(examples.count >= 6)
        let list = NamedList(name: "tor-exits", networks: PrefixIndex(), domains: SuffixSet([]), values: [], count: 0)
        for example in examples {
            #expect(throws: Never.self, "\(example)") {
                _ = try PlaybookLoader.parse(YAMLSource.parse(example, file: "docs/playbooks.md"), file: "docs/playbooks.md", lists: ["tor-exits": list])
            }
        }
    }

    /// The reference names every key and condition the loader accepts.
    @Test func referenceCoversEveryKey() throws {
        let text = try String(contentsOf: Self.doc, encoding: .utf8)
        for key in PlaybookLoader.topLevelKeys + PlaybookLoader.matchKeys + PlaybookLoader.valueKeys + PlaybookLoader.actionNames {
            #expect(text.contains("`\(key)") || text.contains(".\(key)`"), "docs/playbooks.md does not mention `\(key)`")
        }
    }
}
