import Foundation
import Hummingbird
import RampartCore

/// `GET /v1/playbooks`, `POST /v1/playbooks/test` (dry-run items, explained) and `POST /v1/reload`.
struct PlaybookRoutes {
    let pipeline: Pipeline
    let reloader: Reloader
    let bodies: BodyReceiver
    let now: @Sendable () -> Date

    func register(on router: Router<RampartRequestContext>) {
        router.get("/v1/playbooks") { _, context in
            _ = try context.require(.read)
            var w = JSONWriter()
            w.beginObject()
            w.key("playbooks")
            w.beginArray()
            for playbook in pipeline.playbooks.playbooks {
                w.beginObject()
                w.field("name", playbook.name)
                w.field("description", playbook.description)
                w.field("file", playbook.file)
                w.field("on", playbook.on.rawValue)
                w.field("mode", playbook.mode.rawValue)
                w.field("priority", playbook.priority)
                w.field("stop", playbook.stop)
                w.field("match", playbook.match.summary)
                w.field("actions", playbook.actions.map(\.kind))
                w.endObject()
            }
            w.endArray()
            w.endObject()
            return Response.json(.ok, w)
        }
        router.post("/v1/playbooks/test") { request, context in try await test(request, context) }
        router.post("/v1/reload") { _, context in
            let key = try context.require(.admin)
            switch try await reloader.reload(by: "api:\(key.name)") {
            case .success(let count):
                var w = JSONWriter()
                w.beginObject()
                w.field("reloaded", true)
                w.field("playbooks", count)
                w.endObject()
                return Response.json(.ok, w)
            case .failure(let problems):
                throw Problem(
                    .unprocessableContent, code: "reload_failed",
                    detail: "the new configuration or playbooks are invalid; the ones in force stay in force",
                    errors: problems.items.map {
                        Problem.ItemError(positionName: "line", position: $0.line, code: "invalid", message: $0.description)
                    }
                )
            }
        }
    }

    /// Runs the posted indicators (a JSON object or array) through the playbooks in force, with no
    /// side effect, and explains each verdict. `?via=` sets the source the playbooks see.
    func test(_ request: Request, _ context: RampartRequestContext) async throws -> Response {
        let key = try context.require(.read)
        let via = request.uri.queryParameters["via"].map(String.init) ?? "api:\(key.name)"
        let body = try await bodies.receive(request, context, upTo: 1 << 20)
        let inForce = pipeline.current
        let at = now()
        let planning = pipeline.planning(inForce, at: at)
        var w = JSONWriter()
        w.beginObject()
        w.key("items")
        w.beginArray()
        do {
            try body.withUnsafeReadableBytes { raw in
                try IngestParser.parse(raw, format: .json, defaults: IndicatorDefaults(), now: at, limits: .init(maxItems: 1000, maxDepth: 32)) {
                    entry in
                    w.beginObject()
                    w.field("index", entry.position)
                    switch entry.result {
                    case .failure(let error):
                        w.field("error", error.message)
                    case .success(.stix):
                        w.field("error", "STIX bundles are explained by `rampart test FILE`; post indicator objects here")
                    case .success(.indicator(let indicator)):
                        w.field("kind", indicator.kind.rawValue)
                        w.field("value", indicator.value)
                        w.key("playbooks")
                        w.beginArray()
                        for (playbook, verdict) in inForce.playbooks.explain(Subject(indicator, via: via)) {
                            w.beginObject()
                            w.field("name", playbook.name)
                            switch verdict {
                            case .matched:
                                w.field("verdict", "matched")
                                let item = Item(id: "(item id)", payload: .indicator(indicator), via: via, origin: pipeline.nodeID, receivedAt: at)
                                w.field("would", playbook.explain(item, in: planning))
                            case .failed(let why):
                                w.field("verdict", "no_match")
                                w.field("reason", why)
                            case .skipped(let by):
                                w.field("verdict", "skipped")
                                w.field("reason", "\(by) matched first and has stop: true")
                            }
                            w.endObject()
                        }
                        w.endArray()
                    }
                    w.endObject()
                }
            }
        } catch let error as IngestParser.BodyError {
            throw Problem.badRequest("invalid_body", error.message)
        }
        w.endArray()
        w.endObject()
        return Response.json(.ok, w)
    }
}
