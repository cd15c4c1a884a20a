import PackagePlugin

/// Compiles docs/openapi.yaml into the server (`OpenAPIDocument.yaml`), so that the binary serves
/// the one description in the repository, wherever it is installed.
@main
struct EmbedOpenAPI: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let input = context.package.directoryURL.appending(path: "docs/openapi.yaml")
        let output = context.pluginWorkDirectoryURL.appending(path: "OpenAPIDocument.swift")
        return [
            .buildCommand(
                displayName: "Embedding docs/openapi.yaml", executable: try context.tool(named: "rampart-embed").url,
                arguments: [input.path, output.path], inputFiles: [input], outputFiles: [output])
        ]
    }
}
