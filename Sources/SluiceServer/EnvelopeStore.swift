import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore
import SluiceTransport
import SluiceWire

/// The buffer server's state: each app's recent envelopes and the live
/// subscriptions to them. Every method takes the lock once per call (once
/// per ingested frame, not per envelope).
public final class EnvelopeStore: TapPoint, @unchecked Sendable {
    public struct Limits: Sendable {
        /// Envelopes kept per app.
        public var recentPerApp: Int
        /// Bytes kept over all apps; past it the largest apps lose their
        /// oldest envelopes first.
        public var memoryLimit: Int
        /// Largest payload of one answer frame.
        public var maxFramePayload: Int

        public init(recentPerApp: Int = 1000, memoryLimit: Int = 256 * 1024 * 1024, maxFramePayload: Int = 1024 * 1024) {
            self.recentPerApp = recentPerApp
            self.memoryLimit = memoryLimit
            self.maxFramePayload = maxFramePayload
        }
    }

    /// A live subscription: a controller's connection and its subscription id.
    final class Subscriber {
        let id: UInt64
        let channel: any Channel
        let app: String
        var pending = BatchFrameBuilder(capacity: 16 * 1024)
        var dropped = 0
        var droppedSince: Int64 = 0

        init(id: UInt64, channel: any Channel, app: String) {
            self.id = id
            self.channel = channel
            self.app = app
        }
    }

    /// A frame to write to a subscriber's connection once the lock is released.
    public struct Delivery {
        public var channel: any Channel
        public var frame: ByteBuffer
    }

    public let limits: Limits
    private let lock = NIOLock()
    private var apps: [ByteBuffer: AppLog] = [:]
    private var subscribers: [ByteBuffer: [Subscriber]] = [:]
    /// Each app's taps (its drains); they take a copy of every Log envelope stored.
    private var taps: [ByteBuffer: [any EnvelopeTap]] = [:]
    private var totalBytes = 0
    /// The sender frames each app has taken in, so that a resent one is
    /// taken once. Per app, because after a failover one sender frame's
    /// envelopes for two apps may come to one server as two parts, by two
    /// routes. At most 2,048 (sender, app) pairs: 16 MiB.
    private var seen = FrameWindows<SenderApp>(maxSources: 2048)

    struct SenderApp: Hashable, Sendable {
        var sender: UInt64
        var app: ByteBuffer
    }

    private let storedEnvelopes: Counter
    private let evictedForMemory: Counter
    private let subscriberDrops: Counter
    private let unroutable: Counter
    private let duplicates: Counter
    private let storedBytesGauge: Gauge

    public init(limits: Limits = Limits(), metrics: any MetricsFactory = MetricsSystem.factory) {
        self.limits = limits
        storedEnvelopes = Counter(label: MetricNames.serverStored, factory: metrics)
        evictedForMemory = Counter(
            label: MetricNames.serverEvicted, dimensions: [("reason", "memory_limit")], factory: metrics)
        subscriberDrops = Counter(
            label: MetricNames.serverDropped, dimensions: [("reason", "slow_subscriber")],
            factory: metrics)
        unroutable = Counter(
            label: MetricNames.serverDropped, dimensions: [("reason", "no_source_id")], factory: metrics)
        duplicates = Counter(label: MetricNames.serverDuplicates, factory: metrics)
        storedBytesGauge = Gauge(label: MetricNames.serverStoredBytes, factory: metrics)
    }

    /// Stores every envelope of a batch and collects the frames for live
    /// subscribers. The batch is checked whole first: a malformed one throws
    /// and stores nothing. With `parts` (an IDENTIFIED frame), the envelopes
    /// of an app that has taken in that sender frame's already are a resend:
    /// they are not stored again, only streamed again (readers skip a part
    /// they got).
    /// The app's taps get a copy of each Log envelope stored, queued in the
    /// order stored; `toTaps: false` keeps Sluice's own notices to the
    /// app's readers.
    public func ingest(_ batch: ByteBuffer, parts: [BatchPart] = [], toTaps: Bool = true) throws(WireError)
        -> [Delivery]
    {
        var tapWork = TapWork()
        let expectedCount = parts.isEmpty ? nil : parts.reduce(0) { $0 + Int($1.count) }
        lock.lock()
        defer { lock.unlock() }
        var stored = 0
        var skipped = 0
        var duplicate = 0
        var currentApp: AppLog? = nil
        var currentSubscribers: [Subscriber] = []
        var currentTaps: [any EnvelopeTap] = []
        var touched: [Subscriber] = []
        var cursor = PartCursor(parts)
        // Whether to store the current part's envelopes of the current app,
        // decided once per (part, app): a part of a frame this app has
        // taken in already is a resend.
        var keepPart = true
        var decisions: [ObjectIdentifier: Bool] = [:]
        try batch.withUnsafeReadableBytesTyped { bytes throws(WireError) in
            try EnvelopeBatchScanner.forEach(in: bytes, expectedCount: expectedCount) { range, fields in
                var decide = false
                if !parts.isEmpty && cursor.advance() {
                    decisions.removeAll(keepingCapacity: true)
                    decide = true
                }
                guard !fields.sourceID.isEmpty else {
                    skipped += 1
                    return
                }
                let envelope = UnsafeRawBufferPointer(rebasing: bytes[range])
                let key = UnsafeRawBufferPointer(rebasing: envelope[fields.sourceID])
                if currentApp == nil || !currentApp!.appID.readableBytesView.elementsEqual(key) {
                    (currentApp, currentSubscribers) = appLog(for: key)
                    currentTaps = toTaps ? taps[currentApp!.appID] ?? [] : []
                    decide = true
                }
                if decide && !parts.isEmpty {
                    let id = ObjectIdentifier(currentApp!)
                    if let decided = decisions[id] {
                        keepPart = decided
                    } else {
                        let part = cursor.current
                        keepPart =
                            part.sender == 0
                            || seen.insert(SenderApp(sender: part.sender, app: currentApp!.appID), sequence: part.sequence)
                        decisions[id] = keepPart
                    }
                }
                if keepPart {
                    let app = currentApp!
                    totalBytes +=
                        parts.isEmpty
                        ? app.append(envelope)
                        : app.append(envelope, sender: cursor.current.sender, sequence: cursor.current.sequence)
                    if app.count > limits.recentPerApp {
                        totalBytes -= app.removeOldest()
                    }
                    stored += 1
                    if !currentTaps.isEmpty && fields.isLog { tapWork.append(envelope, to: currentTaps) }
                } else {
                    // Taken in already: not stored again, but streamed again.
                    // The first time may have gone out on a connection the
                    // controller then dropped; readers skip a part they got.
                    duplicate += 1
                }
                for subscriber in currentSubscribers {
                    if subscriber.pending.isEmpty { touched.append(subscriber) }
                    if !parts.isEmpty {
                        subscriber.pending.beginPart(sender: cursor.current.sender, sequence: cursor.current.sequence)
                    }
                    subscriber.pending.append(envelope)
                }
            }
        }
        // Under the lock, so that each tap queues envelopes in the order stored.
        tapWork.enqueue()
        if totalBytes > limits.memoryLimit { evictForMemory() }
        storedEnvelopes.increment(by: stored)
        if skipped > 0 { unroutable.increment(by: skipped) }
        if duplicate > 0 { duplicates.increment(by: duplicate) }
        storedBytesGauge.record(totalBytes)
        return touched.compactMap(finishDelivery)
    }

    /// Replaces every app's taps (the drain bindings changed).
    public func setTaps(_ taps: [String: [any EnvelopeTap]]) {
        var keyed: [ByteBuffer: [any EnvelopeTap]] = [:]
        for (app, list) in taps where !list.isEmpty { keyed[ByteBuffer(string: app)] = list }
        lock.withLock { self.taps = keyed }
    }

    /// Writes a notice into an app's stream: kept with its recent lines and
    /// sent to its live readers, not to its taps.
    public func ingestNotice(app: String, text: String) {
        let envelope = Notice.envelope(app: app, text: text, timestampNanos: WallClock.nowNanos(), kind: "dropped")
        var batch = ByteBuffer()
        batch.writeBatchEntry(ByteBuffer(bytes: envelope))
        guard let deliveries = try? ingest(batch, toTaps: false) else { return }
        for delivery in deliveries { delivery.channel.writeAndFlush(delivery.frame, promise: nil) }
    }

    private func appLog(for key: UnsafeRawBufferPointer) -> (AppLog, [Subscriber]) {
        var lookup = ByteBuffer()
        lookup.writeBytes(key)
        if let existing = apps[lookup] {
            return (existing, subscribers[lookup] ?? [])
        }
        let created = AppLog(appID: lookup)
        apps[lookup] = created
        return (created, subscribers[lookup] ?? [])
    }

    /// Turns what was gathered for a subscriber into a frame, or counts it as
    /// dropped if its connection is not taking more.
    private func finishDelivery(_ subscriber: Subscriber) -> Delivery? {
        guard subscriber.channel.isWritable else {
            let count = subscriber.pending.count
            if subscriber.dropped == 0 { subscriber.droppedSince = WallClock.nowNanos() }
            subscriber.dropped += count
            subscriberDrops.increment(by: count)
            _ = subscriber.pending.finish(type: .stream, sequence: subscriber.id)
            return nil
        }
        guard let frame = subscriber.pending.finish(type: .stream, sequence: subscriber.id) else { return nil }
        guard subscriber.dropped > 0 else { return Delivery(channel: subscriber.channel, frame: frame) }
        // The notice goes in a frame of its own, in front, so that no frame
        // grows past the size of the one it came from.
        let text = Notice.dropText(
            count: subscriber.dropped, sinceNanos: subscriber.droppedSince,
            reason: "the controller's link to this buffer server fell behind")
        let notice = Notice.envelope(app: subscriber.app, text: text, timestampNanos: WallClock.nowNanos(), kind: "dropped")
        var noticeFrame = BatchFrameBuilder(capacity: notice.count + 32)
        notice.withUnsafeBytes { noticeFrame.append($0) }
        var both = noticeFrame.finish(type: .stream, sequence: subscriber.id)!
        both.writeImmutableBuffer(frame)
        subscriber.dropped = 0
        return Delivery(channel: subscriber.channel, frame: both)
    }

    /// Evicts the oldest envelopes of the largest apps until the total is
    /// back under the memory limit.
    private func evictForMemory() {
        var evicted = 0
        while totalBytes > limits.memoryLimit {
            guard let largest = apps.values.max(by: { $0.storedBytes < $1.storedBytes }), largest.count > 0 else {
                break
            }
            var freed = 0
            while freed == 0 && largest.count > 0 {
                freed = largest.removeOldest()
                evicted += 1
            }
            totalBytes -= freed
        }
        evictedForMemory.increment(by: evicted)
    }

    /// The newest `limit` envelopes of `app`, oldest first, as one or more
    /// RECENT_RESPONSE frames answering request `sequence`; the last one is
    /// flagged final. Each envelope's identity goes with it (parts with
    /// ordinals), so that the controller merging this answer with a stand-in's
    /// takes each envelope once and identical lines each time.
    public func recentFrames(app: String, limit: Int, sequence: UInt64) -> [ByteBuffer] {
        var key = ByteBuffer()
        key.writeString(app)
        var frames: [ByteBuffer] = []
        var builder = BatchFrameBuilder(capacity: 64 * 1024)
        lock.withLock {
            apps[key]?.forEachRecent(limit: limit) { envelope, identity in
                // Room for the envelope, its entry header and a part with its ordinal.
                if !builder.isEmpty && builder.payloadBytes + builder.partCount * 4 + envelope.count + 40
                    > limits.maxFramePayload
                {
                    frames.append(builder.finish(type: .recentResponse, sequence: sequence, ordinals: true)!)
                }
                builder.beginPart(sender: identity.sender, sequence: identity.sequence, first: identity.ordinal)
                builder.append(envelope)
            }
        }
        frames.append(
            builder.finish(type: .recentResponse, flags: .final, sequence: sequence, allowEmpty: true, ordinals: true)!)
        return frames
    }

    public func subscribe(app: String, id: UInt64, channel: any Channel) {
        var key = ByteBuffer()
        key.writeString(app)
        lock.withLock {
            subscribers[key, default: []].append(Subscriber(id: id, channel: channel, app: app))
        }
    }

    public func unsubscribe(id: UInt64, channel: any Channel) {
        lock.withLock {
            for (key, list) in subscribers {
                let kept = list.filter { !($0.id == id && $0.channel === channel) }
                if kept.count != list.count { subscribers[key] = kept.isEmpty ? nil : kept }
            }
        }
    }

    /// Ends every subscription of a connection that closed.
    public func unsubscribeAll(channel: any Channel) {
        lock.withLock {
            for (key, list) in subscribers {
                let kept = list.filter { $0.channel !== channel }
                if kept.count != list.count { subscribers[key] = kept.isEmpty ? nil : kept }
            }
        }
    }

    /// Totals for tests and status: (apps, envelopes, bytes).
    public var totals: (apps: Int, envelopes: Int, bytes: Int) {
        lock.withLock { (apps.count, apps.values.reduce(0) { $0 + $1.count }, totalBytes) }
    }
}
