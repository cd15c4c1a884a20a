import Foundation
import Logging
import RampartCore
import Synchronization

/// Hands every batch to an operator's command (argv, never a shell) as JSON on stdin, for packet
/// filters Rampart has no backend for. A batch is
/// `{"type":"batch","changes":[{"op":"add","value":"198.51.100.7","direction":"inbound","expires_at":"..."},{"op":"remove","value":"..."}]}`;
/// a reconcile is `{"type":"reconcile","blocks":[{"value":...,"direction":...,"expires_at":...}]}`
/// (the complete set that must be in force). A non-zero exit or a timeout fails the batch.
public final class ExecFirewall: Firewall {
    public let name = "exec"
    private let serial = Mutex(())
    let command: [String]
    let timeout: Duration

    public init(command: [String], timeout: Duration) {
        self.command = command
        self.timeout = timeout
    }

    public func apply(_ changes: [FirewallChange]) throws {
        var w = JSONWriter(capacity: 64 + changes.count * 96)
        w.beginObject()
        w.field("type", "batch")
        w.key("changes")
        w.beginArray()
        for change in changes {
            w.beginObject()
            switch change {
            case .add(let block):
                w.field("op", "add")
                Self.write(block, to: &w)
            case .remove(let target):
                w.field("op", "remove")
                w.field("value", target.description)
            }
            w.endObject()
        }
        w.endArray()
        w.endObject()
        try run(w.bytes)
    }

    public func reconcile(_ blocks: [FirewallBlock]) throws {
        var w = JSONWriter(capacity: 64 + blocks.count * 96)
        w.beginObject()
        w.field("type", "reconcile")
        w.key("blocks")
        w.beginArray()
        for block in blocks {
            w.beginObject()
            Self.write(block, to: &w)
            w.endObject()
        }
        w.endArray()
        w.endObject()
        try run(w.bytes)
    }

    static func write(_ block: FirewallBlock, to w: inout JSONWriter) {
        w.field("value", block.target.description)
        w.field("direction", block.direction.rawValue)
        w.field("expires_at", block.expiresAt)
    }

    /// One command at a time: a batch never runs beside a reconcile.
    private func run(_ input: [UInt8]) throws {
        let environment = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        try serial.withLock { _ in
            _ = try Command.runBlocking(command, environment: environment, input: input, timeout: timeout).output(of: command[0], timeout: timeout)
        }
    }
}
