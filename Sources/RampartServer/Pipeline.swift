import Foundation
import Logging
import NIOCore
import RampartCore
import RampartStore

/// The ingest path: parse a request body into items, and commit them (with their audit entries)
/// in chunks that pipeline with parsing: while one chunk commits on the writer thread, the next
/// is parsed on this one. `ingest` returns once every chunk is durable.
public final class Pipeline: Sendable {
    let store: Store
    let nodeID: String
    let ids: IDGenerator
    let now: @Sendable () -> Date
    let limits: IngestParser.Limits
    static let chunkSize = 2048

    public init(store: Store, nodeID: String, limits: IngestParser.Limits, ids: IDGenerator = .shared, now: @escaping @Sendable () -> Date = Date.init) {
        self.store = store
        self.nodeID = nodeID
        self.ids = ids
        self.now = now
        self.limits = limits
    }

    public struct Summary: Sendable {
        public var ids: [String] = []
        public var rejected: [Problem.ItemError] = []
    }

    private enum Prepared: Sendable {
        case accepted(EncodedItem)
        case refused(position: Int, ValueError, raw: String?)
    }

    /// Parses and commits a body. Throws `IngestParser.BodyError` when the body as a whole is refused
    /// (nothing is then written), or the store's error if a commit fails.
    public func ingest(_ body: ByteBuffer, format: IngestParser.Format, defaults: IndicatorDefaults, via: String) async throws -> Summary {
        let receivedAt = now()
        let positionName = IngestParser.positionName(format)
        var summary = Summary()
        var commits: [PendingWrite<Void>] = []
        // Chunks stay referenced here until their commits are done, so that they are freed on
        // this thread rather than on the writer's.
        var chunks: [[Prepared]] = []
        var chunk: [Prepared] = []
        chunk.reserveCapacity(Pipeline.chunkSize)
        func flush() {
            guard !chunk.isEmpty else { return }
            commits.append(store.enqueue { [chunk] tx in try Pipeline.commit(chunk, via: via, positionName: positionName, at: receivedAt, in: &tx) })
            chunks.append(chunk)
            chunk = []
            chunk.reserveCapacity(Pipeline.chunkSize)
        }
        try body.withUnsafeReadableBytes { raw in
            try IngestParser.parse(raw, format: format, defaults: defaults, now: receivedAt, limits: limits) { entry in
                switch entry.result {
                case .success(let indicator):
                    let item = Item(id: ids.next(), payload: .indicator(indicator), via: via, origin: nodeID, receivedAt: receivedAt)
                    summary.ids.append(item.id)
                    chunk.append(.accepted(EncodedItem(item)))
                case .failure(let error):
                    summary.rejected.append(Problem.ItemError(positionName: positionName, position: entry.position, code: error.code.rawValue, message: error.message))
                    chunk.append(.refused(position: entry.position, error, raw: entry.raw))
                }
                if chunk.count >= Pipeline.chunkSize { flush() }
            }
        }
        flush()
        for commit in commits { try await commit.value() }
        chunks.removeAll()
        return summary
    }

    private static func commit(_ chunk: [Prepared], via: String, positionName: String, at: Date, in tx: inout StoreTransaction) throws {
        for entry in chunk {
            switch entry {
            case .accepted(let encoded):
                try tx.insert(encoded)
            case .refused(let position, let error, let raw):
                try tx.refuse(via: via, position: positionName, index: position, error: error, raw: raw, at: at)
            }
        }
    }
}
