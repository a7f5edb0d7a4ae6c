import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore
import SluiceWire

/// What every ingress connection of a controller shares: the links to its
/// zone's buffer servers, the `BatchRouter` that picks one, and which are
/// up. It owns the links' batches: when a server goes down, what it had
/// not acknowledged goes to the servers now owning each app (or waits at
/// its link when none is up); when a server acknowledges, the ingress
/// frames it carried parts of are told.
final class IngressRouter: ServerLinkOwner, Sendable {
    let links: [ServerLink]
    let router: BatchRouter
    let received: Counter
    let unroutable: Counter
    private let unreachable: Counter
    private let live = NIOLockedValueBox(LiveServers.none)

    init(links: [ServerLink], metrics: any MetricsFactory) {
        self.links = links
        self.router = BatchRouter(servers: links.map { "\($0.endpoint)" })
        self.received = Counter(label: MetricNames.controllerReceived, factory: metrics)
        self.unroutable = Counter(
            label: MetricNames.controllerDropped, dimensions: [("reason", "no_source_id")], factory: metrics)
        self.unreachable = Counter(
            label: MetricNames.controllerDropped, dimensions: [("reason", "server_unreachable")], factory: metrics)
        for link in links { link.setOwner(self) }
    }

    /// The servers up now.
    var liveServers: LiveServers { live.withLockedValue { $0 } }

    /// Empty builders, one per server.
    func builders() -> [PendingBatchBuilder<IngressOrigin>] {
        Array(repeating: PendingBatchBuilder(), count: links.count)
    }

    /// The server's apps come back to it; and what waits at links that are
    /// down (for a server that was never up, or while none was) goes to
    /// the servers that now own it, so it does not wait for its own server.
    func linkCameUp(_ link: ServerLink) {
        live.withLockedValue { $0.set(link.index, up: true) }
        for other in links where other !== link && !other.isUp { other.handBack() }
    }

    /// The batches are handed on first, with the server already counted
    /// out; only then may new ingress route past it. Ingress routed to it
    /// meanwhile comes back through `returned`, behind them.
    func link(_ link: ServerLink, wentDownWith unacknowledged: [LinkBatch]) {
        var live = liveServers
        live.set(link.index, up: false)
        reroute(unacknowledged, from: link, live: live)
        self.live.withLockedValue { $0.set(link.index, up: false) }
    }

    func link(_ link: ServerLink, returned batches: [LinkBatch]) {
        var live = liveServers
        live.set(link.index, up: false)
        reroute(batches, from: link, live: live)
    }

    /// Sends batches to the servers that own their apps among `live`, or
    /// keeps them at `link` when none is up.
    private func reroute(_ batches: [LinkBatch], from link: ServerLink, live: LiveServers) {
        guard !batches.isEmpty else { return }
        guard !live.isEmpty else {
            link.keep(batches)
            return
        }
        var builders = builders()
        for pending in batches {
            // A batch to a server stays within what one ingress flush makes:
            // what waits goes out before a batch that could take it past.
            for index in builders.indices
            where !builders[index].isEmpty && builders[index].frameBytes + pending.frameBytes > IngressHandler.flushThreshold {
                if let batch = builders[index].finish() { links[index].send(batch) }
            }
            for (origin, servers) in router.reroute([pending], live: live, into: &builders) {
                origin.acks.partRerouted(origin.sequence, servers: servers)
            }
        }
        for index in builders.indices {
            if let batch = builders[index].finish() { links[index].send(batch) }
        }
    }

    func link(_ link: ServerLink, acknowledged batches: [LinkBatch]) {
        for batch in batches {
            for origin in batch.origins { origin.acks.partDone(origin.sequence) }
        }
    }

    func link(_ link: ServerLink, dropped batches: [LinkBatch]) {
        unreachable.increment(by: batches.reduce(0) { $0 + $1.envelopes })
        // Nothing more will come of them: the emitter is not held up for them.
        self.link(link, acknowledged: batches)
    }
}
