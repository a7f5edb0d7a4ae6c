import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore
import SluiceTransport
import SluiceWire

/// What every ingress connection of a controller shares: the links to its
/// zone's buffer servers, the `BatchRouter` that picks one, and which are
/// up. It owns the links' batches: when a server goes down, what it had
/// not acknowledged goes to the servers now owning each app (or waits at
/// its link when none is up); when a server acknowledges, the ingress
/// frames it carried parts of are told.
final class IngressRouter: ServerLinkOwner, Sendable {
    let links: [ServerLink]
    /// Routing over the links' servers: replaced when DNS changes them.
    private let routing: NIOLockedValueBox<BatchRouter>
    var router: BatchRouter { routing.withLockedValue { $0 } }
    let received: Counter
    let unroutable: Counter
    private let unreachable: Counter
    /// Envelopes of a stopped server's history handed to a stand-in, and
    /// let go for want of one.
    private let historyHandedOver: Counter
    private let historyNoServer: Counter
    private let live = NIOLockedValueBox(LiveServers.none)

    init(links: [ServerLink], metrics: any MetricsFactory) {
        self.links = links
        self.routing = NIOLockedValueBox(Self.routing(over: links))
        self.received = Counter(label: MetricNames.controllerReceived, factory: metrics)
        self.unroutable = Counter(
            label: MetricNames.controllerDropped, dimensions: [("reason", "no_source_id")], factory: metrics)
        self.unreachable = Counter(
            label: MetricNames.controllerDropped, dimensions: [("reason", "server_unreachable")], factory: metrics)
        self.historyHandedOver = Counter(
            label: MetricNames.controllerHistory, dimensions: [("outcome", "handed_over")], factory: metrics)
        self.historyNoServer = Counter(
            label: MetricNames.controllerHistory, dimensions: [("outcome", "no_server")], factory: metrics)
        for link in links { link.setOwner(self) }
    }

    /// The servers up now.
    var liveServers: LiveServers { live.withLockedValue { $0 } }

    /// The links' servers changed (DNS): apps route over the new set.
    func serversChanged() {
        let routing = Self.routing(over: links)
        self.routing.withLockedValue { $0 = routing }
    }

    /// A free slot has a name of its own in the ring, which owns nothing
    /// while a slot is held (`BatchRouter.assigned`).
    static func routing(over links: [ServerLink]) -> BatchRouter {
        var assigned = LiveServers.none
        for link in links where link.isAssigned { assigned.set(link.index, up: true) }
        return BatchRouter(
            servers: links.map { $0.isAssigned ? "\($0.endpoint)" : "unassigned-\($0.index)" }, assigned: assigned)
    }

    private let draining = NIOLockedValueBox(false)
    /// The controller is stopping: ingress connections are not read again.
    var isDraining: Bool {
        get { draining.withLockedValue { $0 } }
        set { draining.withLockedValue { $0 = newValue } }
    }

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
        for other in links where other !== link { other.anotherServerCameUp() }
    }

    func anotherServerIsUp(than link: ServerLink) -> Bool {
        var live = liveServers
        live.set(link.index, up: false)
        return !live.isEmpty
    }

    /// The batches are handed on first, with the server already counted
    /// out; only then may new ingress route past it. Ingress routed to it
    /// meanwhile comes back through `returned`, behind them.
    func link(_ link: ServerLink, wentDownWith unacknowledged: [LinkBatch], history: [LinkBatch]) -> Bool {
        var live = liveServers
        live.set(link.index, up: false)
        let handed = handOver(history, live: live)
        reroute(unacknowledged, from: link, live: live)
        self.live.withLockedValue { $0.set(link.index, up: false) }
        return handed
    }

    /// Sends what a stopped server acknowledged lately to the servers that
    /// now own its apps, flagged as history (stored, not streamed), ahead
    /// of its unacknowledged batches. Their origins were told already. With
    /// no server up it is let go (false): the outage's notice tells readers.
    /// Counted as handed over when a stand-in acknowledges it.
    @discardableResult
    private func handOver(_ history: [LinkBatch], live: LiveServers) -> Bool {
        let envelopes = history.reduce(0) { $0 + $1.envelopes }
        guard envelopes > 0 else { return true }
        guard !live.isEmpty else {
            historyNoServer.increment(by: envelopes)
            return false
        }
        // A leaving server's history goes whole, keeping its identities.
        let whole = sendWhole(history.filter(\.ordinals), live: live)
        send(history.filter { !$0.ordinals }, live: live, asHistory: true)
        return whole
    }

    /// The server is leaving: new ingress routes past it; what it was
    /// sent it still acknowledges.
    func linkLeaving(_ link: ServerLink) {
        live.withLockedValue { $0.set(link.index, up: false) }
    }

    /// A leaving server's history, one app's envelopes a frame, goes to the
    /// server that now takes each app, as history with its identities; its
    /// drain lines (DRAIN frames) go the same way, to the same drains there.
    func link(_ link: ServerLink, handsOver frames: [Frame]) -> Bool {
        var live = liveServers
        live.set(link.index, up: false)
        var batches: [LinkBatch] = []
        var whole = true
        for frame in frames {
            guard let (batch, parts) = try? frame.batchAndParts() else {
                whole = false
                continue
            }
            guard !parts.isEmpty else { continue }
            let envelopes = parts.reduce(0) { $0 + Int($1.count) }
            batches.append(
                LinkBatch(
                    batch: batch, parts: parts, origins: [], envelopes: envelopes, history: true, ordinals: true,
                    drain: frame.header.flags.contains(.drain)))
        }
        return handOver(batches, live: live) && whole
    }

    /// Sends each batch of one app's history, whole, to the server that
    /// takes that app among `live` (not empty).
    @discardableResult
    private func sendWhole(_ batches: [LinkBatch], live: LiveServers) -> Bool {
        var unroutable = 0
        defer { if unroutable > 0 { historyNoServer.increment(by: unroutable) } }
        for batch in batches {
            var key: ByteBuffer?
            batch.batch.withUnsafeReadableBytes { bytes in
                try? EnvelopeBatchScanner.forEach(in: bytes) { range, fields in
                    guard key == nil, !fields.sourceID.isEmpty else { return }
                    let envelope = UnsafeRawBufferPointer(rebasing: bytes[range])
                    key = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: envelope[fields.sourceID]))
                }
            }
            guard let key,
                let index = key.withUnsafeReadableBytes({ router.owner(of: $0, live: live) })
            else {
                unroutable += batch.envelopes
                continue
            }
            links[index].send(batch)
        }
        return unroutable == 0
    }

    func link(_ link: ServerLink, returned batches: [LinkBatch]) {
        var live = liveServers
        live.set(link.index, up: false)
        reroute(batches, from: link, live: live)
    }

    /// Sends batches to the servers that own their apps among `live`, or
    /// keeps them at `link` when none is up.
    private func reroute(_ all: [LinkBatch], from link: ServerLink, live: LiveServers) {
        // History handed to a server that stopped too goes on as history.
        handOver(all.filter(\.history), live: live)
        let batches = all.filter { !$0.history }
        guard !batches.isEmpty else { return }
        guard !live.isEmpty else {
            link.keep(batches)
            return
        }
        send(batches, live: live, asHistory: false)
    }

    /// Routes batches to the servers that own their apps among `live`
    /// (not empty), gathered per server. A batch to a server stays within
    /// what one ingress flush makes: what waits goes out before a batch
    /// that could take it past. Ingress parts are told how many servers
    /// they now wait for; history's origins were told long ago.
    private func send(_ batches: [LinkBatch], live: LiveServers, asHistory: Bool) {
        var builders = builders()
        func flush(_ index: Int) {
            guard var batch = builders[index].finish() else { return }
            batch.history = asHistory
            links[index].send(batch)
        }
        for pending in batches {
            for index in builders.indices
            where !builders[index].isEmpty && builders[index].frameBytes + pending.frameBytes > IngressHandler.flushThreshold {
                flush(index)
            }
            let fanout = router.reroute([pending], live: live, into: &builders)
            if !asHistory {
                for (origin, servers) in fanout { origin.acks?.partRerouted(origin.sequence, servers: servers) }
            }
        }
        for index in builders.indices { flush(index) }
    }

    func link(_ link: ServerLink, acknowledged batches: [LinkBatch]) {
        // Every acknowledgement comes here: no array is made for the count.
        var handed = 0
        for batch in batches where batch.history { handed += batch.envelopes }
        if handed > 0 { historyHandedOver.increment(by: handed) }
        partsDone(batches)
    }

    func link(_ link: ServerLink, dropped batches: [LinkBatch]) {
        // History never waits at a link (`reroute` hands it over or lets
        // it go), so what is dropped here is ingress.
        unreachable.increment(by: batches.reduce(0) { $0 + $1.envelopes })
        // Nothing more will come of them: the emitter is not held up for them.
        partsDone(batches)
    }

    /// Tells the origins of the ingress batches' parts that their server
    /// is done with them; history's were told long ago.
    private func partsDone(_ batches: [LinkBatch]) {
        for batch in batches where !batch.history {
            for origin in batch.origins { origin.acks?.partDone(origin.sequence) }
        }
    }
}
