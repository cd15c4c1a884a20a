import Foundation

// rampart-embed INPUT OUTPUT: writes OUTPUT, a Swift file holding INPUT's text as
// `OpenAPIDocument.yaml` (the build plugin EmbedOpenAPI runs it).
let arguments = CommandLine.arguments
guard arguments.count == 3, let text = try? String(contentsOfFile: arguments[1], encoding: .utf8) else {
    FileHandle.standardError.write(Data("usage: rampart-embed INPUT OUTPUT (INPUT must be UTF-8)\n".utf8))
    exit(2)
}
// A raw string literal whose delimiter the text cannot close.
var hashes = "#"
while text.contains("\"" + hashes) { hashes += "#" }
let source = """
    // Generated from docs/openapi.yaml by the EmbedOpenAPI build plugin; edit that file instead.
    enum OpenAPIDocument {
        static let yaml = \(hashes)\"\"\"
    \(text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "    " + $0 }.joined(separator: "\n"))
        \"\"\"\(hashes)
    }

    """
do {
    try source.write(toFile: arguments[2], atomically: true, encoding: .utf8)
} catch {
    FileHandle.standardError.write(Data("rampart-embed: cannot write \(arguments[2]): \(error)\n".utf8))
    exit(1)
}
