import Foundation
import Hummingbird
import RampartCore

/// `GET /v1/bouncers` on the main API (read role): each bouncer key, what it may see, and who
/// pulled with it since the daemon started.
struct BouncerRoutes {
    let bouncers: [Config.Bouncer]
    let consumers: BouncerConsumers

    func register(on router: Router<RampartRequestContext>) {
        router.get("/v1/bouncers") { _, context in
            _ = try context.require(.read)
            let seen = consumers.snapshot()
            var w = JSONWriter(capacity: 1024)
            w.beginObject()
            w.key("bouncers")
            w.beginArray()
            for bouncer in bouncers {
                w.beginObject()
                w.field("name", bouncer.name)
                w.field("scopes", bouncer.scopes.map(\.rawValue).sorted())
                w.key("origins")
                if let origins = bouncer.origins { w.value(.array(origins.sorted().map(JSONValue.string))) } else { w.null() }
                w.key("hold")
                if let hold = bouncer.hold { w.value(hold.text) } else { w.null() }
                w.key("consumers")
                w.beginArray()
                for consumer in seen[bouncer.name] ?? [] {
                    w.beginObject()
                    w.field("address", consumer.address)
                    w.field("user_agent", consumer.userAgent)
                    w.field("first_seen", consumer.firstSeen)
                    w.field("last_seen", consumer.lastSeen)
                    w.key("last_pull")
                    if let last = consumer.lastPull { w.value(Timestamp.format(last)) } else { w.null() }
                    w.field("pulls", consumer.pulls)
                    w.field("decisions_delivered", consumer.delivered)
                    w.key("metrics")
                    if let at = consumer.metricsAt {
                        w.beginObject()
                        w.field("at", at)
                        for (name, value) in consumer.metrics.sorted(by: { $0.key < $1.key }) {
                            w.key(name)
                            w.value(.number(value))
                        }
                        w.endObject()
                    } else {
                        w.null()
                    }
                    w.endObject()
                }
                w.endArray()
                w.endObject()
            }
            w.endArray()
            w.endObject()
            return Response.json(.ok, w)
        }
    }
}
