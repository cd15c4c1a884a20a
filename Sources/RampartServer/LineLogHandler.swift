import Foundation
import Logging
import RampartCore

/// One line per event to stderr (journald reads it): `logfmt` (default) or JSON.
/// `ts=... level=info msg=daemon.ready rampart.listen=127.0.0.1:8470`
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let label: String
    let format: Config.LogFormat
    let sink: @Sendable (String) -> Void

    public init(
        label: String, level: Logger.Level, format: Config.LogFormat,
        sink: @escaping @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
    ) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let explicit = event.metadata { all.merge(explicit) { _, new in new } }
        if let error = event.error { all["rampart.error"] = "\(error)" }
        let pairs = all.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") }
        sink(LineLogHandler.render(format: format, time: Date(), level: event.level, message: event.message.description, pairs: pairs))
    }

    static func render(format: Config.LogFormat, time: Date, level: Logger.Level, message: String, pairs: [(String, String)]) -> String {
        switch format {
        case .json:
            var w = JSONWriter()
            w.beginObject()
            w.field("ts", Timestamp.format(time))
            w.field("level", level.rawValue)
            w.field("msg", message)
            for (key, value) in pairs { w.field(key, value) }
            w.endObject()
            return w.string
        case .logfmt:
            var line = "ts=\(Timestamp.format(time)) level=\(level.rawValue) msg=\(logfmtValue(message))"
            for (key, value) in pairs { line += " \(key)=\(logfmtValue(value))" }
            return line
        }
    }

    static func logfmtValue(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0.asciiValue.map { $0 < 0x20 } ?? false }
        guard needsQuotes else { return value }
        var w = JSONWriter()
        w.value(value)
        return w.string
    }
}

extension Logger.Level {
    public init(configName: String) {
        self = Logger.Level(rawValue: configName) ?? .info
    }
}
