import Foundation

/// Where an outbox sends: a peer (signed batches of items and revocations, under its sharing
/// policy) or a `notify` URL (one prepared request body at a time, signed when this node has a
/// key, nothing else checked).
public enum Destination: Sendable {
    case peer(Peer)
    case notify(url: String)

    /// The outbox's name for it: the peer's name, or `notify:URL` (never a peer name: those are
    /// words without `:`).
    public var key: String {
        switch self {
        case .peer(let peer): peer.name
        case .notify(let url): Self.notifyKey(url)
        }
    }

    public static func notifyKey(_ url: String) -> String { "notify:\(url)" }

    public var url: String {
        switch self {
        case .peer(let peer): peer.url
        case .notify(let url): url
        }
    }

    public var peer: Peer? {
        if case .peer(let peer) = self { peer } else { nil }
    }
}
