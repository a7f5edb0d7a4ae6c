import Foundation
import Logging
import NIOCore
import SluiceBindings
import SluiceDrain
import NIOEmbedded
import SluiceProto
import SluiceTransport
import SluiceShipping
import SluiceWire
import SwiftProtobuf
import Testing

@testable import SluiceServer

/// `EnvelopeStore`: ingest, recent answers, limits and live subscriptions.
@Suite struct EnvelopeStoreTests {
    static func store(
        recentPerApp: Int = 1000, memoryLimit: Int = 256 * 1024 * 1024, maxFramePayload: Int = 1024 * 1024
    ) -> EnvelopeStore {
        EnvelopeStore(
            limits: .init(recentPerApp: recentPerApp, memoryLimit: memoryLimit, maxFramePayload: maxFramePayload))
    }

    /// The parsed frames of a recent answer, checked for what every answer
    /// must be: RECENT_RESPONSE, the request's sequence, final on the last only.
    static func recent(_ store: EnvelopeStore, app: String, limit: Int = 1000, sequence: UInt64 = 1) throws
        -> (frames: [ParsedFrame], envelopes: [Loggregator_V2_Envelope])
    {
        let frames = try store.recentFrames(app: app, limit: limit, sequence: sequence).map { try ParsedFrame($0) }
        try #require(!frames.isEmpty)
        for (index, frame) in frames.enumerated() {
            #expect(frame.header.type == .recentResponse)
            #expect(frame.header.sequence == sequence)
            #expect(frame.header.flags.contains(.final) == (index == frames.count - 1), "frame \(index)")
        }
        return (frames, try frames.flatMap { try $0.envelopes() })
    }

    static func totals(_ store: EnvelopeStore) -> [Int] {
        let totals = store.totals
        return [totals.apps, totals.envelopes, totals.bytes]
    }

    static func ingest(_ store: EnvelopeStore, _ envelopes: [Loggregator_V2_Envelope]) throws
        -> [EnvelopeStore.Delivery]
    {
        try store.ingest(try Make.batch(envelopes))
    }

    @Test func recentGivesOneAppsEnvelopesInOrder() throws {
        let store = Self.store()
        let a = (0..<3).map { Make.log(app: "A", "a\($0)", timestamp: Int64($0)) }
        let b = (0..<2).map { Make.log(app: "B", "b\($0)", timestamp: Int64($0)) }
        let deliveries = try Self.ingest(store, [a[0], b[0], a[1], b[1], a[2]])
        #expect(deliveries.isEmpty)
        #expect(store.totals.apps == 2)
        #expect(store.totals.envelopes == 5)
        #expect(store.totals.bytes > 0)

        let (frames, envelopes) = try Self.recent(store, app: "A", sequence: 0xABCD_EF01_2345)
        #expect(frames.count == 1)
        #expect(envelopes == a)
        #expect(try Self.recent(store, app: "B").envelopes == b)
        #expect(try Self.recent(store, app: "A", limit: 2).envelopes == Array(a.suffix(2)))
        #expect(try Self.recent(store, app: "A", limit: 1).envelopes == [a[2]])
    }

    @Test func laterBatchesAppend() throws {
        let store = Self.store()
        var all: [Loggregator_V2_Envelope] = []
        for batch in 0..<5 {
            let envelopes = (0..<7).map { Make.log(app: "A", "line \(batch).\($0)", timestamp: Int64(batch * 7 + $0)) }
            _ = try Self.ingest(store, envelopes + [Make.counter(app: "other")])
            all += envelopes
        }
        #expect(try Self.recent(store, app: "A").envelopes == all)
        #expect(try Self.recent(store, app: "other").envelopes.count == 5)
    }

    @Test func recentPerAppKeepsTheNewest() throws {
        let store = Self.store(recentPerApp: 10)
        let envelopes = (0..<25).map { Make.log(app: "A", "line \($0)", timestamp: Int64($0)) }
        _ = try Self.ingest(store, Array(envelopes[0..<3]))
        _ = try Self.ingest(store, Array(envelopes[3..<20]))
        _ = try Self.ingest(store, Array(envelopes[20...]) + [Make.log(app: "B", "b")])
        #expect(try Self.recent(store, app: "A").envelopes == Array(envelopes.suffix(10)))
        #expect(try Self.recent(store, app: "A", limit: 3).envelopes == Array(envelopes.suffix(3)))
        #expect(try Self.recent(store, app: "B").envelopes.count == 1)
        #expect(store.totals.envelopes == 11)
    }

    @Test func smallFramePayloadSplitsTheAnswer() throws {
        let store = Self.store(maxFramePayload: 300)
        let envelopes = (0..<20).map { Make.log(app: "A", String(repeating: "x", count: 40 + $0), timestamp: Int64($0)) }
        _ = try Self.ingest(store, envelopes)
        let (frames, decoded) = try Self.recent(store, app: "A", sequence: 77)
        #expect(frames.count > 3)
        #expect(decoded == envelopes)
        for frame in frames {
            #expect(Int(frame.header.length) <= 300)
            #expect(try !frame.envelopes().isEmpty)
        }
    }

    @Test func anEnvelopeLargerThanTheFrameLimitStillComesBack() throws {
        let store = Self.store(maxFramePayload: 200)
        let envelopes = [
            Make.log(app: "A", "small", timestamp: 1),
            Make.log(app: "A", String(repeating: "y", count: 1000), timestamp: 2),
            Make.log(app: "A", "small again", timestamp: 3),
        ]
        _ = try Self.ingest(store, envelopes)
        let (frames, decoded) = try Self.recent(store, app: "A")
        #expect(decoded == envelopes)
        #expect(frames.count == 3)
    }

    @Test func unknownAppGivesOneEmptyFinalFrame() throws {
        let store = Self.store()
        _ = try Self.ingest(store, [Make.log(app: "A", "a")])
        for app in ["nope", "", "a", "A "] {
            let (frames, envelopes) = try Self.recent(store, app: app, sequence: 5)
            #expect(frames.count == 1, "\(app)")
            #expect(frames[0].header.length == 0, "\(app)")
            #expect(frames[0].header.flags == .final, "\(app)")
            #expect(envelopes.isEmpty, "\(app)")
        }
    }

    @Test func memoryLimitEvictsFromTheLargestAppFirst() throws {
        let limit = 256 * 1024
        let store = Self.store(memoryLimit: limit)
        let small = (0..<5).map { Make.log(app: "B", "small \($0)", timestamp: Int64($0)) }
        let big = (0..<60).map {
            Make.log(app: "A", bytes: [UInt8](repeating: UInt8($0), count: 20 * 1024), timestamp: Int64($0))
        }
        _ = try Self.ingest(store, Array(small[0..<2]))
        for start in stride(from: 0, to: 60, by: 6) {
            _ = try Self.ingest(store, Array(big[start..<start + 6]))
            #expect(store.totals.bytes <= limit)
            if start == 24 { _ = try Self.ingest(store, Array(small[2...])) }
        }
        #expect(store.totals.bytes <= limit)
        #expect(try Self.recent(store, app: "B").envelopes == small)
        let kept = try Self.recent(store, app: "A").envelopes
        #expect(kept.count < 60)
        #expect(kept.count >= 6, "the newest batch fits in the limit")
        #expect(kept == Array(big.suffix(kept.count)), "A keeps its newest envelopes")
        #expect(store.totals.envelopes == kept.count + small.count)
    }

    @Test func malformedBatchThrowsAndStoresNothing() throws {
        let store = Self.store()
        _ = try Self.ingest(store, [Make.log(app: "A", "kept")])
        let before = Self.totals(store)

        // A good envelope, then one whose length runs past the end.
        var bad = try Make.batch([Make.log(app: "A", "good"), Make.log(app: "C", "also good")])
        bad.writeBytes([0x0A, 0x20, 0x12, 0x01, 0x41])
        let error = #expect(throws: WireError.self) { try store.ingest(bad) }
        #expect(error?.code == .malformedBatch)

        // source_id (field 2) with the wrong wire type.
        var wrongType = try Make.batch([Make.log(app: "A", "good")])
        wrongType.writeBytes([0x0A, 0x02, 0x10, 0x01])
        #expect(throws: WireError.self) { try store.ingest(wrongType) }

        let garbage = Make.buffer([0xFF, 0xFF, 0xFF])
        #expect(throws: WireError.self) { try store.ingest(garbage) }

        #expect(Self.totals(store) == before)
        #expect(try Self.recent(store, app: "A").envelopes == [Make.log(app: "A", "kept")])
        #expect(try Self.recent(store, app: "C").envelopes.isEmpty)
    }

    @Test func envelopesWithoutSourceIDAreNotStored() throws {
        let store = Self.store()
        let noSource = Make.log(app: "", "orphan")
        let a = Make.log(app: "A", "a")
        _ = try Self.ingest(store, [noSource, a, Loggregator_V2_Envelope(), noSource])
        #expect(store.totals.apps == 1)
        #expect(store.totals.envelopes == 1)
        #expect(try Self.recent(store, app: "A").envelopes == [a])
        #expect(try Self.recent(store, app: "").envelopes.isEmpty)
    }

    @Test func emptyBatchStoresNothing() throws {
        let store = Self.store()
        #expect(try store.ingest(ByteBuffer()).isEmpty)
        #expect(Self.totals(store) == [0, 0, 0])
    }

    // MARK: subscriptions

    /// The envelopes of a delivery's STREAM frames (a drop notice comes in
    /// a frame of its own, in front), checking every frame's header.
    static func streamEnvelopes(_ delivery: EnvelopeStore.Delivery, id: UInt64) throws -> [Loggregator_V2_Envelope] {
        try streamFrames(delivery).flatMap { header, payload in
            #expect(header.type == .stream)
            #expect(header.sequence == id)
            #expect(header.flags == [])
            return try decodeBatch(payload)
        }
    }

    static func streamFrames(_ delivery: EnvelopeStore.Delivery) throws -> [(FrameHeader, ByteBuffer)] {
        var rest = delivery.frame
        var frames: [(FrameHeader, ByteBuffer)] = []
        while let frame = try ParsedFrame.next(&rest, maxPayload: Int.max) { frames.append(frame) }
        #expect(rest.readableBytes == 0)
        return frames
    }

    @Test func subscribersGetTheirAppsEnvelopes() throws {
        let store = Self.store()
        let first = EmbeddedChannel()
        let second = EmbeddedChannel()
        defer {
            _ = try? first.finish()
            _ = try? second.finish()
        }
        store.subscribe(app: "A", id: 7, channel: first)
        store.subscribe(app: "B", id: 9, channel: second)
        store.subscribe(app: "A", id: 8, channel: second)

        let a = (0..<3).map { Make.log(app: "A", "a\($0)", timestamp: Int64($0)) }
        let b = [Make.log(app: "B", "b0")]
        let c = [Make.log(app: "C", "c0")]
        let deliveries = try Self.ingest(store, [a[0], b[0], c[0], a[1], a[2]])
        #expect(deliveries.count == 3)
        var byID: [UInt64: [Loggregator_V2_Envelope]] = [:]
        for delivery in deliveries {
            let id = try ParsedFrame(delivery.frame).header.sequence
            byID[id] = try Self.streamEnvelopes(delivery, id: id)
            let expectedChannel: EmbeddedChannel = id == 7 ? first : second
            #expect(delivery.channel === expectedChannel, "subscription \(id)")
        }
        #expect(byID[7] == a)
        #expect(byID[8] == a)
        #expect(byID[9] == b)

        // A batch with nothing for B delivers nothing to subscription 9.
        let onlyA = try Self.ingest(store, [Make.log(app: "A", "again")])
        #expect(Set(try onlyA.map { try ParsedFrame($0.frame).header.sequence }) == [7, 8])

        store.unsubscribeAll(channel: second)
        let afterUnsubscribe = try Self.ingest(store, [a[0], b[0]])
        #expect(afterUnsubscribe.count == 1)
        #expect(afterUnsubscribe.first.map { $0.channel === first } == true)
        #expect(try afterUnsubscribe.first.map { try Self.streamEnvelopes($0, id: 7) } == [a[0]])

        store.unsubscribe(id: 7, channel: first)
        #expect(try Self.ingest(store, [a[0], b[0]]).isEmpty)
        // The envelopes were stored all the same.
        #expect(try Self.recent(store, app: "B").envelopes == [b[0], b[0], b[0]])
    }

    /// What a stopped server held, handed on by a controller, is stored
    /// for reads and goes to no reader, firehose or not: they had it.
    @Test func historyIsStoredAndStreamedToNoOne() throws {
        let store = Self.store()
        let app = EmbeddedChannel()
        let firehose = EmbeddedChannel()
        defer {
            _ = try? app.finish()
            _ = try? firehose.finish()
        }
        store.subscribe(app: "A", id: 1, channel: app)
        store.subscribeFirehose(subscription: "nozzle", id: 2, channel: firehose)
        let old = (0..<3).map { Make.log(app: "A", "old\($0)", timestamp: Int64($0)) }
        #expect(try store.ingest(try Make.batch(old), history: true).isEmpty)
        let live = Make.log(app: "A", "live", timestamp: 10)
        #expect(try Self.ingest(store, [live]).count == 2)
        #expect(try Self.recent(store, app: "A").envelopes == old + [live])
    }

    @Test func unsubscribeTakesTheIdAndTheChannel() throws {
        let store = Self.store()
        let first = EmbeddedChannel()
        let second = EmbeddedChannel()
        defer {
            _ = try? first.finish()
            _ = try? second.finish()
        }
        store.subscribe(app: "A", id: 1, channel: first)
        store.subscribe(app: "A", id: 1, channel: second)
        store.unsubscribe(id: 1, channel: second)
        let deliveries = try Self.ingest(store, [Make.log(app: "A", "x")])
        #expect(deliveries.count == 1)
        #expect(deliveries.first.map { $0.channel === first } == true)
    }

    @Test func slowSubscriberGetsADropNoticeWhenItCatchesUp() throws {
        let store = Self.store()
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        store.subscribe(app: "A", id: 3, channel: channel)

        channel.isWritable = false
        let dropped = (0..<4).map { Make.log(app: "A", "dropped \($0)") }
        #expect(try Self.ingest(store, Array(dropped[0..<3])).isEmpty)
        #expect(try Self.ingest(store, [dropped[3]]).isEmpty)

        channel.isWritable = true
        let fresh = Make.log(app: "A", "fresh")
        let deliveries = try Self.ingest(store, [fresh])
        try #require(deliveries.count == 1)
        let envelopes = try Self.streamEnvelopes(deliveries[0], id: 3)
        try #require(envelopes.count == 2)
        let notice = envelopes[0]
        #expect(notice.sourceID == "A")
        #expect(notice.tags["source_type"] == Notice.sourceType)
        #expect(notice.tags["sluice_notice"] == "dropped")
        #expect(notice.log.type == .err)
        let text = String(decoding: notice.log.payload, as: UTF8.self)
        #expect(text.contains("4 messages dropped"), "\(text)")
        #expect(envelopes[1] == fresh)

        // Only once.
        let next = try Self.ingest(store, [fresh])
        #expect(try next.map { try Self.streamEnvelopes($0, id: 3) } == [[fresh]])
        // Dropped live, but kept for recent.
        #expect(try Self.recent(store, app: "A").envelopes == dropped + [fresh, fresh])
    }

    /// A stream frame is at most as large as the ingested frame it came from,
    /// so a receiver with the same `maxPayload` takes it, even when a drop
    /// notice is put in front.
    @Test
    func streamFrameWithANoticeStaysWithinTheFrameLimit() throws {
        let store = Self.store()
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        store.subscribe(app: "A", id: 3, channel: channel)
        channel.isWritable = false
        _ = try Self.ingest(store, [Make.log(app: "A", "lost")])
        channel.isWritable = true

        // One envelope whose batch is exactly the largest frame payload.
        let max = FrameHeader.defaultMaxPayload
        func makeBatch(payload: Int) throws -> ByteBuffer {
            try Make.batch([Make.log(app: "A", bytes: [UInt8](repeating: 0x7A, count: payload))])
        }
        var payload = max - 100
        payload -= try makeBatch(payload: payload).readableBytes - max
        let batch = try makeBatch(payload: payload)
        try #require(batch.readableBytes == max)

        let deliveries = try store.ingest(batch)
        try #require(deliveries.count == 1)
        let frames = try Self.streamFrames(deliveries[0])
        #expect(frames.count == 2)
        #expect(frames.allSatisfy { Int($0.0.length) <= max })
        let envelopes = try Self.streamEnvelopes(deliveries[0], id: 3)
        #expect(envelopes.count == 2)
        #expect(envelopes.first?.tags["sluice_notice"] == "dropped")
    }
}

/// What the store hands to an app's taps (its drains): its Log envelopes,
/// in order; not other apps', not metrics, not Sluice's own notices.
@Suite struct EnvelopeStoreDrainTests {
    @Test func drainsGetTheirAppsLogsOnly() throws {
        let store = EnvelopeStore()
        // Never run: the runner only queues, which is what is checked.
        let runner = try DrainRunner(
            id: "d1", app: "a", name: "d1", url: DrainURL(parsing: "syslog://127.0.0.1:9"), logger: Logger(label: "test"),
            report: { _, _ in })
        store.setTaps(["a": [runner]])
        _ = try store.ingest(
            Make.batch([
                Make.log(app: "a", "one"), Make.counter(app: "a"), Make.log(app: "b", "other app"),
                Make.log(app: "a", "two"),
            ]))
        store.ingestNotice(app: "a", text: "a notice for readers")
        #expect(runner.queuedCount == 2)
        store.setTaps([:])
        _ = try store.ingest(Make.batch([Make.log(app: "a", "after removal")]))
        #expect(runner.queuedCount == 2)
        #expect(store.totals.envelopes == 6)
    }
}

/// The firehose at a buffer server: every app's envelopes, split evenly
/// among the subscriptions that share an id, whole to each other id.
@Suite struct EnvelopeStoreFirehoseTests {
    @Test func readersSharingAnIdSplitEvenlyAndAnotherIdGetsAll() throws {
        let store = EnvelopeStore()
        let channels = (0..<4).map { _ in EmbeddedChannel() }
        defer { for channel in channels { _ = try? channel.finish() } }
        for index in 0..<3 { store.subscribeFirehose(subscription: "nozzle", id: UInt64(10 + index), channel: channels[index]) }
        store.subscribeFirehose(subscription: "audit", id: 20, channel: channels[3])
        #expect(store.firehoseSubscriptions == ["nozzle": 3, "audit": 1])
        let lines = (0..<300).map { Make.log(app: "app-\($0 % 7)", "line \($0)") }
        let deliveries = try store.ingest(try Make.batch(lines))
        var byID: [UInt64: [String]] = [:]
        for delivery in deliveries {
            let id = try ParsedFrame(delivery.frame).header.sequence
            byID[id, default: []] += try EnvelopeStoreTests.streamEnvelopes(delivery, id: id).map {
                String(decoding: $0.log.payload, as: UTF8.self)
            }
        }
        #expect(byID[20] == lines.map { String(decoding: $0.log.payload, as: UTF8.self) })
        let shares = [10, 11, 12].map { byID[UInt64($0)] ?? [] }
        #expect(shares.map(\.count) == [100, 100, 100])
        #expect(Set(shares.flatMap { $0 }).count == 300)

        // One leaves: the other two take its share.
        store.unsubscribe(id: 11, channel: channels[1])
        let more = try store.ingest(try Make.batch((0..<10).map { Make.log(app: "b", "more \($0)") }))
        let counts = try more.reduce(into: [UInt64: Int]()) { counts, delivery in
            let id = try ParsedFrame(delivery.frame).header.sequence
            counts[id, default: 0] += try EnvelopeStoreTests.streamEnvelopes(delivery, id: id).count
        }
        #expect(counts == [10: 5, 12: 5, 20: 10])
        store.unsubscribeAll(channel: channels[3])
        #expect(store.firehoseSubscriptions == ["nozzle": 2])
    }
}
