import CoreMetrics
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
    private let appDrops = NIOLockedValueBox<[String: Counter]>([:])

    public init(
        configuration: Configuration, logger: Logger = .quiet,
        metrics: any MetricsFactory = MetricsSystem.factory,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.logger = logger
        self.loop = group.next()
        self.client = IngressClient.start(
            to: configuration.endpoints, maxWindow: configuration.windowBytes, logger: logger,
            tls: configuration.tls?.dialer(role: "ingress-client", logger: logger), group: group)
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
        let pump = Task { [self] in await self.pump() }
        state.withLockedValue { $0.pump = pump }
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
            if let counter = counters[app] { return counter }
            let counter = Counter(
                label: MetricNames.emitterAppDropped(configuration.metricsPrefix), dimensions: [("app", app)],
                factory: metrics)
            counters[app] = counter
            return counter
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
                if let (frame, envelopes) = state.queue.takeCounted(now: now) {
                    state.inFlight = envelopes
                    if !state.queue.hasPendingNotices { state.warnedDropping = false }
                    return .frame(frame, envelopes: envelopes)
                }
                return state.closing ? .done : .wait(armTimer: nil)
            }
            switch next {
            case .frame(let frame, let envelopes):
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
                        self.state.withLockedValue { $0.timerArmed = false }
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
    /// everything sent was acknowledged.
    @discardableResult
    public func finish(timeout: TimeAmount) async -> (unsent: Int, acknowledged: Bool) {
        let pump = state.withLockedValue { state -> Task<Void, Never>? in
            state.closing = true
            return state.pump
        }
        wake()
        let deadline = NIODeadline.now() + timeout
        let stop = loop.scheduleTask(deadline: deadline) { self.abort() }
        await pump?.value
        var acknowledged = false
        if !state.withLockedValue({ $0.aborted }) {
            let left = deadline - .now()
            acknowledged = (try? await client.close(timeout: max(left, .milliseconds(1)))) != nil
        }
        stop.cancel()
        let unacknowledged = acknowledged ? 0 : await client.unacknowledgedEnvelopes
        client.abort()
        let unsent = state.withLockedValue { $0.queue.count + $0.inFlight } + unacknowledged
        if unsent > 0 { lost.increment(by: unsent) }
        return (unsent, acknowledged)
    }

    /// Stops at once: the pump ends, the client closes.
    public func abort() {
        state.withLockedValue { $0.aborted = true }
        client.abort()
        wake()
    }
}
