import NIOCore
import SluiceTransport
import SluiceWire

/// One zone's buffer servers as a controller's read side sees them.
final class ZoneLinks: Sendable {
    let name: String
    let links: [ServerLink]
    let hash: RendezvousHash

    init(name: String, links: [ServerLink]) {
        self.name = name
        self.links = links
        self.hash = RendezvousHash(nodes: links.map { "\($0.endpoint)" })
    }

    /// The servers to ask for an app: its owner, and the server ranked next,
    /// which holds the app's lines while the owner is down.
    func candidates(for app: String) -> [ServerLink] {
        hash.ranking(of: app).prefix(2).map { links[$0] }
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
        case .app(let app): zones.flatMap { $0.candidates(for: app) }
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
        var asked: [(zone: String, owner: Bool, answer: EventLoopFuture<[Frame]>)] = []
        for zone in zones {
            for (rank, link) in zone.candidates(for: app).enumerated() {
                let answer = withTimeout(link.recent(app: app, limit: limit), server: "\(link.endpoint)", on: loop)
                asked.append((zone.name, rank == 0, answer))
            }
        }
        let questions = asked
        return EventLoopFuture.whenAllComplete(questions.map(\.answer), on: loop).map { results in
            var lists: [[RecentEnvelope]] = []
            var partial: [String] = []
            for (entry, result) in zip(questions, results) {
                switch result {
                case .success(let frames):
                    lists.append(RecentMerge.envelopes(of: frames))
                case .failure:
                    if entry.owner && !partial.contains(entry.zone) { partial.append(entry.zone) }
                }
            }
            let merged = RecentMerge.merge(lists)
            return Recent(envelopes: merged.suffix(limit).map(\.bytes), partial: partial)
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
