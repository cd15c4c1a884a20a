import Foundation
import RampartCore
import Testing

@Suite struct PeerSyncTests {
    static func ids(_ count: Int) -> [String] { (0..<count).map { _ in UUID().uuidString.lowercased() } }

    @Test func aBucketIsTheLastTwoHexDigits() {
        #expect(PeerSync.bucket(of: "0190b6d2-63a5-7c49-9b1e-5f0e8a9c00ff") == 255)
        #expect(PeerSync.bucket(of: "0190b6d2-63a5-7c49-9b1e-5f0e8a9c0a10") == 16)
        #expect(PeerSync.bucket(of: "0190b6d2-63a5-7c49-9b1e-5f0e8a9c0a00") == 0)
    }

    /// Digests do not depend on order, and one id more or less changes exactly its bucket's.
    @Test func digestsFollowTheSetNotItsOrder() {
        let ids = Self.ids(1000)
        let digests = PeerSync.digests(ids)
        #expect(PeerSync.digests(ids.shuffled()) == digests)
        #expect(PeerSync.differing(digests, digests).isEmpty)
        let extra = "0190b6d2-63a5-7c49-9b1e-5f0e8a9c0a2b"
        #expect(PeerSync.differing(digests, PeerSync.digests(ids + [extra])) == [0x2b])
        #expect(PeerSync.differing(PeerSync.digests([]), PeerSync.digests(ids)).count == Set(ids.map(PeerSync.bucket)).count)
    }

    @Test func requestsRoundTripAndForeignOnesAreRefused() throws {
        let ids = Self.ids(300)
        let digests = PeerSync.digests(ids)
        func decoded(_ body: [UInt8], node: String = "a") throws -> PeerSync.Request {
            try PeerSync.decode(JSONValue.parse(body), node: node)
        }
        #expect(try decoded(PeerSync.encode(.digests(digests, reciprocate: true), node: "a", at: Date())) == .digests(digests, reciprocate: true))
        #expect(try decoded(PeerSync.encode(.digests(digests, reciprocate: false), node: "a", at: Date())) == .digests(digests, reciprocate: false))
        let page = try #require(PeerSync.pages(ids, differing: [1, 2, 3]).first)
        #expect(
            try decoded(PeerSync.encode(.entries(buckets: page.buckets, ids: page.ids), node: "a", at: Date()))
                == .entries(buckets: page.buckets, ids: page.ids))

        // Another node's name, a short list of digests, an id outside the listed buckets, a bucket twice.
        #expect(throws: ValueError.self) { try decoded(PeerSync.encode(.digests(digests, reciprocate: false), node: "b", at: Date())) }
        #expect(throws: ValueError.self) {
            try decoded(PeerSync.encode(.digests(Array(digests.dropLast()), reciprocate: false), node: "a", at: Date()))
        }
        let outside = ids.first { PeerSync.bucket(of: $0) != 1 }!
        #expect(throws: ValueError.self) { try decoded(PeerSync.encode(.entries(buckets: [1], ids: [outside]), node: "a", at: Date())) }
        #expect(throws: ValueError.self) { try decoded(PeerSync.encode(.entries(buckets: [1, 1], ids: []), node: "a", at: Date())) }
        #expect(throws: ValueError.self) { try decoded(Array(#"{"type":"rampart.sync.v1","data":{"node":"a","buckets":[256],"entries":[]}}"#.utf8)) }
    }

    /// Pages carry whole buckets, at most the page size unless one bucket alone is larger.
    @Test func pagesHoldWholeBuckets() {
        let ids = Self.ids(5000)
        let differing = Array(0..<256)
        let pages = PeerSync.pages(ids, differing: differing, maxEntries: 100)
        #expect(pages.flatMap(\.buckets) == differing)
        #expect(Set(pages.flatMap(\.ids)) == Set(ids))
        for page in pages {
            #expect(page.ids.count <= 100 || page.buckets.count == 1)
            #expect(page.ids.allSatisfy { page.buckets.contains(PeerSync.bucket(of: $0)) })
        }
        #expect(PeerSync.pages(ids, differing: [7]).flatMap(\.ids).allSatisfy { PeerSync.bucket(of: $0) == 7 })
    }
}
