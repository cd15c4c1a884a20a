import Hummingbird
import RampartCore
import Synchronization

/// Whether the daemon takes traffic: set once everything is started, cleared on shutdown.
public final class Readiness: Sendable {
    private let ready = Atomic<Bool>(false)

    public init() {}

    public var isReady: Bool { ready.load(ordering: .acquiring) }

    public func set(_ value: Bool) {
        ready.store(value, ordering: .releasing)
    }
}

/// `/healthz` (the process answers) and `/readyz` (it takes traffic).
struct HealthRoutes {
    let readiness: Readiness

    func register(on router: Router<RampartRequestContext>) {
        router.get("/healthz") { _, _ in
            var w = JSONWriter()
            w.beginObject()
            w.field("status", "ok")
            w.endObject()
            return Response.json(.ok, w)
        }
        router.get("/readyz") { _, _ in
            var w = JSONWriter()
            w.beginObject()
            w.field("status", readiness.isReady ? "ready" : "not ready")
            w.endObject()
            return Response.json(readiness.isReady ? .ok : .serviceUnavailable, w)
        }
    }
}
