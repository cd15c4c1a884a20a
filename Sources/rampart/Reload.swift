import ArgumentParser
import RampartCore

/// `rampart reload`: asks the running daemon to re-read its configuration, playbooks and lists.
struct Reload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make the running daemon re-read its configuration, playbooks and lists (needs the admin role).",
        discussion:
            "Exits 1, listing every error, when the new set is invalid; the daemon then keeps the set in force. SIGHUP does the same without an answer."
    )

    @OptionGroup var api: APIOptions

    func run() async throws {
        let answer = try await api.client().call(.POST, "/v1/reload")
        guard case .number(let count)? = answer["playbooks"] else { throw CLIError("the daemon's answer does not say how many playbooks it loaded") }
        print("reloaded: \(Int(count)) playbook\(count == 1 ? "" : "s") in force")
    }
}
