import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceProto
import SluiceTLS
import SluiceTransport
import SluiceWire
import SwiftProtobuf

/// A controller's one connection to one buffer server: it carries ingest
/// batches out, keeping each in an `AckWindow` until the server
/// acknowledges it, and live subscriptions and recent dumps in. It
/// reconnects with backoff, subscribes again after a reconnect, and takes
/// a server that holds batches and says nothing for a second for dead.
/// What becomes of batches it cannot deliver its owner decides. All its
/// state lives on `eventLoop`.
public final class ServerLink: @unchecked Sendable {
    /// The server: its name in the zone's hash ring, and where to connect
    /// (the same, unless DNS named it: `ServerDiscovery.Found`). Nil for a
    /// slot no server found by DNS holds now.
    private let target: NIOLockedValueBox<Target>

    private struct Target {
        var server: ServerDiscovery.Found?
        /// Servers the slot has taken (DNS), so that a release meets only
        /// its own server.
        var assignments = 0
    }

    /// The server's name in the ring (`unassigned:0` for a free slot).
    public var endpoint: Endpoint { target.withLockedValue { $0.server?.identity } ?? Self.unassigned }
    static let unassigned = Endpoint(host: "unassigned", port: 0)

    /// Whether a server holds this link now (always, unless found by DNS).
    public var isAssigned: Bool { target.withLockedValue { $0.server != nil } }

    private var assignments: Int { target.withLockedValue { $0.assignments } }
    /// The zone of the server at the other end.
    public let zone: String
    /// The server's position among its zone's servers.
    let index: Int
    public let eventLoop: any EventLoop
    private let logger: Logger
    private let maxPayload: Int
    private let tls: TLSLayer?
    /// Bytes of batches kept (sent and not acknowledged, or waiting for a
    /// connection) past which ingress is paused; past twice that, batches
    /// no server can take are dropped.
    private let maxBacklog: Int
    private let ownerBox = NIOLockedValueBox<WeakOwner>(WeakOwner())
    private let answering = NIOLockedValueBox(Answering.notYetKnown)
    private let writable = NIOLockedValueBox(true)
    private let settled = NIOLockedValueBox(true)
    private let outageList = NIOLockedValueBox<[LinkOutage]>([])

    // All below on `eventLoop`.
    private var channel: (any Channel)?
    private var connecting = false
    private var stopped = false
    /// Whether the link has ever been up (before that, batches just wait).
    private var wasUp = false
    /// Whether the server has answered on the current connection.
    private var confirmed = false
    /// Heartbeats on an idle link, and the silence that ends a link.
    private var liveness = LinkLiveness(ServerLink.liveness, now: .now())
    private var watchdog: RepeatedTask?
    /// A link idle for half a second sends a probe; a server that owes an
    /// acknowledgement (of a batch or a probe) and says nothing for a
    /// second is taken for dead: a silent partition is noticed within
    /// about 1.75 s, idle or busy (docs/reliability.md).
    public static let liveness = LinkLiveness.Settings(
        heartbeat: .milliseconds(500), silence: .seconds(1), checkInterval: .milliseconds(250))
    private var backoff = TimeAmount.milliseconds(100)
    private var window: AckWindow<LinkBatch>
    private var subscriptions = LinkSubscriptions()
    private var requests = RecentRequests()
    private var writableWaiters: [@Sendable () -> Void] = []
    /// What the server acknowledged lately, handed on if it stops.
    private var acked: AckedHistory
    /// The server's graceful stop, if it is stopping.
    private var leave = LinkLeave()
    /// Batches routed here while the server leaves with no other server of
    /// the zone up to take them: not sent to it (its history is taken
    /// once), but routed again when its connection closes.
    private var held: [LinkBatch] = []
    private var heldBytes = 0
    /// The history of this leaving server waits for another server to be up.
    private var handoverWaits = false
    /// Some of this leaving server's history could not be handed on.
    private var handoverLost = false
    /// When the last connection was lost (Unix nanoseconds; 0: never).
    private var lastDown: Int64 = 0
    /// How far before `lastDown` a renewed subscription asks for stored
    /// envelopes: emitters' clocks and buffers put some lines a little
    /// behind the time they reach a server.
    static let replayMargin: Int64 = 2_000_000_000
    /// The controller's own zone, named in the HELLO that opens each
    /// connection: a server waits for its own zone's controllers to take
    /// its history when it leaves.
    private let localZone: String
    /// 1 while the server answers on this link, 0 else
    /// (`sluice_controller_buffer_server_up{server,zone}`): a rolling
    /// restart waits for it before stopping the next member.
    private var upGauge: Gauge?
    private let metrics: any MetricsFactory
    /// `start` was called: an assigned server is connected to.
    private var started = false
    /// The slot is emptied once its connection, closed for it, is down
    /// (the assignment it ends).
    private var releasing: Int?
    /// The slot's server counts in `zoneServers`' known servers, with a
    /// gauge of its own (a listed server always; one found by DNS from its
    /// `assign` to its release).
    private var countedKnown: Bool
    /// The zone's servers up, which this link's count is part of
    /// (`sluice_controller_zone_servers_up{zone}`).
    private let zoneServers: ZoneServerCount
    /// Whether `zoneServers` counts this link up now.
    private var countedUp = false
    /// Times the window filled, so that ingress waited
    /// (`sluice_controller_ack_window_full_total{zone}`).
    private let windowFull: Counter
    /// From a batch's first send to its acknowledgement
    /// (`sluice_controller_batch_ack_seconds{zone}`).
    private let ackTime: Timer

    init(
        endpoint: Endpoint?, zone: String = "z1", index: Int = 0, eventLoop: any EventLoop, logger: Logger,
        maxPayload: Int = FrameHeader.defaultMaxPayload, maxBacklog: Int = 64 * 1024 * 1024, tls: TLSLayer? = nil,
        handover: Handover = Handover(), localZone: String? = nil, zoneServers: ZoneServerCount? = nil,
        metrics: any MetricsFactory = MetricsSystem.factory
    ) {
        self.metrics = metrics
        self.target = NIOLockedValueBox(Target(server: endpoint.map { ServerDiscovery.Found(identity: $0, dial: $0) }))
        self.upGauge = endpoint.map { Self.upGauge(for: $0, zone: zone, metrics: metrics) }
        self.countedKnown = endpoint != nil
        self.zoneServers = zoneServers ?? ZoneServerCount(zone: zone, servers: 1, metrics: metrics)
        self.windowFull = Counter(label: MetricNames.controllerAckWindowFull, dimensions: [("zone", zone)], factory: metrics)
        self.ackTime = Timer(
            label: MetricNames.controllerBatchAckSeconds, dimensions: [("zone", zone)], preferredDisplayUnit: .seconds,
            factory: metrics)
        self.localZone = localZone ?? zone
        self.acked = AckedHistory(window: handover.window.nanoseconds, maxBytes: handover.maxBytes)
        self.tls = tls
        self.zone = zone
        self.index = index
        self.eventLoop = eventLoop
        self.logger = logger
        self.maxPayload = maxPayload
        self.maxBacklog = maxBacklog
        self.window = AckWindow(maxBytes: maxBacklog)
    }

    /// How much of what a server acknowledged its link keeps, to hand to
    /// the servers standing in when it stops (`AckedHistory`):
    /// `--handover-window` and `--handover-max-bytes`.
    public struct Handover: Sendable {
        public var window: TimeAmount
        public var maxBytes: Int

        public init(window: TimeAmount = .seconds(5), maxBytes: Int = 32 * 1024 * 1024) {
            self.window = window
            self.maxBytes = maxBytes
        }
    }

    private struct WeakOwner {
        weak var owner: (any ServerLinkOwner)?
    }

    private var owner: (any ServerLinkOwner)? { ownerBox.withLockedValue { $0.owner } }

    /// Sets the owner; before `start`.
    func setOwner(_ owner: any ServerLinkOwner) {
        ownerBox.withLockedValue { $0.owner = owner }
    }

    /// Whether the server answers: not yet known while the first
    /// connection is being tried, then up or down.
    public enum Answering: Sendable {
        case notYetKnown, up, down
    }

    /// Whether the server answers; read from any thread.
    public var answers: Answering { answering.withLockedValue { $0 } }

    /// Whether the connection to the server is up; read from any thread.
    public var isUp: Bool { answers == .up }

    /// The newest times the server stopped answering after having been up
    /// (at most `LinkOutage.kept`), oldest first; read from any thread.
    /// Reads tell them in band (`ReadOutageNotices`).
    public var outages: [LinkOutage] { outageList.withLockedValue { $0 } }

    /// Whether ingress may keep sending; read from any thread.
    public var isWritable: Bool { writable.withLockedValue { $0 } }

    /// Whether no acknowledgement is to be expected here soon: nothing is
    /// sent and unacknowledged on a connection to a server that serves (a
    /// link down, or to a server leaving, waits on events a stopping
    /// controller cannot wait for); read from any thread.
    public var isSettled: Bool { settled.withLockedValue { $0 } }

    private static func upGauge(for endpoint: Endpoint, zone: String, metrics: any MetricsFactory) -> Gauge {
        let gauge = Gauge(
            label: MetricNames.controllerServerUp, dimensions: [("server", "\(endpoint)"), ("zone", zone)], factory: metrics)
        gauge.record(0)
        return gauge
    }

    public func start() {
        eventLoop.execute {
            self.started = true
            self.connect()
        }
    }

    /// A server found by DNS takes this free slot: the link connects to it
    /// (once started), subscribes every reader it holds, and takes ingress
    /// for its apps once it answers. The slot is its at once (the ring is
    /// rebuilt next); the rest happens on the link's loop.
    func assign(_ server: ServerDiscovery.Found) {
        let generation = target.withLockedValue { target in
            target.server = server
            target.assignments += 1
            return target.assignments
        }
        onLoop { link in
            guard link.assignments == generation else { return }
            // The slot's last server, if its release has not finished: its
            // count and gauge go now, and its connection with them.
            link.releasing = nil
            link.forgetServer()
            link.channel?.close(promise: nil)
            link.answering.withLockedValue { $0 = .notYetKnown }
            link.wasUp = false
            link.backoff = .milliseconds(100)
            // Its readers ask for what it stored from a little before now.
            link.lastDown = WallClock.nowNanos()
            link.upGauge = Self.upGauge(for: server.identity, zone: link.zone, metrics: link.metrics)
            link.zoneServers.changedKnown(by: 1)
            link.countedKnown = true
            if link.started { link.connect() }
        }
    }

    /// The server is at a new address: used from its next connection.
    func redial(_ dial: Endpoint) {
        target.withLockedValue { $0.server?.dial = dial }
    }

    /// The slot's server is gone from DNS and its link is down: the slot
    /// is free at once; on the link's loop, what waited here for it goes to
    /// the servers that now own its apps (or waits for the first to come
    /// up).
    func release() {
        // A new generation: a connect still in flight to the server is
        // closed when it completes, not taken.
        let generation: Int? = target.withLockedValue { target in
            guard target.server != nil else { return nil }
            target.server = nil
            target.assignments += 1
            return target.assignments
        }
        guard let generation else { return }
        onLoop { link in
            // Up again since DNS was read: it goes down first, as any
            // server that stops answering, and the slot is emptied then.
            if let channel = link.channel {
                link.releasing = generation
                channel.close(promise: nil)
                return
            }
            link.finishRelease(generation)
        }
    }

    /// The slot's server no longer counts as known, and its gauge goes.
    private func forgetServer() {
        guard countedKnown else { return }
        countedKnown = false
        upGauge?.destroy()
        upGauge = nil
        zoneServers.changedKnown(by: -1)
    }

    private func finishRelease(_ generation: Int) {
        releasing = nil
        // Another server took the slot meanwhile: its `assign` settled this one.
        guard assignments == generation else { return }
        forgetServer()
        answering.withLockedValue { $0 = .notYetKnown }
        for promise in requests.removeAll() { promise.fail(LinkUnavailable(server: "\(Self.unassigned)")) }
        let waiting = window.removeAll().filter { $0.envelopes > 0 } + held
        held = []
        heldBytes = 0
        updateWritable()
        if !waiting.isEmpty, let owner { owner.link(self, returned: waiting) }
        for reader in subscriptions.allReaders { reader.linkChanged(self) }
    }

    public func stop() {
        eventLoop.execute {
            self.stopped = true
            self.watchdog?.cancel()
            self.channel?.close(promise: nil)
            for promise in self.requests.removeAll() { promise.fail(LinkUnavailable(server: "\(self.endpoint)")) }
        }
    }

    // MARK: ingest

    /// Sends a batch to the server. One routed here just after the link
    /// went down goes back to the owner, which hands it to a stand-in.
    func send(_ batch: LinkBatch) {
        onLoop {
            // A slot no server holds (DNS) passes it on as a server that went down does.
            if $0.channel == nil, $0.wasUp || !$0.isAssigned, !$0.stopped, let owner = $0.owner {
                owner.link($0, returned: [batch])
            } else {
                $0.keep([batch])
            }
        }
    }

    /// Sends batches now if connected; otherwise holds them until the
    /// server is back (no other server can stand in), dropping what would
    /// take the backlog past twice its bound.
    func keep(_ batches: [LinkBatch]) {
        onLoop { link in
            var dropped: [LinkBatch] = []
            for batch in batches {
                if link.channel == nil && link.window.bytes + batch.frameBytes > 2 * link.maxBacklog {
                    dropped.append(batch)
                } else {
                    link.transmit(batch)
                }
            }
            link.channel?.flush()
            link.updateWritable()
            if !dropped.isEmpty {
                link.logger.warning(
                    "dropping envelopes: buffer server unreachable and backlog full",
                    metadata: [LogKeys.server: "\(link.endpoint)", LogKeys.count: "\(dropped.reduce(0) { $0 + $1.envelopes })"])
                link.owner?.link(link, dropped: dropped)
            }
        }
    }

    /// Hands what waits here, with no connection, back to the owner to
    /// route again (another server came up).
    func handBack() {
        onLoop { link in
            guard link.channel == nil, !link.stopped, let owner = link.owner else { return }
            let held = link.window.removeAll().filter { $0.envelopes > 0 }
            link.updateWritable()
            if !held.isEmpty { owner.link(link, returned: held) }
        }
    }

    /// Puts a batch in the window and writes it if connected: header,
    /// batch and parts as three buffers, so the batch is never copied.
    private func transmit(_ batch: LinkBatch) {
        var batch = batch
        if leave.isLeaving && batch.envelopes > 0 {
            held.append(batch)
            heldBytes += batch.frameBytes
            return
        }
        let now = NIODeadline.now()
        batch.sentAt = now.uptimeNanoseconds
        if window.isEmpty { liveness.startedWaiting(now: now) }
        if channel != nil { liveness.sent(now: now) }
        guard let sequence = window.send(batch, bytes: batch.frameBytes), let channel else { return }
        write(batch, sequence: sequence, on: channel)
    }

    private func write(_ batch: LinkBatch, sequence: UInt64, on channel: any Channel) {
        channel.write(batch.header(sequence: sequence, allocator: channel.allocator), promise: nil)
        if batch.batch.readableBytes > 0 { channel.write(batch.batch, promise: nil) }
        if let trailer = batch.trailer(allocator: channel.allocator) { channel.write(trailer, promise: nil) }
    }

    /// Runs `action` once this link may take more ingest.
    public func whenWritable(_ action: @escaping @Sendable () -> Void) {
        eventLoop.execute {
            if self.window.bytes + self.heldBytes < self.maxBacklog {
                action()
            } else {
                self.writableWaiters.append(action)
            }
        }
    }

    fileprivate func updateWritable() {
        let now = window.bytes + heldBytes < maxBacklog
        let was = writable.withLockedValue { was in
            defer { was = now }
            return was
        }
        if was && !now { windowFull.increment() }
        let nothing = window.isEmpty || channel == nil || leave.isLeaving
        settled.withLockedValue { $0 = nothing }
        if now && !writableWaiters.isEmpty {
            let waiters = writableWaiters
            writableWaiters = []
            for waiter in waiters { waiter() }
        }
    }

    // MARK: egress

    /// Adds a live reader; returns the reader's id.
    public func subscribe(_ target: StreamTarget, subscriber: any LinkSubscriber) -> EventLoopFuture<UInt64> {
        eventLoop.submit {
            let (reader, created) = self.subscriptions.add(target, reader: subscriber)
            if let created, let channel = self.channel {
                channel.writeAndFlush(Self.subscriptionFrame(.subscribe, target, sequence: created), promise: nil)
            }
            return reader
        }
    }

    /// Removes a reader; the server subscription ends with its app's last reader.
    public func unsubscribe(id reader: UInt64) {
        onLoop { link in
            guard let ended = link.subscriptions.remove(reader: reader) else { return }
            link.channel?.writeAndFlush(Self.subscriptionFrame(.unsubscribe, ended.target, sequence: ended.id), promise: nil)
        }
    }

    /// The frames of the server's answer with the newest `limit` envelopes
    /// of `app`, oldest first.
    func recent(app: String, limit: Int) -> EventLoopFuture<[Frame]> {
        var request = Sluice_V1_StreamRequest()
        request.sourceID = app
        request.limit = UInt32(clamping: limit)
        return recent(request)
    }

    /// Sends a RECENT_REQUEST (a recent read, a time-range read or a meta
    /// request); the future has every frame of the answer.
    func recent(_ request: Sluice_V1_StreamRequest) -> EventLoopFuture<[Frame]> {
        eventLoop.flatSubmit {
            guard let channel = self.channel else {
                return self.eventLoop.makeFailedFuture(LinkUnavailable(server: "\(self.endpoint)"))
            }
            let promise = self.eventLoop.makePromise(of: [Frame].self)
            let id = self.requests.begin(promise)
            channel.writeAndFlush(Self.frame(.recentRequest, request, sequence: id), promise: nil)
            return promise.futureResult
        }
    }

    /// A SUBSCRIBE or UNSUBSCRIBE frame for an app or the firehose; an
    /// app's SUBSCRIBE with `since` asks for what the server stored from
    /// then on first (`EnvelopeStore.subscribe`).
    static func subscriptionFrame(_ type: FrameType, _ target: StreamTarget, sequence: UInt64, since: Int64 = 0) -> ByteBuffer {
        var request = Sluice_V1_StreamRequest()
        switch target {
        case .app(let app):
            request.sourceID = app
            request.startTime = since
        case .firehose(let subscription):
            request.firehose = true
            request.subscriptionID = subscription
        }
        return frame(type, request, sequence: sequence)
    }

    private static func frame(_ type: FrameType, _ request: Sluice_V1_StreamRequest, sequence: UInt64) -> ByteBuffer {
        let bytes: [UInt8] = (try? request.serializedBytes()) ?? []
        var frame = ByteBuffer()
        frame.writeFrameHeader(type: type, sequence: sequence, length: bytes.count)
        frame.writeBytes(bytes)
        return frame
    }

    // MARK: connection

    private func onLoop(_ body: @escaping @Sendable (ServerLink) -> Void) {
        if eventLoop.inEventLoop {
            body(self)
        } else {
            eventLoop.execute { body(self) }
        }
    }

    private func connect() {
        let current = target.withLockedValue { $0 }
        guard !stopped, channel == nil, !connecting, let server = current.server else { return }
        let generation = current.assignments
        connecting = true
        let maxPayload = self.maxPayload
        let tls = self.tls
        // TLS checks the server's name (an SRV target), not the address dialled.
        let host = server.identity.host
        ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            // One SYN per try: a server cut off silently is tried again
            // after the backoff, so a healed link is found within about a
            // second (and the backoff) rather than at TCP's second SYN.
            .channelOption(.connectTimeout, value: .seconds(1))
            .channelOption(.writeBufferWaterMark, value: .init(low: 1024 * 1024, high: 4 * 1024 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try tls?.add(to: channel, host: host)
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(maxPayload: maxPayload)),
                        LinkHandler(link: self),
                        ConnectionErrorHandler(role: "controller-link", logger: self.logger),
                    ])
                }
            }
            .connect(host: server.dial.host, port: server.dial.port)
            .flatMap { TLSLayer.established($0) }
            .whenComplete { result in
                self.connecting = false
                switch result {
                case .success(let channel):
                    if self.stopped || self.assignments != generation {
                        channel.close(promise: nil)
                        // The slot has another server (DNS) now: that one.
                        if !self.stopped { self.connect() }
                        return
                    }
                    self.connected(channel)
                case .failure(let error):
                    // The slot has another server (DNS), or none, now.
                    if self.assignments != generation {
                        if !self.stopped { self.connect() }
                        return
                    }
                    self.logger.debug(
                        "buffer server not reachable yet",
                        metadata: [LogKeys.server: "\(self.endpoint)", LogKeys.reason: "\(error)"])
                    // The first try failed: the server is known not to answer.
                    let wasUnknown = self.answering.withLockedValue { answering in
                        defer { answering = .down }
                        return answering == .notYetKnown
                    }
                    if wasUnknown { for reader in self.subscriptions.allReaders { reader.linkChanged(self) } }
                    self.scheduleReconnect()
                }
            }
    }

    /// A new connection counts as up only once the server has answered on
    /// it: a hung process's kernel still accepts connections. What waited
    /// goes out first, then an empty batch whose acknowledgement confirms
    /// the connection (the watchdog covers it if none comes).
    private func connected(_ channel: any Channel) {
        self.channel = channel
        confirmed = false
        liveness.connected(now: .now())
        watchdog?.cancel()
        let interval = liveness.settings.checkInterval
        watchdog = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) {
            [weak self] _ in self?.checkSilence()
        }
        leave.connected()
        var hello = channel.allocator.buffer(capacity: FrameHeader.size + localZone.utf8.count)
        hello.writeFrameHeader(type: .hello, sequence: 0, length: localZone.utf8.count)
        hello.writeString(localZone)
        channel.write(hello, promise: nil)
        subscriptions.connected()
        for (id, target) in subscriptions.all {
            // What the server stored while this link was down (a server
            // that restarted: all it has), from 2 s before the link went
            // down; readers skip what they had.
            let since = lastDown > 0 ? max(1, lastDown - Self.replayMargin) : 0
            channel.write(Self.subscriptionFrame(.subscribe, target, sequence: id, since: since), promise: nil)
        }
        for entry in window.connected() { write(entry.item, sequence: entry.sequence, on: channel) }
        transmit(.probe)
        channel.flush()
        updateWritable()
    }

    /// The server answered on a new connection: the link is up.
    private func confirm() {
        confirmed = true
        // Only a link the server answered resets the backoff: one refused
        // after its TLS handshake (TLS 1.3) keeps backing off.
        backoff = .milliseconds(100)
        wasUp = true
        answering.withLockedValue { $0 = .up }
        outageList.withLockedValue { outages in
            if let last = outages.indices.last, outages[last].up == nil { outages[last].up = WallClock.nowNanos() }
        }
        owner?.linkCameUp(self)
        upGauge?.record(1)
        if !countedUp {
            countedUp = true
            zoneServers.changed(by: 1)
        }
        logger.info("connected to buffer server", metadata: [LogKeys.server: "\(endpoint)"])
        for reader in subscriptions.allReaders { reader.linkChanged(self) }
    }

    /// A server that stops answering without closing its socket (hung, or
    /// cut off by a silent partition) is noticed within about a second of
    /// owing an acknowledgement; an idle link sends a probe (an empty
    /// batch) to owe one. See `LinkLiveness`.
    private func checkSilence() {
        // An idle link lets go of history as it ages, not only at the next ack.
        acked.trim(now: WallClock.nowNanos())
        guard let channel else { return }
        switch liveness.check(now: .now(), waiting: !window.isEmpty) {
        case .none:
            return
        case .probe:
            guard confirmed else { return }
            transmit(.probe)
            channel.flush()
        case .dead(let silent):
            logger.warning(
                "buffer server stopped acknowledging; taking it for dead",
                metadata: [
                    LogKeys.server: "\(endpoint)", LogKeys.count: "\(window.count)",
                    "sluice.silent_ms": "\(silent.nanoseconds / 1_000_000)",
                ])
            channel.close(promise: nil)
        }
    }

    fileprivate func disconnected(_ channel: any Channel) {
        guard self.channel === channel else { return }
        self.channel = nil
        watchdog?.cancel()
        watchdog = nil
        let wasConfirmed = confirmed
        let now = WallClock.nowNanos()
        let handed = acked.takeAll(now: now)
        lastDown = now
        answering.withLockedValue { $0 = .down }
        window.connectionLost()
        for promise in requests.removeAll() { promise.fail(LinkUnavailable(server: "\(endpoint)")) }
        guard !stopped else { return }
        let graceful = leave.leftGracefully && !handoverLost
        leave.connected()
        handoverLost = false
        handoverWaits = false
        let unacknowledged = window.removeAll().filter { $0.envelopes > 0 } + held
        held = []
        heldBytes = 0
        // Down, whether it left on purpose or not: a rolling restart waits
        // for this gauge to read 1 again before it stops the next member.
        upGauge?.record(0)
        if countedUp {
            countedUp = false
            zoneServers.changed(by: -1)
        }
        defer {
            updateWritable()
            for reader in subscriptions.allReaders { reader.linkChanged(self) }
            if let releasing { finishRelease(releasing) }
            scheduleReconnect()
        }
        if graceful {
            // The server left on purpose and its history went on (or, in
            // another zone, goes on through that zone's controllers):
            // nothing is lost, so no outage is recorded or told. What was
            // held back while it left goes where its apps go now, or
            // waits here for the first server of the zone to come up.
            logger.info(
                "buffer server left; its apps and history went to the others", metadata: [LogKeys.server: "\(endpoint)"])
            if let owner {
                _ = owner.link(self, wentDownWith: unacknowledged, history: [])
            } else {
                keep(unacknowledged)
            }
            return
        }
        // What the server acknowledged lately goes to the servers standing
        // in, for reads; what it held from before then is not read while
        // it is down, which the outage tells readers. What the server did
        // not acknowledge goes to the owner, which hands it to the servers
        // standing in (or back here if none is up), after that history.
        let handedOver: Bool
        if let owner {
            handedOver = owner.link(self, wentDownWith: unacknowledged, history: handed.batches)
        } else {
            // Another zone's server: that zone's controllers hand over
            // what it took, as this one does for its own zone.
            handedOver = true
            keep(unacknowledged)
        }
        if wasConfirmed {
            let outage = LinkOutage(down: now, handedOverSince: handedOver ? handed.since : nil)
            outageList.withLockedValue { outages in
                outages.append(outage)
                if outages.count > LinkOutage.kept { outages.removeFirst(outages.count - LinkOutage.kept) }
            }
        }
        logger.warning("lost buffer server; reconnecting", metadata: [LogKeys.server: "\(endpoint)"])
    }

    private func scheduleReconnect() {
        guard !stopped, isAssigned else { return }
        let delay = backoff
        backoff = min(backoff * 2, .seconds(5))
        eventLoop.scheduleTask(in: delay) { self.connect() }
    }

    /// Another server of the zone came up: a leaving server's history
    /// that waited for one goes now.
    func anotherServerCameUp() {
        onLoop { link in
            guard link.handoverWaits, link.leave.state == .handingOver else { return }
            link.perform([.requestHandover])
        }
    }

    /// Carries out a graceful leave's actions (`LinkLeave`).
    private func perform(_ actions: [LinkLeave.Action]) {
        for action in actions {
            switch action {
            case .stopRouting:
                // Its history is on its way to the servers that take its
                // apps; what was held follows it there, ahead of what
                // ingress routes past the server from now on.
                let released = held
                held = []
                heldBytes = 0
                if !released.isEmpty { owner?.link(self, returned: released) }
                owner?.linkLeaving(self)
                updateWritable()
            case .requestHandover:
                // Its history needs a server to go to: with none other of
                // the zone up, it waits for one (`anotherServerCameUp`),
                // while the leaving server's timeout allows.
                guard owner?.anotherServerIsUp(than: self) ?? true else {
                    handoverWaits = true
                    logger.warning(
                        "buffer server leaving with no other server of the zone up; its history waits for one",
                        metadata: [LogKeys.server: "\(endpoint)"])
                    return
                }
                handoverWaits = false
                guard let channel else { return }
                let promise = eventLoop.makePromise(of: [Frame].self)
                let id = requests.begin(promise)
                // DRAIN: this controller hands on the server's drain lines.
                channel.writeAndFlush(
                    ByteBuffer.emptyFrame(.handoverRequest, flags: .drain, sequence: id, allocator: channel.allocator),
                    promise: nil)
                promise.futureResult.whenSuccess { frames in
                    // History that could not go makes the server's going
                    // an outage, told to readers like any other.
                    self.handoverLost = !(self.owner?.link(self, handsOver: frames) ?? true)
                    self.perform(self.leave.handedOver())
                }
            case .close:
                channel?.close(promise: nil)
            }
        }
    }

    fileprivate func received(_ frame: Frame) throws {
        liveness.heard(now: .now())
        if !confirmed { confirm() }
        switch frame.header.type {
        case .stream:
            if let readers = subscriptions.readers(of: frame.header.sequence) {
                let (batch, parts) = try frame.batchAndParts()
                for reader in readers { reader.deliver(batch: batch, parts: parts) }
            } else if let heir = subscriptions.heir(of: frame.header.sequence) {
                // A firehose reader's share sent before its UNSUBSCRIBE arrived.
                let (batch, parts) = try frame.batchAndParts()
                heir.deliver(batch: batch, parts: parts)
            }
        case .leaving:
            logger.info("buffer server leaving; taking its history", metadata: [LogKeys.server: "\(endpoint)"])
            perform(leave.serverLeaving(ownZone: owner != nil, windowEmpty: window.isEmpty))
            updateWritable()
        case .ack:
            let released = window.acknowledge(upTo: frame.header.sequence)
            if window.isEmpty { perform(leave.windowEmptied()) }
            let carried = released.filter { $0.envelopes > 0 }
            let ackedAt = NIODeadline.now().uptimeNanoseconds
            for batch in carried where batch.sentAt > 0 && batch.sentAt <= ackedAt {
                ackTime.recordNanoseconds(Int64(ackedAt - batch.sentAt))
            }
            if !carried.isEmpty {
                owner?.link(self, acknowledged: carried)
                // What the server took as history (another's) is not its own
                // to hand on, nor counted twice.
                let now = WallClock.nowNanos()
                for batch in carried where !batch.history { acked.add(batch, at: now) }
            }
            updateWritable()
        case .recentResponse:
            if let (frames, promise) = requests.received(frame) { promise.succeed(frames) }
        default:
            throw WireError(.unexpectedFrame, "a controller does not take \(frame.header.type) frames from a server")
        }
    }
}

/// The pipeline end of a `ServerLink`'s connection.
private final class LinkHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    private let link: ServerLink

    init(link: ServerLink) {
        self.link = link
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            try link.received(unwrapInboundIn(data))
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        link.updateWritable()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        link.disconnected(context.channel)
        context.fireChannelInactive()
    }
}
