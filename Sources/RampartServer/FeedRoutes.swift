import Foundation
import Hummingbird
import RampartCore
import RampartStore

/// `GET /v1/feeds` (read): each feed in force with its state; `POST /v1/feeds/{name}/pull`
/// (admin): pull it now, answering its state after.
struct FeedRoutes {
    let service: FeedService
    let store: Store
    let feeds: @Sendable () -> [Config.Feed]

    func register(on router: Router<RampartRequestContext>) {
        router.get("/v1/feeds") { _, context in
            _ = try context.require(.read)
            let states = try await store.feedStates()
            var w = JSONWriter(capacity: 512)
            w.beginObject()
            w.key("feeds")
            w.beginArray()
            for feed in feeds() { Self.write(feed, states[feed.name] ?? FeedState(name: feed.name), to: &w) }
            w.endArray()
            w.endObject()
            return Response.json(.ok, w)
        }
        router.post("/v1/feeds/:name/pull") { _, context in
            _ = try context.require(.admin)
            let name = try context.parameters.require("name")
            guard let feed = feeds().first(where: { $0.name == name }) else { throw Problem.notFound("no feed \(name.preview) in force") }
            let state = try await service.pullNow(feed)
            var w = JSONWriter(capacity: 256)
            Self.write(feed, state, to: &w)
            return Response.json(state.lastError == nil ? .ok : .badGateway, w)
        }
    }

    static func write(_ feed: Config.Feed, _ state: FeedState, to w: inout JSONWriter) {
        w.beginObject()
        w.field("name", feed.name)
        w.field("kind", feed.kind.rawValue)
        w.field("url", feed.url)
        w.field("via", feed.via)
        w.field("interval", feed.interval.text)
        w.field("sync", feed.sync)
        if let at = state.lastSuccess { w.field("last_success", at) }
        if let at = state.lastAttempt { w.field("last_attempt", at) }
        w.field("last_error", state.lastError)
        w.field("failures", state.failures)
        w.field("items", state.items)
        if feed.kind == .text || feed.kind == .csv { w.field("values", state.values) }
        w.field("duration_ms", Int(state.duration.milliseconds))
        if let cursor = state.cursor { w.field("cursor", cursor) }
        w.endObject()
    }
}
