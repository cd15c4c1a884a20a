import Foundation
import ArgumentParser
import Hummingbird
import Logging
import NIOCore
import RampartCore
import RampartServer

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the daemon.")

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        // exec actions write to pipes of commands that may exit early: EPIPE, not death by SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        // Descriptors up to the hard limit (systemd's unit sets 65536; its default soft limit is 1,024).
        var files = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files) == 0, files.rlim_cur < files.rlim_max {
            files.rlim_cur = files.rlim_max
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files)
        }
        let config = try options.load()
        LoggingSystem.bootstrap { label in
            LineLogHandler(label: label, level: Logger.Level(configName: config.log.level), format: config.log.format)
        }
        let logger = Logger(label: "rampart")
        logger.info("daemon.starting", metadata: ["rampart.config": "\(config.path)", "rampart.node": "\(config.node.id)"])
        let (app, _) = try Daemon.build(config: config, logger: logger)
        do {
            try await app.runService()
        } catch let error as IOError where [EADDRINUSE, EADDRNOTAVAIL, EACCES].contains(error.errnoCode) {
            throw CLIError("cannot listen on \(config.listen): \(String(cString: strerror(error.errnoCode)))")
        }
        logger.info("daemon.stopped")
    }
}
