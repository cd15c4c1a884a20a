import Foundation
import RampartCore
import Testing
import Yams

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
                _ = try PlaybookLoader.parse(
                    YAMLSource.parse(example, file: "docs/playbooks.md"), file: "docs/playbooks.md", lists: ["tor-exits": list])
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

/// The operations guide's tables of audit events and of metrics name every event the code records
/// and every metric it serves, and only those.
@Suite struct OperationsTableTests {
    /// The names in backquotes in the first column of the table under `heading`.
    static func names(under heading: String) throws -> Set<String> {
        let doc = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/operations.md")
        let text = try String(contentsOf: doc, encoding: .utf8)
        let section = try #require(text.components(separatedBy: "\n## \(heading)\n").dropFirst().first?.components(separatedBy: "\n## ").first)
        var named: Set<String> = []
        for row in section.split(separator: "\n") where row.hasPrefix("| `") {
            let first = row.split(separator: "|")[0]
            for name in first.split(separator: "`").enumerated() where name.offset % 2 == 1 { named.insert(String(name.element)) }
        }
        return named
    }

    @Test func auditEvents() throws {
        #expect(try Self.names(under: "Audit events") == Set(AuditEvent.allCases.map(\.rawValue)))
    }

    @Test func metrics() throws {
        #expect(try Self.names(under: "Metrics") == Set(Metric.allCases.map(\.rawValue)))
    }
}

/// `deploy/rampart.example.yaml` is valid and documents every key the configuration accepts
/// (`Config.keys`, the lists the parser itself allows), and only those.
@Suite struct ExampleConfigTests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../deploy/rampart.example.yaml")
        .standardizedFileURL.path

    @Test func isValid() throws {
        let config = try Config.load(path: Self.path)
        #expect(config.firewall.backend == .nftables)
    }

    @Test func documentsEveryKey() throws {
        var found: [String: Set<String>] = [:]
        func walk(_ node: Yams.Node, section: String) {
            switch node {
            case .mapping(let mapping):
                for (key, value) in mapping {
                    guard let name = key.string else { continue }
                    found[section, default: []].insert(name)
                    if Config.keys[section.isEmpty ? name : "\(section).\(name)"] != nil {
                        walk(value, section: section.isEmpty ? name : "\(section).\(name)")
                    }
                }
            case .sequence(let items):
                for item in items { walk(item, section: section) }
            default:
                break
            }
        }
        walk(try YAMLSource.load(path: Self.path), section: "")
        // Optional sections that need files of their own (tls) are documented commented out.
        let commented = try String(contentsOfFile: Self.path, encoding: .utf8).split(separator: "\n")
            .compactMap { line in line.firstMatch(of: /^\s*#\s*(\w+):/).map { String($0.1) } }
        for (section, keys) in Config.keys {
            if found[section] == nil, let name = section.split(separator: ".").last.map(String.init), commented.contains(name) {
                #expect(Set(keys).isSubset(of: Set(commented)), "section '\(section)' is documented only in part")
                continue
            }
            let present = found[section, default: []].union(Set(commented).intersection(keys))
            #expect(present == Set(keys), "section '\(section)': the example has \(present.sorted()), the parser accepts \(keys.sorted())")
        }
    }
}
