// The baseline of the ingest benchmark: bare Hummingbird on the same port layout, decoding the
// same indicator JSON with Foundation's JSONDecoder and answering 202, with no validation, no
// storage and no audit. `Benchmarks/ingest.sh` compares `rampart serve` against it.
import Foundation
import Hummingbird

struct Indicator: Decodable {
    var kind: String?
    var value: String
    var confidence: Int?
    var severity: String?
    var tlp: String?
    var source: String?
    var tags: [String]?
    var description: String?
}

let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 8471
let router = Router()
router.post("/v1/indicators") { request, _ -> Response in
    let body = try await request.body.collect(upTo: 16 << 20)
    let indicator = try JSONDecoder().decode(Indicator.self, from: Data(buffer: body))
    let answer = #"{"accepted":1,"rejected":[],"ids":[""# + UUID().uuidString.lowercased() + "\"]}"
    _ = indicator
    return Response(status: .accepted, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: answer)))
}
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
