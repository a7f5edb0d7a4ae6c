import NIOConcurrencyHelpers
import NIOCore
import SluiceProto
import SwiftProtobuf
import SluiceTransport
import SluiceWire

/// One zone's buffer servers as a controller's read side sees them.
final class ZoneLinks: Sendable {
    let name: String
    let links: [ServerLink]
    /// The zone's servers are found by DNS: its links are slots that
    /// servers come to and go from (`ServerDiscovery`).
    let discovered: Bool
    private let routing: NIOLockedValueBox<BatchRouter>

    init(name: String, discovered: Bool = false, links: [ServerLink]) {
        self.name = name
        self.links = links
        self.discovered = discovered
        self.routing = NIOLockedValueBox(IngressRouter.routing(over: links))
    }

    /// The links' servers changed (DNS).
    func serversChanged() {
        let routing = IngressRouter.routing(over: links)
        self.routing.withLockedValue { $0 = routing }
    }

    /// The servers to ask for an app: its owner, and the server ranked next,
    /// which holds the app's lines while the owner is down.
    func candidates(for app: String) -> [ServerLink] {
        let routing = self.routing.withLockedValue { $0 }
        return routing.hash.ranking(of: app).lazy.filter { routing.assigned.contains($0) }.prefix(2).map { links[$0] }
    }

    /// The servers a read of an app asks, its owner first: its owner and
    /// stand-in, or, where servers come and go (DNS), every server of the
    /// zone, since an app's lines stay where they were stored when a
    /// server that joins takes the app over.
    func holders(for app: String) -> [ServerLink] {
        guard discovered else { return candidates(for: app) }
        let routing = self.routing.withLockedValue { $0 }
        return routing.hash.ranking(of: app).filter { routing.assigned.contains($0) }.map { links[$0] }
    }

    /// The links a live reader of an app subscribes on: its owner and
    /// stand-in, or, where servers come and go (DNS), every slot, so that
    /// a server that joins later and takes the app is read too.
    func readers(for app: String) -> [ServerLink] {
        discovered ? links : candidates(for: app)
    }
}

/// The read side of a controller: it asks the servers that hold an app in
/// every zone and collates their answers.
final class Egress: Sendable {
    let zones: [ZoneLinks]
    /// How long a zone may take to answer before it is left out.
    let zoneTimeout: TimeAmount

    init(zones: [ZoneLinks], zoneTimeout: TimeAmount = .seconds(2)) {
        self.zones = zones
        self.zoneTimeout = zoneTimeout
    }

    /// Every link whose server may hold the live envelopes a reader reads:
    /// an app's owner and stand-in in each zone, or every server.
    func links(for target: StreamTarget) -> [ServerLink] {
        switch target {
        case .app(let app): zones.flatMap { $0.readers(for: app) }
        case .firehose: zones.flatMap(\.links)
        }
    }

    struct Recent {
        /// Oldest first, as slices of the servers' answers.
        var envelopes: [ByteBuffer]
        /// Zones whose owning server did not answer in time.
        var partial: [String]
    }

    struct ZoneTimeout: Error, CustomStringConvertible {
        var server: String
        var description: String { "buffer server \(server) did not answer in time" }
    }

    /// The newest `limit` envelopes of `app` over all zones, merged by
    /// timestamp (`RecentMerge`). A zone that does not answer within
    /// `zoneTimeout` is left out and named in `partial`; it never fails the
    /// request.
    func recent(app: String, limit: Int, on loop: any EventLoop) -> EventLoopFuture<Recent> {
        var request = Sluice_V1_StreamRequest()
        request.sourceID = app
        request.limit = UInt32(clamping: limit)
        return read(request, on: loop).map { Recent(envelopes: Array($0.envelopes.suffix(limit)), partial: $0.partial) }
    }

    /// What a RECENT_REQUEST asks of an app, from its owner and stand-in in
    /// every zone: each answers its share in the order it arrived there, and
    /// the answers are merged by time (`RecentMerge`), oldest first. Each server
    /// already kept to the request's limit; the caller takes the newest or
    /// the oldest `limit` of the merge. Zones are left out as for `recent`.
    func read(_ request: Sluice_V1_StreamRequest, on loop: any EventLoop) -> EventLoopFuture<Recent> {
        var asked: [(zone: String, owner: Bool, answer: EventLoopFuture<[Frame]>)] = []
        var empty: [String] = []
        for zone in zones {
            let holders = zone.holders(for: request.sourceID)
            // A zone found by DNS with no server yet: its part is missing.
            if holders.isEmpty { empty.append(zone.name) }
            for (rank, link) in holders.enumerated() {
                let answer = withTimeout(link.recent(request), server: "\(link.endpoint)", on: loop)
                asked.append((zone.name, rank == 0, answer))
            }
        }
        let questions = asked
        let emptyZones = empty
        let notices = outageNotices(request)
        return EventLoopFuture.whenAllComplete(questions.map(\.answer), on: loop).map { results in
            var lists: [[RecentEnvelope]] = notices.isEmpty ? [] : [notices]
            var partial: [String] = emptyZones
            for (entry, result) in zip(questions, results) {
                switch result {
                case .success(let frames):
                    lists.append(RecentMerge.envelopes(of: frames))
                case .failure:
                    if entry.owner && !partial.contains(entry.zone) { partial.append(entry.zone) }
                }
            }
            return Recent(envelopes: RecentMerge.merge(lists).map(\.bytes), partial: partial)
        }
    }

    /// In-band notices for what the servers that held the app's lines
    /// in the request's time range lost by stopping (`ReadOutageNotices`),
    /// oldest first; none when the read takes no logs.
    func outageNotices(_ request: Sluice_V1_StreamRequest) -> [RecentEnvelope] {
        guard ReadOutageNotices.readTakesLogs(messageFields: request.messageFields, nameFilter: request.nameFilter)
        else { return [] }
        var notices: [(timestamp: Int64, text: String)] = []
        for zone in zones {
            let candidates = zone.candidates(for: request.sourceID)
            guard let owner = candidates.first else { continue }
            let standIn = candidates.dropFirst().first
            notices += ReadOutageNotices.notices(
                app: request.sourceID, zone: zone.name,
                owner: ("\(owner.endpoint)", owner.outages),
                standIn: standIn.map { ("\($0.endpoint)", $0.outages) },
                start: request.startTime, end: request.endTime)
        }
        notices.sort { $0.timestamp < $1.timestamp }
        return ReadOutageNotices.envelopes(app: request.sourceID, notices)
    }

    /// What every server of every zone holds of each app (log-cache's
    /// meta), summed over servers: counts and expirations added, the
    /// oldest and newest times over all. A zone any of whose servers does
    /// not answer is named in `partial`.
    /// What every server holds of each app, its drains, and for each zone
    /// the most own-zone controllers any of its servers has connected.
    typealias MetaAnswer = (
        sources: [String: Sluice_V1_SourceMeta], drains: [String: DrainState], controllers: [String: Int], partial: [String]
    )

    /// The newest meta answer and when it came, for `meta(reusing:)`.
    private let lastMeta = NIOLockedValueBox<(at: NIODeadline, answer: MetaAnswer)?>(nil)

    /// `meta(on:)`, or an answer no older than `reuse` if there is one:
    /// the console's pages poll it every few seconds from every open tab,
    /// and each asks every server to walk every app it holds.
    func meta(on loop: any EventLoop, reusing reuse: TimeAmount) -> EventLoopFuture<MetaAnswer> {
        if let last = lastMeta.withLockedValue({ $0 }), NIODeadline.now() - last.at < reuse {
            return loop.makeSucceededFuture(last.answer)
        }
        return meta(on: loop)
    }

    func meta(on loop: any EventLoop) -> EventLoopFuture<MetaAnswer> {
        var request = Sluice_V1_StreamRequest()
        request.meta = true
        let asked = zones.flatMap { zone in
            zone.links.filter(\.isAssigned).map { link in
                (zone.name, withTimeout(link.recent(request), server: "\(link.endpoint)", on: loop))
            }
        }
        return EventLoopFuture.whenAllComplete(asked.map(\.1), on: loop).map { results in
            var sources: [String: Sluice_V1_SourceMeta] = [:]
            var drains: [String: DrainState] = [:]
            var controllers: [String: Int] = [:]
            var partial: [String] = []
            for ((zone, _), result) in zip(asked, results) {
                guard case .success(let frames) = result, let frame = frames.last,
                    let meta = try? Sluice_V1_MetaResponse(serializedBytes: Array(frame.payload.readableBytesView))
                else {
                    if !partial.contains(zone) { partial.append(zone) }
                    continue
                }
                for drain in meta.drains { drains[drain.id, default: DrainState(app: drain.app)].add(drain) }
                controllers[zone] = max(controllers[zone] ?? 0, Int(meta.controllers))
                for source in meta.sources {
                    guard var merged = sources[source.sourceID] else {
                        sources[source.sourceID] = source
                        continue
                    }
                    // Times only from servers that hold some of the app.
                    if merged.count == 0 {
                        merged.oldestTimestamp = source.oldestTimestamp
                        merged.newestTimestamp = source.newestTimestamp
                    } else if source.count > 0 {
                        merged.oldestTimestamp = min(merged.oldestTimestamp, source.oldestTimestamp)
                        merged.newestTimestamp = max(merged.newestTimestamp, source.newestTimestamp)
                    }
                    merged.count += source.count
                    merged.expired += source.expired
                    merged.dropped += source.dropped
                    sources[source.sourceID] = merged
                }
            }
            let answer: MetaAnswer = (sources, drains, controllers, partial)
            self.lastMeta.withLockedValue { $0 = (NIODeadline.now(), answer) }
            return answer
        }
    }

    /// A drain binding as every server that answered runs it: up only if
    /// each is (the app's owner sends its lines; the others are idle and
    /// up), its counts summed.
    struct DrainState: Equatable, Sendable {
        var app: String
        var up = true
        var sent: UInt64 = 0
        var dropped: UInt64 = 0
        var queued: UInt64 = 0
        /// Servers that run it.
        var servers = 0

        mutating func add(_ status: Sluice_V1_DrainStatus) {
            up = up && status.up
            sent += status.sent
            dropped += status.dropped
            queued += status.queued
            servers += 1
        }
    }

    private func withTimeout(
        _ future: EventLoopFuture<[Frame]>, server: String, on loop: any EventLoop
    ) -> EventLoopFuture<[Frame]> {
        let promise = loop.makePromise(of: [Frame].self)
        let timer = loop.scheduleTask(in: zoneTimeout) { promise.fail(ZoneTimeout(server: server)) }
        future.hop(to: loop).whenComplete { result in
            timer.cancel()
            promise.completeWith(result)
        }
        return promise.futureResult
    }
}
