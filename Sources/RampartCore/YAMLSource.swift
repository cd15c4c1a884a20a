import CYaml
import Foundation
import Yams

/// Loads YAML written by people (configuration, playbooks) safely, then reads it strictly.
///
/// Before Yams builds a tree, a pass over libyaml's event stream refuses what could hurt the
/// daemon: anchors and aliases (the "billion laughs" expansion), nesting deeper than a limit
/// (which would exhaust the stack), too many nodes, several documents. Files larger than a limit
/// are refused before they are parsed at all.
public enum YAMLSource {
    public struct Limits: Sendable {
        public var maxBytes = 1 << 20
        public var maxDepth = 32
        public var maxNodes = 200_000

        public init() {}
    }

    /// Parses `text` into one document's root node. Throws diagnostics naming file, line and column.
    public static func parse(_ text: String, file: String, limits: Limits = Limits()) throws(Diagnostics) -> Node {
        guard text.utf8.count <= limits.maxBytes else {
            throw Diagnostics([
                Diagnostic(file: file, line: 0, column: 0, message: "file of \(text.utf8.count) bytes; at most \(limits.maxBytes) are read")
            ])
        }
        if let problem = screen(text, file: file, limits: limits) { throw Diagnostics([problem]) }
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw Diagnostics([Diagnostic(file: file, line: 0, column: 0, message: "the file is empty")])
            }
            return node
        } catch let diagnostics as Diagnostics {
            throw diagnostics
        } catch {
            throw Diagnostics([Diagnostic(file: file, line: 0, column: 0, message: "invalid YAML: \(error)")])
        }
    }

    /// Reads a file and parses it; refuses oversized files before reading them whole.
    public static func load(path: String, displayName: String? = nil, limits: Limits = Limits()) throws(Diagnostics) -> Node {
        let name = displayName ?? path
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
        guard let size else {
            throw Diagnostics([Diagnostic(file: name, line: 0, column: 0, message: "cannot read the file")])
        }
        guard size <= limits.maxBytes else {
            throw Diagnostics([Diagnostic(file: name, line: 0, column: 0, message: "file of \(size) bytes; at most \(limits.maxBytes) are read")])
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw Diagnostics([Diagnostic(file: name, line: 0, column: 0, message: "cannot read the file as UTF-8 text")])
        }
        return try parse(text, file: name, limits: limits)
    }

    /// The event-stream pass: nil when the document is safe to compose.
    static func screen(_ text: String, file: String, limits: Limits) -> Diagnostic? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            return Diagnostic(file: file, line: 0, column: 0, message: "cannot initialise the YAML parser")
        }
        defer { yaml_parser_delete(&parser) }
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer { buffer -> Diagnostic? in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var depth = 0
            var nodes = 0
            var documents = 0
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    let mark = parser.problem_mark
                    let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
                    let context = parser.context.map { " " + String(cString: $0) } ?? ""
                    return Diagnostic(
                        file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1,
                        message: "invalid YAML: \(problem)\(context)"
                    )
                }
                defer { yaml_event_delete(&event) }
                let line = Int(event.start_mark.line) + 1
                let column = Int(event.start_mark.column) + 1
                func refuse(_ message: String) -> Diagnostic {
                    Diagnostic(file: file, line: line, column: column, message: message)
                }
                var anchor: UnsafeMutablePointer<yaml_char_t>?
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return nil
                case YAML_DOCUMENT_START_EVENT:
                    documents += 1
                    if documents > 1 { return refuse("expected one YAML document, found another ('---')") }
                case YAML_ALIAS_EVENT:
                    return refuse("aliases (*name) are not supported; write the value out")
                case YAML_SCALAR_EVENT:
                    nodes += 1
                    anchor = event.data.scalar.anchor
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    nodes += 1
                    depth += 1
                    anchor = event.type == YAML_SEQUENCE_START_EVENT ? event.data.sequence_start.anchor : event.data.mapping_start.anchor
                    if depth > limits.maxDepth { return refuse("nested deeper than \(limits.maxDepth) levels") }
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    depth -= 1
                default:
                    break
                }
                if anchor != nil { return refuse("anchors (&name) are not supported; write the value out") }
                if nodes > limits.maxNodes { return refuse("more than \(limits.maxNodes) values") }
            }
        }
    }
}
