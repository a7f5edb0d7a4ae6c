import CoreMetrics
import DequeModule
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceTLS
import SluiceTransport
import SluiceWire


/// Ships envelopes to controllers (or to an agent) without ever making the
/// caller wait: appends go into a `ShipperQueue` bounded in bytes, a pump
/// hands its batches (up to 1,000 envelopes, or whatever came in 10 ms) to
/// an `IngressClient`, which keeps them until acknowledged and fails over.
/// When downstream is gone or slow, the client's window fills, the queue
/// fills behind it, and the oldest envelopes are dropped, counted, and told
/// to each app in band once delivery resumes.
///
/// With a `Spool` (the agent's `--spool`), the pump writes each frame to
/// disk instead, numbered, and a second task (the sender) reads them back
/// in order and hands them to the client: what waits for a controller
/// waits on disk, up to the spool's size, and a source's acknowledgement
/// can wait until its envelopes are written (`whenSpooled`).
public final class LogShipper: Sendable {
    public struct Configuration: Sendable {
        /// Where to send, in order of preference.
        public var endpoints: [Endpoint]
        /// Memory for envelopes not yet acknowledged: a quarter of it (4 MiB
        /// at most) for batches sent and kept for resending, the rest for
        /// envelopes waiting, from which the oldest are dropped.
        public var bufferBytes: Int
        public var batchCount: Int = 1000
        public var flushDelay: TimeAmount = .milliseconds(10)
        /// How the drop notices name the buffer that was full.
        public var dropReason: String = "the log agent's buffer was full"
        /// The prefix of metric names, e.g. `sluice_agent`.
        public var metricsPrefix: String = "sluice_agent"
        /// The largest envelope taken: what a controller's frame can carry.
        public var maxEnvelopeBytes: Int = FrameHeader.defaultMaxPayload - 64 * 1024
        /// Cloud Foundry's per-instance log rate limit, in bytes of log
        /// payload per second for each (app, instance); nil for none.
        public var instanceLogRateLimit: Int?
        /// Mutual TLS to the controllers.
        public var tls: LinkTLS?
        /// Apps with a series of their own in
        /// `PREFIX_app_envelopes_dropped_total`: the first this many to
        /// lose lines since the start; the rest are summed under
        /// `app="_other"`, so that no number of apps grows /metrics without
        /// bound.
        public var appSeriesLimit = 100

        public init(endpoints: [Endpoint], bufferBytes: Int) {
            self.endpoints = endpoints
            self.bufferBytes = bufferBytes
        }

        var windowBytes: Int { max(64 * 1024, min(4 * 1024 * 1024, bufferBytes / 4)) }
        var queueBytes: Int { max(64 * 1024, bufferBytes - windowBytes) }
    }

    private struct State {
        var queue: ShipperQueue
        var waiter: CheckedContinuation<Void, Never>?
        var wakeRequested = false
        var timerArmed = false
        var closing = false
        var aborted = false
        var pump: Task<Void, Never>?
        /// Envelopes of the frame the pump is handing to the client.
        var inFlight = 0
        /// Whether the current run of drops was logged.
        var warnedDropping = false
        var limiter: LogRateLimiter?
        // With a spool:
        var sender: Task<Void, Never>?
        var senderWaiter: CheckedContinuation<Void, Never>?
        var senderWakeRequested = false
        var pumpDone = false
        var syncTimerArmed = false
        /// Envelopes appended (`ShipperQueue.appendedTotal`) that are in the
        /// spool or were dropped: every one up to this mark.
        var settled = 0
        var settleWaiters: Deque<(mark: Int, promise: EventLoopPromise<Void>)> = []

        /// Everything that left the queue is settled (nothing is being
        /// written): returns the waiters to succeed.
        mutating func settle() -> [EventLoopPromise<Void>] {
            guard inFlight == 0 else { return [] }
            settled = queue.appendedTotal - queue.count
            var ready: [EventLoopPromise<Void>] = []
            while let first = settleWaiters.first, first.mark <= settled {
                ready.append(settleWaiters.removeFirst().promise)
            }
            return ready
        }
    }

    /// Where the client's acknowledgements wake the pump (set once the
    /// shipper exists).
    private final class Wake: Sendable {
        let target = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)
        func callAsFunction() { target.withLockedValue { $0 }?() }
    }

    /// Where a line comes from, for the instance log rate limit: its app,
    /// its instance and its log payload's bytes (nil: not a log, never
    /// limited).
    public struct LineOrigin: Sendable {
        public var app: String
        public var instance: String
        public var logBytes: Int?

        public init(app: String, instance: String, logBytes: Int?) {
            self.app = app
            self.instance = instance
            self.logBytes = logBytes
        }
    }

    public let configuration: Configuration
    public let client: IngressClient
    public let spool: Spool?
    private let state: NIOLockedValueBox<State>
    private let loop: any EventLoop
    private let logger: Logger
    private let dropped: Counter
    private let tooLarge: Counter
    private let lost: Counter
    private let shipped: Counter
    private let rateLimited: Counter
    private let rateExceeded: Counter
    private let metrics: any MetricsFactory
    /// Per-app drop counters, made on an app's first drop.
    private let appDrops = NIOLockedValueBox<(named: [String: Counter], other: Counter?)>(([:], nil))
    /// The `app` label of the apps past `appSeriesLimit`.
    public static let otherApps = "_other"

    public init(
        configuration: Configuration, logger: Logger = .quiet,
        metrics: any MetricsFactory = MetricsSystem.factory,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, spool: Spool? = nil
    ) {
        self.configuration = configuration
        self.logger = logger
        self.loop = group.next()
        self.spool = spool
        let wake = Wake()
        var onAcknowledged: (@Sendable (UInt64) -> Void)? = nil
        if let spool {
            onAcknowledged = { sequence in
                spool.acknowledge(upTo: sequence)
                wake()
            }
        }
        self.client = IngressClient.start(
            to: configuration.endpoints, maxWindow: configuration.windowBytes, logger: logger,
            tls: configuration.tls?.dialer(role: "ingress-client", logger: logger), group: group,
            senderID: spool?.senderID, firstSequence: (spool?.acknowledgedAtOpen ?? 0) + 1,
            onAcknowledged: onAcknowledged,
            windowFull: Counter(label: MetricNames.emitterAckWindowFull(configuration.metricsPrefix), factory: metrics))
        self.state = NIOLockedValueBox(
            State(
                queue: ShipperQueue(
                    capacity: configuration.queueBytes, batchCount: configuration.batchCount,
                    dropReason: configuration.dropReason, maxEntryBytes: configuration.maxEnvelopeBytes),
                limiter: configuration.instanceLogRateLimit.map { LogRateLimiter(bytesPerSecond: $0) }))
        self.dropped = Counter(
            label: MetricNames.emitterDropped(configuration.metricsPrefix), dimensions: [("reason", "buffer_full")],
            factory: metrics)
        self.tooLarge = Counter(
            label: MetricNames.emitterDropped(configuration.metricsPrefix), dimensions: [("reason", "too_large")],
            factory: metrics)
        self.lost = Counter(
            label: MetricNames.emitterDropped(configuration.metricsPrefix), dimensions: [("reason", "undelivered_at_stop")],
            factory: metrics)
        self.shipped = Counter(label: MetricNames.emitterBatchesSent(configuration.metricsPrefix), factory: metrics)
        self.rateLimited = Counter(
            label: MetricNames.emitterDropped(configuration.metricsPrefix), dimensions: [("reason", "log_rate_limit")],
            factory: metrics)
        self.rateExceeded = Counter(
            label: MetricNames.emitterRateLimitExceeded(configuration.metricsPrefix), factory: metrics)
        self.metrics = metrics
        wake.target.withLockedValue { $0 = { [weak self] in self?.wake() } }
        let pump = Task { [self] in
            await self.pump()
            self.state.withLockedValue { $0.pumpDone = true }
            self.wakeSender()
        }
        let sender = spool == nil ? nil : Task { [self] in await self.sendSpooled() }
        state.withLockedValue {
            $0.pump = pump
            $0.sender = sender
        }
    }

    // MARK: appending (any thread, never waits)

    /// Appends one Log envelope built from its fields.
    public func appendLog(
        _ fields: LogEnvelopeFields, timestamp: Int64, payload: UnsafeRawBufferPointer, extraTags: [LogTag] = []
    ) {
        appendLines { append in
            append(LineOrigin(app: fields.sourceID, instance: fields.instanceID, logBytes: payload.count)) {
                $0.writeLogEnvelopeEntry(fields, timestamp: timestamp, payload: payload, extraTags: extraTags)
            }
        }
    }

    /// Whether lines are held to an instance log rate limit (callers that
    /// must look into envelopes to say where they come from need to only
    /// then).
    public var limitsInstances: Bool { configuration.instanceLogRateLimit != nil }

    /// Appends several envelopes under one lock, each with where it comes
    /// from, so that the instance log rate limit applies: a line over it is
    /// dropped and counted, and the instance's first drop of a second is
    /// told in the app's logs, as Diego tells it.
    public func appendLines(_ body: (_ append: (LineOrigin, (inout ByteBuffer) -> Void) -> Void) -> Void) {
        var limited = 0
        var exceeded = 0
        var wake = false
        let (newDrops, refused): ([String: Int]?, Int) = state.withLockedValue { state in
            let before = (state.queue.droppedTotal, state.queue.refusedTotal)
            let now = WallClock.nowNanos()
            body { origin, write in
                if let bytes = origin.logBytes, state.limiter != nil {
                    switch state.limiter!.admit(app: origin.app, instance: origin.instance, bytes: bytes, now: now) {
                    case .pass:
                        break
                    case .drop:
                        limited += 1
                        return
                    case .dropAndTell:
                        limited += 1
                        exceeded += 1
                        let text = state.limiter!.noticeText
                        let fields = LogEnvelopeFields(
                            sourceID: origin.app, instanceID: origin.instance, sourceType: Notice.sourceType)
                        let appended = state.queue.append(app: origin.app, now: now) { buffer in
                            var text = text
                            text.withUTF8 {
                                buffer.writeLogEnvelopeEntry(
                                    fields, timestamp: now, payload: UnsafeRawBufferPointer($0),
                                    extraTags: [LogTag("sluice_notice", "log_rate_limit")])
                            }
                        }
                        if appended { wake = true }
                        return
                    }
                }
                if state.queue.append(app: origin.app, now: now, write) { wake = true }
            }
            return (
                state.queue.droppedTotal == before.0 ? nil : state.queue.takeNewDrops(),
                state.queue.refusedTotal - before.1
            )
        }
        // Dropped envelopes will not be written: a source waiting on them
        // is answered.
        if newDrops != nil && spool != nil {
            for waiter in state.withLockedValue({ $0.settle() }) { waiter.succeed() }
        }
        if limited > 0 { rateLimited.increment(by: limited) }
        if exceeded > 0 { rateExceeded.increment(by: exceeded) }
        afterAppend(newDrops: newDrops, refused: refused, wake: wake)
    }

    private func afterAppend(newDrops: [String: Int]?, refused: Int, wake: Bool) {
        if refused > 0 {
            tooLarge.increment(by: refused)
            logger.warning(
                "refusing an envelope larger than a frame can carry",
                metadata: [LogKeys.count: "\(refused)", LogKeys.limit: "\(configuration.maxEnvelopeBytes)"])
        }
        if let newDrops {
            for (app, count) in newDrops {
                dropped.increment(by: count)
                appDropCounter(app).increment(by: count)
            }
            let first = state.withLockedValue { state in
                defer { state.warnedDropping = true }
                return !state.warnedDropping
            }
            if first {
                logger.warning(
                    "buffer full: dropping the oldest envelopes until delivery catches up",
                    metadata: ["sluice.buffer_bytes": "\(configuration.bufferBytes)"])
            }
        }
        if wake { self.wake() }
    }

    private func appDropCounter(_ app: String) -> Counter {
        appDrops.withLockedValue { counters in
            if let counter = counters.named[app] { return counter }
            let label = MetricNames.emitterAppDropped(configuration.metricsPrefix)
            guard counters.named.count < configuration.appSeriesLimit else {
                if let other = counters.other { return other }
                let other = Counter(label: label, dimensions: [("app", Self.otherApps)], factory: metrics)
                counters.other = other
                return other
            }
            let counter = Counter(label: label, dimensions: [("app", app)], factory: metrics)
            counters.named[app] = counter
            return counter
        }
    }

    /// Succeeds once every envelope appended so far is in the spool (or
    /// was dropped): a source's acknowledgement waits for it. At once
    /// without a spool. Fails if the shipper stops first.
    public func whenSpooled(on loop: any EventLoop) -> EventLoopFuture<Void> {
        guard spool != nil else { return loop.makeSucceededVoidFuture() }
        return state.withLockedValue { state in
            let mark = state.queue.appendedTotal
            if state.settled >= mark { return loop.makeSucceededVoidFuture() }
            guard !state.aborted, !state.pumpDone else { return loop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
            let promise = loop.makePromise(of: Void.self)
            state.settleWaiters.append((mark, promise))
            return promise.futureResult
        }
    }

    /// Envelopes dropped since the start.
    public var droppedTotal: Int { state.withLockedValue { $0.queue.droppedTotal } }

    // MARK: the pump

    private enum Next {
        case frame(ByteBuffer, envelopes: Int)
        case wait(armTimer: TimeAmount?)
        case done
    }

    private func pump() async {
        while true {
            // Something written and not synced: come back for it.
            let unsynced = spool?.tidy() ?? false
            let next: Next = state.withLockedValue { state in
                if state.aborted { return .done }
                let now = WallClock.nowNanos()
                if !state.queue.hasFullBatch, let since = state.queue.openSince {
                    let due = since + configuration.flushDelay.nanoseconds
                    if now >= due || state.closing {
                        state.queue.seal()
                    } else if !state.timerArmed {
                        state.timerArmed = true
                        return .wait(armTimer: .nanoseconds(due - now))
                    } else {
                        return .wait(armTimer: nil)
                    }
                }
                // A full spool takes nothing more until acknowledgements
                // free a segment (they wake the pump): the queue holds
                // envelopes meanwhile, and drops the oldest when full.
                // A stop does not wait for room: what is left is lost, counted.
                // The timer tries a failing disk again when it is due.
                if let spool, !state.queue.isEmpty, !spool.hasRoom() {
                    return state.closing ? .done : .wait(armTimer: .milliseconds(100))
                }
                if let (frame, envelopes) = state.queue.takeCounted(now: now) {
                    state.inFlight = envelopes
                    if !state.queue.hasPendingNotices { state.warnedDropping = false }
                    return .frame(frame, envelopes: envelopes)
                }
                if state.closing { return .done }
                if unsynced && !state.syncTimerArmed {
                    state.syncTimerArmed = true
                    return .wait(armTimer: .nanoseconds(spool!.settings.syncInterval))
                }
                return .wait(armTimer: nil)
            }
            switch next {
            case .frame(var frame, let envelopes):
                if let spool {
                    spool.write(&frame, envelopes: envelopes)
                    let settled = state.withLockedValue { state in
                        state.inFlight = 0
                        return state.settle()
                    }
                    for waiter in settled { waiter.succeed() }
                    wakeSender()
                    continue
                }
                do {
                    try await client.send(frame: frame, envelopes: envelopes)
                    state.withLockedValue { $0.inFlight = 0 }
                    shipped.increment()
                } catch {
                    state.withLockedValue { $0.aborted = true }
                    return
                }
            case .wait(let delay):
                if let delay {
                    loop.scheduleTask(in: delay) {
                        self.state.withLockedValue { state in
                            state.timerArmed = false
                            state.syncTimerArmed = false
                        }
                        self.wake()
                    }
                }
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLockedValue { state -> Bool in
                        if state.wakeRequested || state.closing || state.aborted {
                            state.wakeRequested = false
                            return true
                        }
                        state.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            case .done:
                return
            }
        }
    }

    /// With a spool: hands what the pump wrote to the client, in order,
    /// waiting for room in its window.
    private func sendSpooled() async {
        guard let spool else { return }
        while true {
            if state.withLockedValue({ $0.aborted }) { return }
            if let next = spool.next() {
                do {
                    try await client.send(frame: next.frame, envelopes: next.envelopes, sequence: next.sequence)
                    shipped.increment()
                } catch {
                    return
                }
                continue
            }
            if state.withLockedValue({ $0.pumpDone }) && !spool.hasUnsent { return }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLockedValue { state -> Bool in
                    if state.senderWakeRequested || state.pumpDone || state.aborted {
                        state.senderWakeRequested = false
                        return true
                    }
                    state.senderWaiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    private func wakeSender() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.senderWaiter else {
                state.senderWakeRequested = true
                return nil
            }
            state.senderWaiter = nil
            return waiter
        }
        waiter?.resume()
    }

    private func wake() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.wakeRequested = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    // MARK: finishing

    /// Sends what is queued and waits (up to `timeout`) until it is all
    /// acknowledged, then closes. Returns the envelopes that were not
    /// delivered (still queued, being sent, or sent and not acknowledged:
    /// counted as dropped, reason `undelivered_at_stop`) and whether
    /// everything sent was acknowledged. With a spool, what was written and
    /// not acknowledged is not lost: it stays for the next start
    /// (`keptInSpool`).
    @discardableResult
    public func finish(timeout: TimeAmount) async -> (unsent: Int, acknowledged: Bool) {
        let (pump, sender) = state.withLockedValue { state in
            state.closing = true
            return (state.pump, state.sender)
        }
        wake()
        let deadline = NIODeadline.now() + timeout
        let stop = loop.scheduleTask(deadline: deadline) { self.abort() }
        await pump?.value
        await sender?.value
        var acknowledged = false
        if !state.withLockedValue({ $0.aborted }) {
            let left = deadline - .now()
            acknowledged = (try? await client.close(timeout: max(left, .milliseconds(1)))) != nil
        }
        stop.cancel()
        let unacknowledged = acknowledged || spool != nil ? 0 : await client.unacknowledgedEnvelopes
        client.abort()
        let (notWritten, waiters) = state.withLockedValue { state in
            let waiters = state.settleWaiters.map(\.promise)
            state.settleWaiters.removeAll()
            return (state.queue.count + state.inFlight, waiters)
        }
        for waiter in waiters { waiter.fail(ChannelError.ioOnClosedChannel) }
        let unsent = notWritten + unacknowledged
        if unsent > 0 { lost.increment(by: unsent) }
        if let spool {
            // Frames taken while the disk failed were only in memory.
            let (kept, memoryOnly) = spool.heldEnvelopes
            spool.close()
            if memoryOnly > 0 { lost.increment(by: memoryOnly) }
            if kept > 0 {
                logger.notice(
                    "envelopes not acknowledged stay in the spool for the next start",
                    metadata: [LogKeys.count: "\(kept)", LogKeys.path: "\(spool.settings.directory)"])
            }
            return (unsent + memoryOnly, memoryOnly == 0)
        }
        return (unsent, acknowledged)
    }

    /// Stops at once: the pump ends, the client closes.
    public func abort() {
        state.withLockedValue { $0.aborted = true }
        client.abort()
        wake()
        wakeSender()
    }
}
