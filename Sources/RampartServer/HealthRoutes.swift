import Hummingbird
import RampartCore
import RampartStore
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

/// `/healthz` (the process answers), `/readyz` (it takes traffic: started, and its store can
/// write; a full disk makes it not ready until a write succeeds again) and `/openapi.yaml` (the
/// API's description, docs/openapi.yaml compiled in).
struct HealthRoutes {
    let readiness: Readiness
    let store: Store

    func register(on router: Router<RampartRequestContext>) {
        router.get("/healthz") { _, _ in
            var w = JSONWriter()
            w.beginObject()
            w.field("status", "ok")
            w.endObject()
            return Response.json(.ok, w)
        }
        router.get("/openapi.yaml") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        }
        router.get("/readyz") { _, _ in
            let full = store.isStorageFull
            let ready = readiness.isReady && !full
            var w = JSONWriter()
            w.beginObject()
            w.field("status", ready ? "ready" : "not ready")
            if full { w.field("reason", ErrorCode.storageFull) }
            w.endObject()
            return Response.json(ready ? .ok : .serviceUnavailable, w)
        }
    }
}
