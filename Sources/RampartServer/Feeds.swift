import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RampartCore
import RampartStore
import ServiceLifecycle
import Synchronization

/// Pulls the configured feeds (`feeds`), each on its interval, into the ingest path as
/// `via: feed:NAME`. A pull sends `If-None-Match`/`If-Modified-Since` and skips an unchanged
/// body; a list feed (text, csv) stores only the values it did not hold yet (and again once half
/// their `ttl` has passed) and, with `sync`, revokes those that vanished; a TAXII feed reads from
/// where its last pull ended (`added_after`), following `next`; a MISP feed reads the events
/// its manifest says changed. A failing feed backs off with
/// jitter, keeps what it brought in force, and touches nothing else. The feeds in force follow
/// reloads.
final class FeedService: Service, Sendable {
    let pipeline: Pipeline
    let store: Store
    let metrics: RampartMetrics
    let logger: Logger
    let now: @Sendable () -> Date
    /// The feeds of the configuration in force.
    let feeds: @Sendable () -> [Config.Feed]
    private let running = Mutex<Set<String>>([])
    private let client = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: HTTPClient.Configuration(
            redirectConfiguration: .follow(max: 3, allowCycles: false), timeout: .init(connect: .seconds(10)),
            connectionPool: .init(idleTimeout: .seconds(60))))

    init(
        pipeline: Pipeline, store: Store, metrics: RampartMetrics, logger: Logger, now: @escaping @Sendable () -> Date,
        feeds: @escaping @Sendable () -> [Config.Feed]
    ) {
        self.pipeline = pipeline
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.now = now
        self.feeds = feeds
    }

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                // No feeds configured (the common case): no read of their states each second.
                let inForce = feeds()
                let states = inForce.isEmpty ? [:] : (try? await store.feedStates()) ?? [:]
                let at = now()
                for feed in inForce where Self.isDue(feed, states[feed.name], at: at) && begin(feed.name) {
                    group.addTask { _ = try? await self.pullNow(feed, alreadyRunning: true) }
                }
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            }
            group.cancelAll()
        }
        try? await client.shutdown()
    }

    private func begin(_ name: String) -> Bool {
        running.withLock { $0.insert(name).inserted }
    }

    /// When the next pull is due: an interval after the last attempt, or after a failure sooner,
    /// 30 s doubling with each failure in a row (at most the interval), with ±20 % jitter.
    static func isDue(_ feed: Config.Feed, _ state: FeedState?, at now: Date) -> Bool {
        guard let state, let last = state.lastAttempt else { return true }
        let interval = Double(feed.interval.milliseconds) / 1000
        var wait = interval
        if state.failures > 0 {
            wait = min(interval, 30 * pow(2, Double(min(state.failures - 1, 16))))
            // The same jitter for one feed and attempt, so that the check each second agrees with itself.
            var hasher = Hasher()
            hasher.combine(feed.name)
            hasher.combine(last.milliseconds)
            wait *= 0.8 + 0.4 * Double(UInt(bitPattern: hasher.finalize()) % 1000) / 1000
        }
        return now.timeIntervalSince(last) >= wait
    }

    /// Pulls a feed now and returns its state after; throws when it is pulled already.
    func pullNow(_ feed: Config.Feed, alreadyRunning: Bool = false) async throws -> FeedState {
        guard alreadyRunning || begin(feed.name) else { throw Problem(.conflict, code: "pull_running", detail: "feed \(feed.name) is being pulled") }
        defer { _ = running.withLock { $0.remove(feed.name) } }
        var state = try await store.feedStates()[feed.name] ?? FeedState(name: feed.name)
        let started = ContinuousClock.now
        state.lastAttempt = now()
        do {
            let outcome = try await pull(feed, &state)
            state.lastSuccess = state.lastAttempt
            state.lastError = nil
            state.failures = 0
            state.items = outcome.items
            state.duration = ContinuousClock.now - started
            metrics.count(.feedPulls, ["feed": feed.name, "outcome": outcome.unchanged ? "unchanged" : "ok"])
            metrics.count(.feedItems, ["feed": feed.name], outcome.items)
            logger.info(
                "feed.pulled",
                metadata: ["rampart.feed": "\(feed.name)", "rampart.items": "\(outcome.items)", "rampart.unchanged": "\(outcome.unchanged)"])
        } catch {
            state.failures += 1
            state.lastError = "\(error)"
            metrics.count(.feedPulls, ["feed": feed.name, "outcome": "failed"])
            logger.warning(
                "feed.failed", metadata: ["rampart.feed": "\(feed.name)", "rampart.error": "\(error)", "rampart.failures": "\(state.failures)"])
        }
        try await store.saveFeedState(state)
        return state
    }

    struct Outcome {
        var items = 0
        var unchanged = false
    }

    struct FeedError: Error, CustomStringConvertible {
        let description: String
    }

    private func pull(_ feed: Config.Feed, _ state: inout FeedState) async throws -> Outcome {
        switch feed.kind {
        case .taxii:
            return try await pullTAXII(feed, &state)
        case .misp:
            return try await pullMISP(feed, &state)
        case .stix, .text, .csv:
            guard let (body, headers) = try await get(feed, feed.url, conditional: state) else { return Outcome(unchanged: true) }
            state.etag = headers.first(name: "ETag")
            state.lastModified = headers.first(name: "Last-Modified")
            if feed.kind == .stix {
                let summary = try await pipeline.ingest(body, format: .stix, defaults: feed.defaults, via: feed.via)
                return Outcome(items: summary.ids.count)
            }
            return try await ingestList(feed, body, &state)
        }
    }

    /// A text or CSV feed: its values, the new ones stored, the vanished ones revoked (`sync`).
    /// Lines are read as the ingest path asks for them, so that reading overlaps the commits.
    private func ingestList(_ feed: Config.Feed, _ body: ByteBuffer, _ state: inout FeedState) async throws -> Outcome {
        let at = now()
        let known = try await store.feedValues(feed.name)
        // With a ttl, a value still listed is stored again once half of it has passed.
        // Items' ids come from the feed, the value and that period (so that a retried pull stores
        // nothing twice), in the order of the period's start and the line.
        let period = feed.defaults.ttl.map { ttl in max(1, Double(ttl.milliseconds) / 2000) }
        let epoch = period.map { Int(at.timeIntervalSince1970 / $0) } ?? 0
        let epochStart = Date(timeIntervalSince1970: period.map { Double(epoch) * $0 } ?? 0)
        let bytes = Array(body.readableBytesView)
        var listed: [String: String] = [:]
        listed.reserveCapacity(known.count)
        var offset = 0
        var line = 0
        func next() -> IngestParser.Entry? {
            while offset < bytes.count {
                let end = bytes[offset...].firstIndex(of: 0x0a) ?? bytes.count
                let range = offset..<end
                offset = end + 1
                line += 1
                guard let value = bytes[range].withUnsafeBufferPointer({ Self.value(of: $0, feed) }) else { continue }
                do {
                    let indicator = try Indicator(line: Substring(value), defaults: feed.defaults, now: at)
                    guard listed[indicator.value] == nil else { continue }
                    let id = IDGenerator.ordered(at: epochStart, sequence: line, ["feed", feed.name, indicator.value, String(epoch)])
                    listed[indicator.value] = id
                    if known[indicator.value] == id { continue }
                    return IngestParser.Entry(position: line, result: .success(.indicator(indicator)), id: id)
                } catch {
                    return IngestParser.Entry(position: line, result: .failure(error), raw: String(value.prefix(256)))
                }
            }
            return nil
        }
        let summary = try await pipeline.ingest(entries: next, stix: false, positionName: "line", via: feed.via, at: at)
        if feed.sync {
            let vanished = known.compactMap { value, item in listed[value] == nil ? item : nil }
            try await pipeline.withdraw(items: vanished, via: feed.via, reason: "no longer in feed \(feed.name)")
        }
        try await store.setFeedValues(feed.name, listed)
        state.values = listed.count
        return Outcome(items: summary.ids.count)
    }

    /// The value of a line of a list feed: what `regex` matches in it, else its column
    /// (whitespace-separated for text, the delimiter for CSV, quotes around a cell removed); nil
    /// for blank and comment lines, a line `regex` does not match, and a value `exclude` matches.
    static func value(of raw: UnsafeBufferPointer<UInt8>, _ feed: Config.Feed) -> String? {
        let line = IngestParser.trimmed(raw)
        guard let first = line.first, !line.starts(with: feed.comment.utf8), !(feed.kind == .text && first == UInt8(ascii: ";")) else { return nil }
        if let regex = feed.regex {
            guard let found = regex.firstMatch(in: String(decoding: line, as: UTF8.self)), !found.isEmpty else { return nil }
            let value = String(found)
            return feed.exclude?.matches(value) == true ? nil : value
        }
        var column = 1
        var start = 0
        var index = 0
        func isSeparator(_ byte: UInt8) -> Bool {
            feed.kind == .csv ? byte == feed.delimiter : byte == 0x20 || byte == 0x09
        }
        while true {
            let end = index < line.count && !isSeparator(line[index])
            if end {
                index += 1
                continue
            }
            if column == feed.column {
                var cell: UnsafeBufferPointer<UInt8> = IngestParser.trimmed(UnsafeBufferPointer(rebasing: line[start..<index]))
                if cell.count >= 2, cell.first == UInt8(ascii: "\""), cell.last == UInt8(ascii: "\"") {
                    cell = UnsafeBufferPointer(rebasing: cell[1..<cell.count - 1])
                }
                guard !cell.isEmpty else { return nil }
                let value = String(decoding: cell, as: UTF8.self)
                return feed.exclude?.matches(value) == true ? nil : value
            }
            guard index < line.count else { return nil }
            // Text: a run of spaces and tabs is one separator.
            if feed.kind == .text { while index < line.count, isSeparator(line[index]) { index += 1 } } else { index += 1 }
            start = index
            column += 1
        }
    }

    /// A MISP JSON feed: its `manifest.json`, then each event whose timestamp is newer than the
    /// one read last; of an event's attributes (its objects' too) those with `to_ids` become
    /// indicators, a `deleted` one (or one no longer `to_ids`) is withdrawn, and a changed one
    /// replaces its earlier item. `tlp:*` tags (the attribute's, else the event's) set the TLP.
    /// The list kept for the feed holds `event:UUID` with its timestamp and each attribute's item.
    private func pullMISP(_ feed: Config.Feed, _ state: inout FeedState) async throws -> Outcome {
        var base = feed.url
        if !base.hasSuffix("/") { base += "/" }
        guard let (body, headers) = try await get(feed, base + "manifest.json", conditional: state) else { return Outcome(unchanged: true) }
        guard case .object(let events) = try JSONValue.parse(body.readableBytesView, maxDepth: 16) else {
            throw FeedError(description: "manifest.json is not a JSON object of events")
        }
        var listed = try await store.feedValues(feed.name)
        var outcome = Outcome()
        var replaced: [String] = []
        for (uuid, summary) in events {
            // {"uuid": {"timestamp": "1472638251", ...}}, or (old generators) {"uuid": timestamp}.
            let stamp = Self.number(summary["timestamp"] ?? summary) ?? 0
            guard PeerMessage.isItemID(uuid.lowercased()), listed["event:" + uuid].flatMap(Int.init) ?? -1 < stamp else { continue }
            guard let (eventBody, _) = try await get(feed, base + uuid + ".json", conditional: nil),
                let event = try JSONValue.parse(eventBody.readableBytesView, maxDepth: 32)["Event"], case .object = event
            else { throw FeedError(description: "event \(uuid) is not a MISP event") }
            var defaults = feed.defaults
            if case .string(let org)? = event["Orgc"]?["name"], defaults.source == nil { defaults.source = String(org.prefix(256)) }
            let eventTLP = Self.tlp(event["Tag"])
            var attributes = event["Attribute"]?.arrayValues ?? []
            for object in event["Object"]?.arrayValues ?? [] { attributes += object["Attribute"]?.arrayValues ?? [] }
            let at = now()
            var entries: [IngestParser.Entry] = []
            for (index, attribute) in attributes.enumerated() {
                guard case .string(let attributeID)? = attribute["uuid"] else { continue }
                let key = "attribute:" + attributeID
                let actionable = attribute["to_ids"] == .bool(true) && attribute["deleted"] != .bool(true)
                guard actionable, case .string(let type)? = attribute["type"], let kind = Self.mispKinds[type],
                    case .string(let raw)? = attribute["value"]
                else {
                    if let item = listed.removeValue(forKey: key) { replaced.append(item) }
                    continue
                }
                let value = type.contains("|") ? String(raw.split(separator: "|").first ?? "") : raw
                // The same id while the attribute's timestamp stays: a re-read event stores nothing twice.
                let changed = Self.number(attribute["timestamp"]) ?? stamp
                let id = IDGenerator.ordered(
                    at: Date(timeIntervalSince1970: Double(changed)), sequence: index, ["misp", feed.name, attributeID, String(changed)])
                if listed[key] == id { continue }
                var entryDefaults = defaults
                entryDefaults.kind = kind
                entryDefaults.tlp = Self.tlp(attribute["Tag"]) ?? eventTLP ?? defaults.tlp
                do {
                    let indicator = try Indicator(line: Substring(value), defaults: entryDefaults, now: at)
                    entries.append(IngestParser.Entry(position: index, result: .success(.indicator(indicator)), id: id))
                    if let previous = listed[key] { replaced.append(previous) }
                    listed[key] = id
                } catch {
                    entries.append(IngestParser.Entry(position: index, result: .failure(error), raw: String(value.prefix(256))))
                }
            }
            var next = entries.makeIterator()
            outcome.items += try await pipeline.ingest(entries: { next.next() }, stix: false, positionName: "attribute", via: feed.via, at: at).ids
                .count
            listed["event:" + uuid] = String(stamp)
        }
        // Replaced and deleted attributes go once what replaces them is in.
        try await pipeline.withdraw(items: replaced, via: feed.via, reason: "deleted or changed in MISP feed \(feed.name)")
        try await store.setFeedValues(feed.name, listed)
        state.etag = headers.first(name: "ETag")
        state.lastModified = headers.first(name: "Last-Modified")
        state.values = listed.keys.filter { $0.hasPrefix("attribute:") }.count
        return outcome
    }

    /// MISP attribute types Rampart acts on, and the kind each holds (nil: an address or network).
    static let mispKinds: [String: IndicatorKind?] = [
        "ip-src": nil, "ip-dst": nil, "ip-src|port": nil, "ip-dst|port": nil, "domain": .domain, "hostname": .domain, "url": .url,
        "md5": .md5, "sha1": .sha1, "sha256": .sha256, "email-src": .email, "email-dst": .email,
    ]

    /// The most restrictive `tlp:*` tag of a MISP tag list.
    static func tlp(_ tags: JSONValue?) -> TLP? {
        var found: TLP?
        for tag in tags?.arrayValues ?? [] {
            guard case .string(let name)? = tag["name"], name.lowercased().hasPrefix("tlp:"), let level = try? TLP(name: name) else { continue }
            found = max(found ?? level, level)
        }
        return found
    }

    static func number(_ value: JSONValue?) -> Int? {
        switch value {
        case .string(let text)?: Int(text)
        case .number(let n)?: Int(exactly: n.rounded(.down))
        default: nil
        }
    }

    /// A TAXII 2.1 collection, from where the last pull ended, a page of up to 1,000 at a time.
    private func pullTAXII(_ feed: Config.Feed, _ state: inout FeedState) async throws -> Outcome {
        var root = feed.url
        if !root.hasSuffix("/") { root += "/" }
        let base = root + "collections/\(feed.collection ?? "")/objects/?limit=1000"
        var outcome = Outcome()
        // Paging keeps the pull's first query and adds next; a page with more but no next is
        // followed by added_after its last date_added, as TAXII 2.1 says.
        var after = state.cursor
        var next: String?
        var more = false
        var pages = 0
        repeat {
            var url = base
            if let after { url += "&added_after=" + Self.queryEscaped(after) }
            if let next { url += "&next=" + Self.queryEscaped(next) }
            guard let (body, headers) = try await get(feed, url, conditional: nil, accept: TAXIIRoutes.mediaType) else { break }
            let envelope = try JSONValue.parse(body.readableBytesView, maxDepth: 64)
            if case .array(let objects)? = envelope["objects"], !objects.isEmpty {
                outcome.items += try await pipeline.ingest(body, format: .stix, defaults: feed.defaults, via: feed.via).ids.count
            }
            let last = headers.first(name: "X-TAXII-Date-Added-Last")
            if let last { state.cursor = last }
            more = envelope["more"] == .bool(true)
            if case .string(let token)? = envelope["next"], more {
                next = token
            } else {
                next = nil
                after = last ?? after
            }
            pages += 1
        } while more && pages < 10_000
        return outcome
    }

    static func queryEscaped(_ text: String) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&+=")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    /// GETs `url` with the feed's credentials, size limit and timeout; nil when the server says
    /// the body is unchanged (304).
    private func get(
        _ feed: Config.Feed, _ url: String, conditional state: FeedState?, accept: String? = nil
    ) async throws -> (ByteBuffer, HTTPHeaders)? {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "User-Agent", value: "rampart-feeds")
        if let accept { request.headers.add(name: "Accept", value: accept) }
        if let etag = state?.etag { request.headers.add(name: "If-None-Match", value: etag) }
        if let modified = state?.lastModified { request.headers.add(name: "If-Modified-Since", value: modified) }
        switch feed.auth {
        case .basic(let user, let file)?:
            let password = try Self.secret(file)
            request.headers.add(name: "Authorization", value: "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
        case .bearer(let file)?:
            request.headers.add(name: "Authorization", value: "Bearer " + (try Self.secret(file)))
        case .header(let name, let file)?:
            request.headers.add(name: name, value: try Self.secret(file))
        case nil:
            break
        }
        let response = try await client.execute(request, timeout: .milliseconds(feed.timeout.milliseconds))
        if response.status == .notModified { return nil }
        guard (200..<300).contains(Int(response.status.code)) else {
            throw FeedError(description: "\(url.preview) answered \(response.status.code) \(response.status.reasonPhrase)")
        }
        do {
            return (try await response.body.collect(upTo: feed.maxBytes), response.headers)
        } catch is NIOTooManyBytesError {
            throw FeedError(description: "\(url.preview) sent more than max_bytes (\(feed.maxBytes) bytes)")
        }
    }

    /// A secret from its file (first line), never logged.
    static func secret(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw FeedError(description: "cannot read the secret file \(path)")
        }
        return text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
    }
}
