import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceBindings
import SluiceProto
import SluiceTransport
import SluiceWire

/// One drain: a bounded queue of an app's envelopes and the task that sends
/// them, in order, to the drain's endpoint. While the endpoint is down it
/// tries again after a jittered backoff from 1 s to 60 s and keeps what it
/// can; when the queue overflows the oldest go, and the app's readers are
/// told (`report`) at most once per `noticeInterval`.
///
/// `enqueue` is all the ingest path ever does: it takes the lock, appends,
/// and never waits on the endpoint.
public final class DrainRunner: EnvelopeTap, @unchecked Sendable {
    public struct Settings: Sendable {
        public var queueCapacity: Int
        /// Bytes one drain holds at most (envelopes as stored).
        public var queueBytes: Int
        /// How long a graceful stop gives drains to deliver what they hold
        /// (`--shutdown-timeout`).
        public var shutdownTimeout: Duration = .seconds(10)
        public var minBackoff: Duration
        public var maxBackoff: Duration
        /// Least time between two drop notices of one drain.
        public var noticeInterval: Duration
        /// How long after the first drop its notice waits, so that a burst
        /// of drops is told as one count.
        public var noticeDelay: Duration

        public init(
            queueCapacity: Int = 10_000, queueBytes: Int = 64 * 1024 * 1024, minBackoff: Duration = .seconds(1), maxBackoff: Duration = .seconds(60),
            noticeInterval: Duration = .seconds(10), noticeDelay: Duration = .seconds(1)
        ) {
            self.queueCapacity = queueCapacity
            self.queueBytes = queueBytes
            self.minBackoff = minBackoff
            self.maxBackoff = maxBackoff
            self.noticeInterval = noticeInterval
            self.noticeDelay = noticeDelay
        }
    }

    /// Tells an app's readers something, in band: (app, text).
    public typealias Report = @Sendable (_ app: String, _ text: String) -> Void

    public let id: String
    public let app: String
    public let name: String
    public let url: DrainURL
    private let settings: Settings
    private let transport: any DrainTransport
    /// Used by the run task only.
    private var writer: DrainLineWriter
    private var scratch: [UInt8] = []
    private let report: Report
    private let logger: Logger
    private let loop: any EventLoop

    private let lock = NIOLock()
    private var queue: DrainQueue
    private var waiter: CheckedContinuation<Void, Never>?
    private var timer: Scheduled<Void>?
    private var stopped = false
    /// The last send failed and none has gone through since.
    private var endpointDown = false
    private var lastNoticeNanos: Int64 = 0
    /// Lines delivered and lost since it started (its `status`).
    private var sentTotal = 0
    private var droppedTotal = 0

    private let sent: Counter
    private let dropped: Counter
    private let handedOff: Counter
    private let takenOver: Counter
    private let connectedGauge: Gauge
    private let queuedGauge: Gauge

    public init(
        id: String, app: String, name: String, url: DrainURL, settings: Settings = Settings(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger,
        metrics: any MetricsFactory = MetricsSystem.factory, report: @escaping Report
    ) throws {
        self.id = id
        self.app = app
        self.name = name
        self.url = url
        self.settings = settings
        self.report = report
        self.loop = group.next()
        self.queue = DrainQueue(capacity: settings.queueCapacity, capacityBytes: settings.queueBytes)
        self.writer = DrainLineWriter(hostname: url.hostname)
        var logger = logger
        logger[metadataKey: LogKeys.drain] = "\(id)"
        logger[metadataKey: LogKeys.appID] = "\(app)"
        self.logger = logger
        switch url.scheme {
        case .syslog, .syslogTLS: transport = try SyslogStreamTransport(url: url, group: group)
        case .syslogUDP: transport = SyslogDatagramTransport(url: url, group: group)
        case .https: transport = try HTTPSDrainTransport(url: url, group: group)
        }
        let dimensions = [("drain", id)]
        sent = Counter(label: MetricNames.drainSent, dimensions: dimensions, factory: metrics)
        dropped = Counter(label: MetricNames.drainDropped, dimensions: dimensions, factory: metrics)
        handedOff = Counter(label: MetricNames.drainHandedOff, dimensions: dimensions, factory: metrics)
        takenOver = Counter(label: MetricNames.drainTakenOver, dimensions: dimensions, factory: metrics)
        connectedGauge = Gauge(label: MetricNames.drainUp, dimensions: dimensions, factory: metrics)
        queuedGauge = Gauge(label: MetricNames.drainQueued, dimensions: dimensions, factory: metrics)
        // Up until a send fails: an idle drain that has sent nothing yet is
        // not down (an alert on a drain down for 5 minutes must not fire).
        connectedGauge.record(1)
        queuedGauge.record(0)
        if url.skipVerify {
            logger.warning(
                "drain certificate is not verified (skip-verify=true): anyone on the path can read and alter its logs",
                metadata: [LogKeys.url: "\(url.redacted)"])
        }
    }

    private func countDropped(_ count: Int) {
        dropped.increment(by: count)
        lock.withLock { droppedTotal += count }
    }

    /// How it stands: up unless the last send failed, what it delivered
    /// and lost, what waits (a meta answer carries it to the controllers).
    public var status: Sluice_V1_DrainStatus {
        lock.withLock {
            var status = Sluice_V1_DrainStatus()
            status.id = id
            status.app = app
            status.up = !endpointDown
            status.sent = UInt64(sentTotal)
            status.dropped = UInt64(droppedTotal)
            status.queued = UInt64(queue.count)
            return status
        }
    }

    /// Queues envelopes of this drain's app (from the ingest path).
    public func enqueue(_ envelopes: [ByteBuffer]) {
        let now = WallClock.nowNanos()
        let (lost, wake): (Int, CheckedContinuation<Void, Never>?) = lock.withLock {
            guard !stopped else { return (0, nil) }
            let lost = queue.append(contentsOf: envelopes, now: now)
            defer { waiter = nil }
            return (lost, waiter)
        }
        if lost > 0 { countDropped(lost) }
        wake?.resume()
    }

    public var handoverKey: UInt64 { Self.handoverKey(id) }

    /// A binding's id (16 hex digits) as a number; another id's FNV-1a hash.
    public static func handoverKey(_ id: String) -> UInt64 {
        if id.utf8.count == 16, let value = UInt64(id, radix: 16) { return value }
        return id.utf8.reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
    }

    /// What the queue holds, when the endpoint is down (the last send
    /// failed) or not connected (`EnvelopeTap.handOff`): the server is
    /// leaving, and the server that takes the app next delivers them. A
    /// batch being sent goes too when no connection is open (it waits on a
    /// connect; should that connect succeed after all, the batch reaches
    /// the endpoint twice); on an open connection it finishes here.
    public func handOff() -> [ByteBuffer] {
        let open = transport.isOpen
        let (taken, queued): ([ByteBuffer], Int) = lock.withLock {
            guard !stopped, !queue.isEmpty, endpointDown || !open else { return ([], 0) }
            return (queue.takeWaiting(includingInFlight: !open), queue.count)
        }
        guard !taken.isEmpty else { return [] }
        handedOff.increment(by: taken.count)
        queuedGauge.record(queued)
        logger.info(
            "drain unreachable as this server leaves: its lines go to the server that takes the app next",
            metadata: [LogKeys.count: "\(taken.count)", LogKeys.url: "\(url.redacted)"])
        return taken
    }

    public func takeOver(_ envelopes: [ByteBuffer]) {
        // Counted before they show in the queue: whoever sees them queued
        // sees them counted (a stop in between is the server's own end).
        guard lock.withLock({ !stopped }) else { return }
        takenOver.increment(by: envelopes.count)
        enqueue(envelopes)
    }

    /// Whether the last send failed with none through since.
    public var endpointIsDown: Bool { lock.withLock { endpointDown } }

    /// Whether a connection to the endpoint is open now.
    public var connectionIsOpen: Bool { transport.isOpen }
    public var queuedCount: Int { lock.withLock { queue.count } }

    /// Sends until `stop`.
    public func run() async {
        var backoff = settings.minBackoff
        var batchID = UInt64.random(in: 1...UInt64.max)
        var failing = false
        while !lock.withLock({ stopped }) {
            reportDropsIfDue()
            let (batch, wait, appended) = takeBatch()
            guard let batch else {
                await waitForWork(timeout: wait, appendedBefore: appended)
                continue
            }
            let lines = DrainBatch.format(batch, writer: &writer, scratch: &scratch)
            let outcome: DrainQueue.Outcome
            do {
                if lines.count > 0 { try await transport.send(lines, batchID: batchID) }
                outcome = .delivered
                if failing {
                    logger.info("drain reachable again", metadata: [LogKeys.url: "\(url.redacted)"])
                    failing = false
                }
                backoff = settings.minBackoff
            } catch let error as DrainSendError where error.permanent {
                logger.warning("drain refused a batch; it is dropped", metadata: [LogKeys.reason: "\(error.reason)"])
                outcome = .rejected
            } catch {
                if !failing {
                    logger.warning(
                        "drain unreachable; holding its lines and trying again",
                        metadata: [LogKeys.reason: "\(error)", LogKeys.url: "\(url.redacted)"])
                    failing = true
                }
                outcome = .retry
            }
            let now = WallClock.nowNanos()
            let (lost, queued, isStopped) = lock.withLock {
                endpointDown = outcome == .retry
                return (queue.finishSend(outcome, now: now), queue.count, stopped)
            }
            if lost > 0 { countDropped(lost) }
            // A stopped drain's last send (cut short by `stop`) says
            // nothing of the drain: its successor may share these series.
            if !isStopped {
                queuedGauge.record(queued)
                connectedGauge.record(outcome == .retry ? 0 : 1)
            }
            switch outcome {
            case .delivered:
                sent.increment(by: lines.count)
                lock.withLock { sentTotal += lines.count }
                batchID &+= 1
            case .rejected:
                batchID &+= 1
            case .retry:
                // The same batch goes again under the same id, unless
                // overflow took some of it meanwhile.
                if lost > 0 { batchID &+= 1 }
                await pause(min(Self.jittered(backoff), settings.maxBackoff))
                backoff = min(backoff * 2, settings.maxBackoff)
            }
        }
        await transport.close()
    }

    /// Stops the task; what is still queued is discarded, counted as
    /// dropped and logged (the app's stream may be going away with it).
    public func stop() {
        let (wake, discarded, unreported): (CheckedContinuation<Void, Never>?, Int, Int) = lock.withLock {
            stopped = true
            let discarded = queue.removeAll()
            defer { waiter = nil }
            return (waiter, discarded, queue.takeUnreported().count)
        }
        if discarded > 0 { countDropped(discarded) }
        if discarded + unreported > 0 {
            logger.warning(
                "drain stopped with lines it could not deliver",
                metadata: ["discarded": "\(discarded)", "dropped_unreported": "\(unreported)", LogKeys.url: "\(url.redacted)"])
        }
        wake?.resume()
        // A send waiting on an endpoint that stopped reading ends now.
        transport.abort()
    }

    /// A removed drain is neither up nor down: its gauges go from
    /// /metrics (its counters stay, with the drops counted at its stop).
    public func removeGauges() {
        connectedGauge.destroy()
        queuedGauge.destroy()
    }

    /// The next batch, or nil and how long to wait: a transport that
    /// batches over time (https) lets a small batch fill for `batchDelay`.
    private func takeBatch() -> (batch: [ByteBuffer]?, wait: Duration, appended: Int) {
        let delay = transport.batchDelay
        return lock.withLock {
            // Idle: only a drop notice falls due without an enqueue.
            guard !queue.isEmpty else {
                return (nil, queue.unreported > 0 ? .seconds(1) : .seconds(60), queue.appendedTotal)
            }
            if delay > .zero && queue.count < transport.maxBatchCount && queue.queuedBytes < transport.maxBatchBytes {
                let age = Duration.nanoseconds(WallClock.nowNanos() - queue.waitingSinceNanos)
                if age < delay { return (nil, delay - age, queue.appendedTotal) }
            }
            let batch = queue.beginSend(maxCount: transport.maxBatchCount, maxBytes: transport.maxBatchBytes)
            return (batch, .zero, queue.appendedTotal)
        }
    }

    /// Waits for `enqueue` (unless some came since `appendedBefore`), `stop`,
    /// or the timeout.
    private func waitForWork(timeout: Duration, appendedBefore: Int) async {
        let nanos = Self.nanos(timeout)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = lock.withLock { () -> Bool in
                if stopped || queue.appendedTotal != appendedBefore { return true }
                waiter = continuation
                return false
            }
            if ready {
                continuation.resume()
                return
            }
            let timer = loop.scheduleTask(in: .nanoseconds(max(nanos, 1_000_000))) { [self] in
                let wake: CheckedContinuation<Void, Never>? = lock.withLock {
                    defer { waiter = nil }
                    return waiter
                }
                wake?.resume()
            }
            lock.withLock { self.timer = timer }
        }
        lock.withLock {
            timer?.cancel()
            timer = nil
        }
    }

    /// Sleeps through a backoff in steps of at most a second, telling of
    /// drops on the way; `stop` ends it at the next step.
    private func pause(_ duration: Duration) async {
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline && !lock.withLock({ stopped }) {
            try? await Task.sleep(for: min(.seconds(1), deadline - ContinuousClock.now))
            reportDropsIfDue()
        }
    }

    private func reportDropsIfDue() {
        let now = WallClock.nowNanos()
        let due: (count: Int, sinceNanos: Int64)? = lock.withLock {
            guard queue.unreported > 0,
                now - queue.firstDropNanos >= Self.nanos(settings.noticeDelay),
                now - lastNoticeNanos >= Self.nanos(settings.noticeInterval)
            else { return nil }
            lastNoticeNanos = now
            return queue.takeUnreported()
        }
        guard let due else { return }
        let text = Notice.dropText(
            count: due.count, sinceNanos: due.sinceNanos,
            reason: "drain \(name) to \(url.redacted) did not take them; its queue holds \(settings.queueCapacity)")
        logger.warning("drain dropped lines", metadata: [LogKeys.count: "\(due.count)", LogKeys.url: "\(url.redacted)"])
        report(app, text)
    }

    static func nanos(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }

    /// `duration` ± 20 %, so that drains of one endpoint do not retry in step.
    static func jittered(_ duration: Duration) -> Duration {
        duration * Double.random(in: 0.8...1.2)
    }
}
