import ArgumentParser

@main
struct Rampart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Automated response daemon: ingest threat indicators, decide with playbooks, block, share with peers.",
        subcommands: [
            Serve.self, Check.self, TestPlaybooks.self, Reload.self, Decisions.self, Rules.self, Peers.self, Bouncers.self, Feeds.self, Audit.self,
            Export.self,
            Token.self,
            Keygen.self,
        ]
    )
}
