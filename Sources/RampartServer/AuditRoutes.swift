import Hummingbird
import RampartCore
import RampartStore

/// `GET /v1/audit?after=SEQ&limit=N`: the hash-chained decision log, oldest first; with `item=ID`
/// or `decision=ID`, only the entries about that item or decision.
struct AuditRoutes {
    let store: Store

    func register(on router: Router<RampartRequestContext>) {
        router.get("/v1/audit") { request, context in
            _ = try context.require(.read)
            var after: Int64 = 0
            var limit = 100
            var selection = Store.AuditSelection.all
            for (name, value) in request.uri.queryParameters {
                switch name {
                case "after":
                    guard let parsed = Int64(value), parsed >= 0 else {
                        throw Problem.badRequest("invalid_parameter", "after must be a sequence number (0 or more)")
                    }
                    after = parsed
                case "limit":
                    guard let parsed = Int(value), (1...1000).contains(parsed) else {
                        throw Problem.badRequest("invalid_parameter", "limit must be a number from 1 to 1000")
                    }
                    limit = parsed
                case "item", "decision":
                    guard selection == .all else { throw Problem.badRequest("invalid_parameter", "give item or decision, not both") }
                    guard !value.isEmpty, value.utf8.count <= 64 else {
                        throw Problem.badRequest("invalid_parameter", "\(name) must be an id (1 to 64 characters)")
                    }
                    selection = name == "item" ? .item(String(value)) : .decision(String(value))
                default:
                    throw Problem.badRequest("invalid_parameter", "unknown parameter '\(name)'; expected after, limit, item or decision")
                }
            }
            let entries = try await store.audit(selection, after: after, limit: limit)
            var w = JSONWriter(capacity: 512 * entries.count + 64)
            w.beginObject()
            w.key("entries")
            w.beginArray()
            for entry in entries { entry.write(to: &w) }
            w.endArray()
            w.key("next")
            w.value(entries.last?.seq ?? after)
            w.endObject()
            return Response.json(.ok, w)
        }
    }
}
