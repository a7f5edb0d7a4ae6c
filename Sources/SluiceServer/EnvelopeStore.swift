import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore
import SluiceProto
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
        /// Bytes per second of Log envelopes each app may store, from all
        /// its sources together, unless the bindings store holds another
        /// limit for it (`setAppLogRateLimits`). Nil: no limit.
        public var appLogRateLimit: Int?

        public init(
            recentPerApp: Int = 1000, memoryLimit: Int = 256 * 1024 * 1024, maxFramePayload: Int = 1024 * 1024,
            appLogRateLimit: Int? = nil
        ) {
            self.recentPerApp = recentPerApp
            self.memoryLimit = memoryLimit
            self.maxFramePayload = maxFramePayload
            self.appLogRateLimit = appLogRateLimit
        }
    }

    /// Firehose subscriptions that share one subscription id: each envelope
    /// goes to one of them, in turn.
    final class FirehoseGroup {
        var members: [Subscriber] = []
        private var next = 0

        func pick() -> Subscriber {
            if next >= members.count { next = 0 }
            defer { next += 1 }
            return members[next]
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
    /// The firehose: every app's envelopes, by subscription id.
    private var firehose: [String: FirehoseGroup] = [:]
    /// `firehose`'s groups, for the ingest loop.
    private var firehoseGroups: [FirehoseGroup] = []
    /// Each app's taps (its drains); they take a copy of every Log envelope stored.
    private var taps: [ByteBuffer: [any EnvelopeTap]] = [:]
    private var totalBytes = 0
    /// Per-app log rate limits from the bindings store (-1: none), over
    /// `limits.appLogRateLimit`.
    private var logRateOverrides: [ByteBuffer: Int] = [:]
    /// Apps whose rate limit dropped lines not yet told.
    private var untoldRateDrops: [ByteBuffer: AppLog] = [:]
    /// The sender frames each app has taken in, so that a resent one is
    /// taken once. Per app, because after a failover one sender frame's
    /// envelopes for two apps may come to one server as two parts, by two
    /// routes. At most 2,048 (sender, app) pairs: 16 MiB.
    private var seen = FrameWindows<SenderApp>(maxSources: 2048)

    struct SenderApp: Hashable, Sendable {
        var sender: UInt64
        var app: ByteBuffer
    }

    /// The sender id this server gives the envelopes without identity it
    /// hands over when it leaves (`handoverFrames`).
    private let handoverSender = UInt64.random(in: 1...UInt64.max)
    private let storedEnvelopes: Counter
    private let evictedForMemory: Counter
    private let subscriberDrops: Counter
    private let unroutable: Counter
    private let duplicates: Counter
    private let rateLimited: Counter
    private let drainUnbound: Counter
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
        rateLimited = Counter(
            label: MetricNames.serverDropped, dimensions: [("reason", "app_log_rate_limit")], factory: metrics)
        drainUnbound = Counter(
            label: MetricNames.serverDropped, dimensions: [("reason", "drain_not_bound")], factory: metrics)
        storedBytesGauge = Gauge(label: MetricNames.serverStoredBytes, factory: metrics)
    }

    /// Stores every envelope of a batch and collects the frames for live
    /// subscribers. The batch is checked whole first: a malformed one throws
    /// and stores nothing. With `parts` (an IDENTIFIED frame), the envelopes
    /// of an app that has taken in that sender frame's already are a resend:
    /// they are not stored again, only streamed again (readers skip a part
    /// they got).
    /// The app's taps get a copy of each Log envelope stored, queued in the
    /// order stored. An app over its log rate limit loses the Log envelopes
    /// past it: not stored, streamed or tapped, counted, and told later by
    /// `tellRateLimitDrops`. `notice: true` is Sluice's own notice: kept
    /// from the taps and from the rate limit. `history: true` is what a
    /// stopped server held, handed on by a controller (`FrameFlags.history`):
    /// only stored, since readers, taps and the rate limit had it already;
    /// with `ordinals` (`FrameFlags.ordinals`) its parts' first ordinals
    /// are kept.
    public func ingest(
        _ batch: ByteBuffer, parts: [BatchPart] = [], notice: Bool = false, history: Bool = false, ordinals: Bool = false
    ) throws(WireError) -> [Delivery] {
        let toTaps = !notice && !history
        let admitAll = notice || history
        let now = WallClock.nowNanos()
        var rateDropped = 0
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
        // History goes into a log of its own per app first, then into the
        // app's log in time order (`AppLog.absorb`).
        var incoming: [ObjectIdentifier: (app: AppLog, history: AppLog)] = [:]
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
                    if history { currentSubscribers = [] }
                    currentTaps = toTaps ? taps[currentApp!.appID] ?? [] : []
                    decide = true
                }
                if decide && !parts.isEmpty {
                    let id = ObjectIdentifier(currentApp!)
                    if let decided = decisions[id] {
                        keepPart = decided
                    } else {
                        let part = cursor.current
                        let new =
                            part.sender == 0
                            || seen.insert(SenderApp(sender: part.sender, app: currentApp!.appID), sequence: part.sequence)
                        // History is taken envelope by envelope: what is
                        // here already is left out by identity when it is
                        // absorbed (a sender frame's run may come in pieces).
                        keepPart = new || history
                        decisions[id] = keepPart
                    }
                }
                if keepPart {
                    let app = currentApp!
                    if app.rateLimit != nil && fields.isLog && !admitAll
                        && !app.rateLimit!.admit(bytes: envelope.count, now: now)
                    {
                        rateDropped += 1
                        app.rateDropped += 1
                        untoldRateDrops[app.appID] = app
                        return
                    }
                    if history {
                        let id = ObjectIdentifier(app)
                        let log = incoming[id]?.history ?? AppLog(appID: app.appID)
                        if incoming[id] == nil { incoming[id] = (app, log) }
                        // A leaving server's history (`ordinals`, one app a
                        // frame) gives each envelope its own ordinal: two
                        // parts of one sender frame with a gap between them
                        // stay apart. A part of other history may hold
                        // several apps' envelopes: each app's count on.
                        _ = log.append(
                            envelope, timestamp: fields.timestamp, sender: parts.isEmpty ? 0 : cursor.current.sender,
                            sequence: parts.isEmpty ? 0 : cursor.current.sequence,
                            ordinal: parts.isEmpty || !ordinals ? nil : cursor.current.first &+ cursor.offset)
                    } else {
                        totalBytes +=
                            parts.isEmpty
                            ? app.append(envelope, timestamp: fields.timestamp)
                            : app.append(
                                envelope, timestamp: fields.timestamp, sender: cursor.current.sender,
                                sequence: cursor.current.sequence, first: cursor.current.first)
                        if app.count > limits.recentPerApp {
                            totalBytes -= app.removeOldest()
                        }
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
                // The firehose gets no parts: its readers split one sender
                // frame among them, so they cannot skip a part they got.
                for group in firehoseGroups where !history {
                    let subscriber = group.pick()
                    if subscriber.pending.isEmpty { touched.append(subscriber) }
                    subscriber.pending.append(envelope)
                }
            }
        }
        for (app, log) in incoming.values {
            totalBytes += app.absorb(log)
            while app.count > limits.recentPerApp { totalBytes -= app.removeOldest() }
        }
        // Under the lock, so that each tap queues envelopes in the order stored.
        tapWork.enqueue()
        if totalBytes > limits.memoryLimit { evictForMemory() }
        storedEnvelopes.increment(by: stored)
        if skipped > 0 { unroutable.increment(by: skipped) }
        if duplicate > 0 { duplicates.increment(by: duplicate) }
        if rateDropped > 0 { rateLimited.increment(by: rateDropped) }
        storedBytesGauge.record(totalBytes)
        return touched.compactMap(finishDelivery)
    }

    /// A leaving server's drain lines (`FrameFlags.drain`, handed on by a
    /// controller): each part's envelopes go to the tap of their app whose
    /// `handoverKey` is the part's sender, queued there; not stored or
    /// streamed. Lines of a drain not bound here (removed meanwhile) are
    /// dropped and counted. Returns how many were dropped.
    @discardableResult
    public func takeOverDrainLines(_ batch: ByteBuffer, parts: [BatchPart]) throws(WireError) -> Int {
        guard !parts.isEmpty else { throw WireError(.malformedBatch, "DRAIN needs parts naming each envelope's drain") }
        var groups: [(key: UInt64, app: ByteBuffer, envelopes: [ByteBuffer])] = []
        var cursor = PartCursor(parts)
        try batch.withUnsafeReadableBytesTyped { bytes throws(WireError) in
            try EnvelopeBatchScanner.forEach(in: bytes, expectedCount: parts.reduce(0) { $0 + Int($1.count) }) {
                range, fields in
                _ = cursor.advance()
                let envelope = UnsafeRawBufferPointer(rebasing: bytes[range])
                let app = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: envelope[fields.sourceID]))
                let key = cursor.current.sender
                if let last = groups.last, last.key == key, last.app == app {
                    groups[groups.count - 1].envelopes.append(ByteBuffer(bytes: envelope))
                } else {
                    groups.append((key, app, [ByteBuffer(bytes: envelope)]))
                }
            }
        }
        var unbound = 0
        lock.withLock {
            for group in groups {
                if let tap = taps[group.app]?.first(where: { $0.handoverKey == group.key }) {
                    tap.takeOver(group.envelopes)
                } else {
                    unbound += group.envelopes.count
                }
            }
        }
        if unbound > 0 { drainUnbound.increment(by: unbound) }
        return unbound
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
        writeNotice(app: app, text: text, kind: "dropped")
    }

    private func writeNotice(app: String, text: String, kind: String) {
        let envelope = Notice.envelope(app: app, text: text, timestampNanos: WallClock.nowNanos(), kind: kind)
        var batch = ByteBuffer()
        batch.writeBatchEntry(ByteBuffer(bytes: envelope))
        guard let deliveries = try? ingest(batch, notice: true) else { return }
        for delivery in deliveries { delivery.channel.writeAndFlush(delivery.frame, promise: nil) }
    }

    /// Sets the per-app log rate limits the bindings store holds (bytes per
    /// second; -1: none for that app); an app not named has the default.
    /// An app whose limit changes starts with a full bucket.
    public func setAppLogRateLimits(_ overrides: [String: Int]) {
        var keyed: [ByteBuffer: Int] = [:]
        for (app, limit) in overrides { keyed[ByteBuffer(string: app)] = limit }
        let now = WallClock.nowNanos()
        var notices: [(String, String)] = []
        lock.withLock {
            logRateOverrides = keyed
            for (key, app) in apps {
                let wanted = logRateLimit(for: key)
                guard wanted != app.rateLimit?.bytesPerSecond else { continue }
                // What the old limit dropped is told with the old limit.
                if var old = app.rateLimit, let text = old.takeNotice() {
                    notices.append((String(buffer: key), text))
                    untoldRateDrops[key] = nil
                }
                app.rateLimit = wanted.map { AppRateLimit(bytesPerSecond: $0, now: now) }
            }
        }
        for (app, text) in notices { writeNotice(app: app, text: text, kind: "log_rate_limit") }
    }

    /// Writes the notices of rate limit drops that are due (lines dropped
    /// a second ago or more): at most one a second per app. The server
    /// calls it a few times a second.
    public func tellRateLimitDrops(now: Int64 = WallClock.nowNanos()) {
        var notices: [(String, String)] = []
        lock.withLock {
            for (key, app) in untoldRateDrops {
                guard app.rateLimit != nil else {
                    untoldRateDrops[key] = nil
                    continue
                }
                if let text = app.rateLimit!.noticeDue(now: now) {
                    notices.append((String(buffer: key), text))
                    untoldRateDrops[key] = nil
                }
            }
        }
        for (app, text) in notices { writeNotice(app: app, text: text, kind: "log_rate_limit") }
    }

    /// The limit that holds for an app now: its own, else the default.
    private func logRateLimit(for key: ByteBuffer) -> Int? {
        if let own = logRateOverrides[key] { return own < 0 ? nil : own }
        return limits.appLogRateLimit
    }

    private func appLog(for key: UnsafeRawBufferPointer) -> (AppLog, [Subscriber]) {
        var lookup = ByteBuffer()
        lookup.writeBytes(key)
        if let existing = apps[lookup] {
            return (existing, subscribers[lookup] ?? [])
        }
        let created = AppLog(appID: lookup)
        created.rateLimit = logRateLimit(for: lookup).map { AppRateLimit(bytesPerSecond: $0, now: WallClock.nowNanos()) }
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
        answerFrames(sequence: sequence) { append in
            apps[ByteBuffer(string: app)]?.forEachRecent(limit: limit, append)
        }
    }

    /// The envelopes of `app` that `query` asks for, in timestamp order,
    /// oldest first, as RECENT_RESPONSE frames as `recentFrames` gives them.
    public func recentFrames(app: String, query: RecentQuery, sequence: UInt64) -> [ByteBuffer] {
        answerFrames(sequence: sequence) { append in
            apps[ByteBuffer(string: app)]?.read(
                query.range, limit: query.limit, newest: !query.oldestFirst, admit: query.admits
            ) { envelope, identity in
                if let changed = query.rewritten(envelope) {
                    changed.withUnsafeBytes { append($0, identity) }
                } else {
                    append(envelope, identity)
                }
            }
        }
    }

    /// Under the lock, `fill` hands envelopes and identities to its
    /// argument; they go out in frames of at most `maxFramePayload`.
    private func answerFrames(
        sequence: UInt64, _ fill: ((UnsafeRawBufferPointer, EnvelopeIdentity) -> Void) -> Void
    ) -> [ByteBuffer] {
        var frames: [ByteBuffer] = []
        var builder = BatchFrameBuilder(capacity: 64 * 1024)
        lock.withLock {
            fill { envelope, identity in
                appendAnswering(envelope, identity, to: &builder, frames: &frames, sequence: sequence)
            }
        }
        frames.append(
            builder.finish(type: .recentResponse, flags: .final, sequence: sequence, allowEmpty: true, ordinals: true)!)
        return frames
    }

    /// Adds an envelope and its identity to an answer's frame, first ending
    /// the frame (into `frames`) if the envelope would take it past
    /// `maxFramePayload`. Frames ended carry `flags`.
    private func appendAnswering(
        _ envelope: UnsafeRawBufferPointer, _ identity: EnvelopeIdentity, to builder: inout BatchFrameBuilder,
        frames: inout [ByteBuffer], sequence: UInt64, flags: FrameFlags = []
    ) {
        // Room for the envelope, its entry header and a part with its ordinal.
        if !builder.isEmpty && builder.payloadBytes + builder.partCount * 4 + envelope.count + 40 > limits.maxFramePayload {
            frames.append(builder.finish(type: .recentResponse, flags: flags, sequence: sequence, ordinals: true)!)
        }
        builder.beginPart(sender: identity.sender, sequence: identity.sequence, first: identity.ordinal)
        builder.append(envelope)
    }

    /// Every envelope this server holds, oldest first within each app, as
    /// RECENT_RESPONSE frames answering a HANDOVER_REQUEST `sequence`: each
    /// frame holds one app's envelopes with their identities (parts with
    /// ordinals), and an empty one flagged final ends the answer. The copy
    /// is made under the lock at once: a server leaving needs room for it.
    /// Then what its drains hold and cannot deliver (their endpoints are
    /// down: `EnvelopeTap.handOff`), taken out of them, in frames flagged
    /// DRAIN, one drain's a frame, each part's sender the drain's key: so
    /// the first controller to ask hands them on, and a second gets none.
    /// Only with `drainLines` (the controller asked with DRAIN).
    public func handoverFrames(sequence: UInt64, drainLines: Bool = true) -> [ByteBuffer] {
        var frames: [ByteBuffer] = []
        lock.withLock {
            for app in apps.values where app.count > 0 {
                var builder = BatchFrameBuilder(capacity: 64 * 1024)
                // An envelope without identity (Sluice's own notices, a
                // sender that gave none) is given one, the same in every
                // controller's answer: this server's handover sender and
                // the envelope's place in the app's log, so that the
                // server taking it stores it once.
                var place = app.expired
                app.forEachRecent(limit: app.count) { envelope, identity in
                    let given =
                        identity.sender != 0
                        ? identity
                        : EnvelopeIdentity(sender: handoverSender, sequence: 0, ordinal: UInt32(truncatingIfNeeded: place))
                    place += 1
                    appendAnswering(envelope, given, to: &builder, frames: &frames, sequence: sequence)
                }
                if let last = builder.finish(type: .recentResponse, sequence: sequence, ordinals: true) {
                    frames.append(last)
                }
            }
            for tap in taps.values.joined() where drainLines {
                var builder = BatchFrameBuilder(capacity: 64 * 1024)
                for (ordinal, envelope) in tap.handOff().enumerated() {
                    let identity = EnvelopeIdentity(
                        sender: tap.handoverKey, sequence: 0, ordinal: UInt32(truncatingIfNeeded: ordinal))
                    envelope.withUnsafeReadableBytes {
                        appendAnswering($0, identity, to: &builder, frames: &frames, sequence: sequence, flags: .drain)
                    }
                }
                if let last = builder.finish(type: .recentResponse, flags: .drain, sequence: sequence, ordinals: true) {
                    frames.append(last)
                }
            }
        }
        var final = BatchFrameBuilder(capacity: 0)
        frames.append(final.finish(type: .recentResponse, flags: .final, sequence: sequence, allowEmpty: true, ordinals: true)!)
        return frames
    }

    /// What the drains this server runs report (set once where the server
    /// and its drains are put together); nil: none.
    public func reportDrains(_ statuses: @escaping @Sendable () -> [Sluice_V1_DrainStatus]) {
        drainStatuses.withLockedValue { $0 = statuses }
    }
    private let drainStatuses = NIOLockedValueBox<(@Sendable () -> [Sluice_V1_DrainStatus])?>(nil)

    /// What this server holds of each app: how many envelopes, how many
    /// let go, the oldest and newest times (log-cache's meta); and how
    /// its drains stand.
    public func meta() -> Sluice_V1_MetaResponse {
        var response = heldMeta()
        response.drains = drainStatuses.withLockedValue { $0 }?() ?? []
        return response
    }

    private func heldMeta() -> Sluice_V1_MetaResponse {
        lock.withLock {
            var response = Sluice_V1_MetaResponse()
            for (key, app) in apps where app.count > 0 || app.expired > 0 || app.rateDropped > 0 {
                var source = Sluice_V1_SourceMeta()
                source.sourceID = String(buffer: key)
                source.count = UInt64(app.count)
                source.expired = UInt64(app.expired)
                source.oldestTimestamp = app.oldestTimestamp ?? 0
                source.newestTimestamp = app.newestTimestamp ?? 0
                source.dropped = UInt64(app.rateDropped)
                response.sources.append(source)
            }
            return response
        }
    }

    /// Subscribes `channel` to `app`'s envelopes as subscription `id`. With
    /// `since` (Unix nanoseconds, more than 0) the envelopes stored with
    /// timestamps from then on come first, as STREAM frames to write before
    /// any live one: a controller subscribing again after its link was
    /// down gets what this server took meanwhile (its readers skip what
    /// they had, by sender frame). Registered and read under one lock, so
    /// nothing falls between the two.
    @discardableResult
    public func subscribe(app: String, id: UInt64, channel: any Channel, since: Int64 = 0) -> [ByteBuffer] {
        var key = ByteBuffer()
        key.writeString(app)
        return lock.withLock {
            subscribers[key, default: []].append(Subscriber(id: id, channel: channel, app: app))
            guard since > 0, let log = apps[key] else { return [] }
            // Whole runs of one sender frame per STREAM frame (a reader
            // skips a sender frame it has seen, so one must not be split).
            // Gathered by sender frame, in the order each first appears
            // (one frame's envelopes may be apart in time order).
            var runs: [(sender: UInt64, sequence: UInt64, envelopes: [[UInt8]], bytes: Int)] = []
            var place: [SenderFrame: Int] = [:]
            log.read(since..<Int64.max, limit: max(1, log.count), newest: false, admit: { _ in true }) { envelope, identity in
                let key = SenderFrame(sender: identity.sender, sequence: identity.sequence)
                if identity.sender != 0, let index = place[key] {
                    runs[index].envelopes.append(Array(envelope))
                    runs[index].bytes += envelope.count + 8
                } else {
                    place[key] = runs.count
                    runs.append((identity.sender, identity.sequence, [Array(envelope)], envelope.count + 8))
                }
            }
            var frames: [ByteBuffer] = []
            var builder = BatchFrameBuilder(capacity: 64 * 1024)
            for run in runs {
                if !builder.isEmpty && builder.payloadBytes + builder.partCount * 24 + run.bytes + 64 > limits.maxFramePayload {
                    frames.append(builder.finish(type: .stream, sequence: id)!)
                }
                builder.beginPart(sender: run.sender, sequence: run.sequence)
                for envelope in run.envelopes { envelope.withUnsafeBytes { builder.append($0) } }
            }
            if let last = builder.finish(type: .stream, sequence: id) { frames.append(last) }
            return frames
        }
    }

    /// Subscribes to every app's envelopes, sharing them with the other
    /// firehose subscriptions of `subscription` (from any controller): each
    /// envelope goes to one of them, in turn, so they get even shares.
    public func subscribeFirehose(subscription: String, id: UInt64, channel: any Channel) {
        lock.withLock {
            let group = firehose[subscription] ?? FirehoseGroup()
            if firehose[subscription] == nil {
                firehose[subscription] = group
                firehoseGroups.append(group)
            }
            group.members.append(Subscriber(id: id, channel: channel, app: "firehose"))
        }
    }

    public func unsubscribe(id: UInt64, channel: any Channel) {
        lock.withLock { removeSubscribers { $0.id == id && $0.channel === channel } }
    }

    /// Ends every subscription of a connection that closed.
    public func unsubscribeAll(channel: any Channel) {
        lock.withLock { removeSubscribers { $0.channel === channel } }
    }

    /// Under the lock.
    private func removeSubscribers(where matches: (Subscriber) -> Bool) {
        for (key, list) in subscribers {
            let kept = list.filter { !matches($0) }
            if kept.count != list.count { subscribers[key] = kept.isEmpty ? nil : kept }
        }
        for (name, group) in firehose {
            group.members.removeAll(where: matches)
            if group.members.isEmpty { firehose[name] = nil }
        }
        firehoseGroups = Array(firehose.values)
    }

    /// Firehose subscriptions, by subscription id (for tests and status).
    public var firehoseSubscriptions: [String: Int] {
        lock.withLock { firehose.mapValues(\.members.count) }
    }

    /// Totals for tests and status: (apps, envelopes, bytes).
    public var totals: (apps: Int, envelopes: Int, bytes: Int) {
        lock.withLock { (apps.count, apps.values.reduce(0) { $0 + $1.count }, totalBytes) }
    }
}
