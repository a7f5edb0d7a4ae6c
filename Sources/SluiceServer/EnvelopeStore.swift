import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore
import SluiceDrain
import SluiceTransport
import SluiceWire

/// The buffer server's state: each app's recent envelopes and the live
/// subscriptions to them. Every method takes the lock once per call (once
/// per ingested frame, not per envelope).
public final class EnvelopeStore: @unchecked Sendable {
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
    /// Each app's drains; they take a copy of every envelope stored.
    private var drains: [ByteBuffer: [DrainRunner]] = [:]
    private var totalBytes = 0
    /// Sender frames already taken in, so that a resent one is taken once.
    private var seen = SeenFrames()

    private let storedEnvelopes: Counter
    private let evictedForMemory: Counter
    private let subscriberDrops: Counter
    private let unroutable: Counter
    private let duplicates: Counter
    private let storedBytesGauge: Gauge

    public init(limits: Limits = Limits(), metrics: any MetricsFactory = MetricsSystem.factory) {
        self.limits = limits
        storedEnvelopes = Counter(label: "sluice_server_envelopes_stored_total", factory: metrics)
        evictedForMemory = Counter(
            label: "sluice_server_envelopes_evicted_total", dimensions: [("reason", "memory_limit")], factory: metrics)
        subscriberDrops = Counter(
            label: "sluice_server_envelopes_dropped_total", dimensions: [("reason", "slow_subscriber")],
            factory: metrics)
        unroutable = Counter(
            label: "sluice_server_envelopes_dropped_total", dimensions: [("reason", "no_source_id")], factory: metrics)
        duplicates = Counter(label: "sluice_server_duplicate_envelopes_skipped_total", factory: metrics)
        storedBytesGauge = Gauge(label: "sluice_server_stored_bytes", factory: metrics)
    }

    /// Stores every envelope of a batch and collects the frames for live
    /// subscribers. The batch is checked whole first: a malformed one throws
    /// and stores nothing. With `parts` (an IDENTIFIED frame), a part already
    /// taken in from the same sender frame is skipped: it is a resend.
    /// The app's drains get a copy of each envelope stored, queued in the
    /// order stored; `toDrains: false` keeps Sluice's own notices to the
    /// app's readers.
    public func ingest(_ batch: ByteBuffer, parts: [BatchPart] = [], toDrains: Bool = true) throws(WireError)
        -> [Delivery]
    {
        var drainWork = DrainWork()
        let expectedCount = parts.isEmpty ? nil : parts.reduce(0) { $0 + Int($1.count) }
        lock.lock()
        defer { lock.unlock() }
        var stored = 0
        var skipped = 0
        var duplicate = 0
        var currentApp: AppLog? = nil
        var currentSubscribers: [Subscriber] = []
        var currentDrains: [DrainRunner] = []
        var touched: [Subscriber] = []
        var cursor = PartCursor(parts)
        var keepPart = true
        try batch.withUnsafeReadableBytesTyped { bytes throws(WireError) in
            try EnvelopeBatchScanner.forEach(in: bytes, expectedCount: expectedCount) { range, fields in
                if !parts.isEmpty {
                    if cursor.advance() {
                        keepPart = seen.insert(sender: cursor.current.sender, sequence: cursor.current.sequence)
                    }
                    guard keepPart else {
                        duplicate += 1
                        return
                    }
                }
                guard !fields.sourceID.isEmpty else {
                    skipped += 1
                    return
                }
                let envelope = UnsafeRawBufferPointer(rebasing: bytes[range])
                let key = UnsafeRawBufferPointer(rebasing: envelope[fields.sourceID])
                if currentApp == nil || !currentApp!.appID.readableBytesView.elementsEqual(key) {
                    (currentApp, currentSubscribers) = appLog(for: key)
                    currentDrains = toDrains ? drains[currentApp!.appID] ?? [] : []
                }
                let app = currentApp!
                totalBytes += app.append(envelope)
                if app.count > limits.recentPerApp {
                    totalBytes -= app.removeOldest()
                }
                stored += 1
                if !currentDrains.isEmpty && fields.isLog { drainWork.append(envelope, to: currentDrains) }
                for subscriber in currentSubscribers {
                    if subscriber.pending.isEmpty { touched.append(subscriber) }
                    if !parts.isEmpty {
                        subscriber.pending.beginPart(sender: cursor.current.sender, sequence: cursor.current.sequence)
                    }
                    subscriber.pending.append(envelope)
                }
            }
        }
        // Under the lock, so that each drain queues frames in the order stored.
        drainWork.enqueue()
        if totalBytes > limits.memoryLimit { evictForMemory() }
        storedEnvelopes.increment(by: stored)
        if skipped > 0 { unroutable.increment(by: skipped) }
        if duplicate > 0 { duplicates.increment(by: duplicate) }
        storedBytesGauge.record(totalBytes)
        return touched.compactMap(finishDelivery)
    }

    /// Replaces every app's drains (the bindings changed).
    public func setDrains(_ runners: [String: [DrainRunner]]) {
        var keyed: [ByteBuffer: [DrainRunner]] = [:]
        for (app, list) in runners where !list.isEmpty { keyed[ByteBuffer(string: app)] = list }
        lock.withLock { drains = keyed }
    }

    /// Writes a notice into an app's stream: kept with its recent lines and
    /// sent to its live readers, not to its drains.
    public func ingestNotice(app: String, text: String) {
        let envelope = Notice.envelope(app: app, text: text, timestampNanos: CFLogFormat.nowNanos(), kind: "dropped")
        var batch = ByteBuffer()
        batch.writeBatchEntry(ByteBuffer(bytes: envelope))
        guard let deliveries = try? ingest(batch, toDrains: false) else { return }
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
            if subscriber.dropped == 0 { subscriber.droppedSince = CFLogFormat.nowNanos() }
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
        let notice = Notice.envelope(app: subscriber.app, text: text, timestampNanos: CFLogFormat.nowNanos(), kind: "dropped")
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
    /// flagged final.
    public func recentFrames(app: String, limit: Int, sequence: UInt64) -> [ByteBuffer] {
        var key = ByteBuffer()
        key.writeString(app)
        var frames: [ByteBuffer] = []
        var builder = BatchFrameBuilder(capacity: 64 * 1024)
        lock.withLock {
            apps[key]?.forEachRecent(limit: limit) { envelope in
                if !builder.isEmpty && builder.payloadBytes + envelope.count + 16 > limits.maxFramePayload {
                    frames.append(builder.finish(type: .recentResponse, sequence: sequence)!)
                }
                builder.append(envelope)
            }
        }
        frames.append(builder.finish(type: .recentResponse, flags: .final, sequence: sequence, allowEmpty: true)!)
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

/// Envelopes of one ingested batch gathered for drains: each drain gets
/// its own copy, in one buffer per drain per batch, so that what a slow
/// drain holds keeps only its own app's envelopes alive.
struct DrainWork {
    private var work: [(runner: DrainRunner, bytes: ByteBuffer, lengths: [Int])] = []
    /// The entries of `work` for the app being scanned.
    private var current: [Int] = []
    private var currentRunners: [DrainRunner] = []

    mutating func append(_ envelope: UnsafeRawBufferPointer, to runners: [DrainRunner]) {
        if currentRunners.count != runners.count || !zip(currentRunners, runners).allSatisfy({ $0 === $1 }) {
            currentRunners = runners
            current = runners.map { runner in
                if let index = work.firstIndex(where: { $0.runner === runner }) { return index }
                work.append((runner, ByteBuffer(), []))
                return work.count - 1
            }
        }
        for index in current {
            work[index].bytes.writeBytes(envelope)
            work[index].lengths.append(envelope.count)
        }
    }

    /// One `enqueue` per drain, with slices of its buffer.
    func enqueue() {
        for entry in work {
            var offset = 0
            let slices = entry.lengths.map { length in
                defer { offset += length }
                return entry.bytes.getSlice(at: offset, length: length)!
            }
            entry.runner.enqueue(slices)
        }
    }
}
