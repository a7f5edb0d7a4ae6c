import Foundation
import NIOCore
import SluiceProto
import SluiceTransport
import SluiceShipping
import SluiceWire
import SwiftProtobuf
import Testing

/// `ShipperQueue`: envelopes written into batch frames, the oldest dropped
/// when over capacity, and the drops told first.
@Suite struct ShipperQueueTests {
    /// 2026-11-24T08:00:00Z, in ns.
    static let base: Int64 = 1_795_507_200_000_000_000

    /// The time of append `index`: one millisecond apart.
    static func time(_ index: Int) -> Int64 {
        base + Int64(index) * 1_000_000
    }

    /// The payload of envelope `index`, all of the same length.
    static func payload(_ index: Int) -> String {
        index < 10 ? "line 00\(index)" : index < 100 ? "line 0\(index)" : "line \(index)"
    }

    static func fields(_ app: String) -> LogEnvelopeFields {
        LogEnvelopeFields(sourceID: app)
    }

    /// Appends envelope `index` of `app`, at `time(index)`.
    static func append(_ queue: inout ShipperQueue, app: String, index: Int) -> Bool {
        let bytes = Array(Self.payload(index).utf8)
        let fields = Self.fields(app)
        let timestamp = Self.time(index)
        return queue.append(app: app, now: timestamp) { buffer in
            bytes.withUnsafeBytes { buffer.writeLogEnvelopeEntry(fields, timestamp: timestamp, payload: $0) }
        }
    }

    /// The bytes envelope `index` of `app` takes in a batch.
    static func entryLength(app: String, index: Int) -> Int {
        var buffer = ByteBuffer()
        Array(Self.payload(index).utf8).withUnsafeBytes {
            buffer.writeLogEnvelopeEntry(Self.fields(app), timestamp: Self.time(index), payload: $0)
        }
        return buffer.readableBytes
    }

    /// The envelope `append(app:index:)` wrote, built with SwiftProtobuf.
    static func expected(app: String, index: Int) -> Loggregator_V2_Envelope {
        Make.log(app: app, Self.payload(index), timestamp: Self.time(index))
    }

    /// A taken frame: its header checked, its payload decoded.
    static func unpack(_ frame: ByteBuffer) throws -> [Loggregator_V2_Envelope] {
        var rest = frame
        let parsed = rest.readFrameHeaderUnchecked()
        let header = try #require(parsed)
        #expect(Int(header.length) == rest.readableBytes)
        #expect(header.type == .envelopes)
        #expect(header.version == FrameHeader.currentVersion)
        #expect(header.flags == [])
        #expect(header.sequence == 0)
        return try Loggregator_V2_EnvelopeBatch(serializedBytes: Array(rest.readableBytesView)).batch
    }

    static func text(_ envelope: Loggregator_V2_Envelope) -> String {
        String(decoding: envelope.log.payload, as: UTF8.self)
    }

    /// Seals what is open and takes every frame left, decoded.
    static func drain(_ queue: inout ShipperQueue, now: Int64) throws -> [[Loggregator_V2_Envelope]] {
        queue.seal()
        var frames: [[Loggregator_V2_Envelope]] = []
        while let frame = queue.take(now: now) { frames.append(try Self.unpack(frame)) }
        return frames
    }

    @Test func appendSealTakeGivesAValidFrame() throws {
        var queue = ShipperQueue(capacity: 1 << 20, batchCount: 100, noticeDelay: 0)
        #expect(queue.isEmpty)
        let apps = ["app-1", "app-2", "app-1"]
        for (index, app) in apps.enumerated() { _ = Self.append(&queue, app: app, index: index) }
        let length = Self.entryLength(app: "app-1", index: 0)
        #expect(queue.count == 3)
        #expect(queue.bytes == 3 * length)
        #expect(queue.openSince == Self.time(0))
        #expect(!queue.isEmpty)

        // Nothing is sealed yet.
        #expect(!queue.hasFullBatch)
        let early = queue.take(now: Self.time(9))
        #expect(early == nil)

        queue.seal()
        #expect(queue.hasFullBatch)
        #expect(queue.openSince == nil)
        let taken = queue.take(now: Self.time(9))
        let frame = try #require(taken)
        #expect(frame.readableBytes == FrameHeader.size + 3 * length)
        let envelopes = try Self.unpack(frame)
        let expected = apps.enumerated().map { Self.expected(app: $0.element, index: $0.offset) }
        #expect(envelopes == expected)
        #expect(envelopes.map(Self.text) == ["line 000", "line 001", "line 002"])

        #expect(queue.count == 0)
        #expect(queue.bytes == 0)
        #expect(queue.isEmpty)
        #expect(queue.droppedTotal == 0)
        let after = queue.take(now: Self.time(10))
        #expect(after == nil)
    }

    @Test func batchesSealAtBatchCount() throws {
        var queue = ShipperQueue(capacity: 1 << 20, batchCount: 3, noticeDelay: 0)
        var returns: [Bool] = []
        for index in 0..<7 { returns.append(Self.append(&queue, app: "app", index: index)) }
        // True when an append begins a batch (0, 3, 6) or fills one (2, 5).
        #expect(returns == [true, false, true, true, false, true, true])
        #expect(queue.hasFullBatch)
        #expect(queue.count == 7)
        #expect(queue.openSince == Self.time(6))

        let first = queue.take(now: 0)
        let firstTexts = try Self.unpack(try #require(first)).map(Self.text)
        #expect(firstTexts == ["line 000", "line 001", "line 002"])
        let second = queue.take(now: 0)
        let secondTexts = try Self.unpack(try #require(second)).map(Self.text)
        #expect(secondTexts == ["line 003", "line 004", "line 005"])
        // The third batch is still open.
        #expect(!queue.hasFullBatch)
        let none = queue.take(now: 0)
        #expect(none == nil)
        #expect(queue.count == 1)
        let rest = try Self.drain(&queue, now: 0)
        let restTexts = rest.map { $0.map(Self.text) }
        #expect(restTexts == [["line 006"]])
        #expect(queue.isEmpty)
    }

    @Test func batchesSealAtBatchBytes() throws {
        let length = Self.entryLength(app: "app", index: 0)
        var queue = ShipperQueue(capacity: 1 << 20, batchCount: 1000, batchBytes: 2 * length, noticeDelay: 0)
        var returns: [Bool] = []
        for index in 0..<5 { returns.append(Self.append(&queue, app: "app", index: index)) }
        #expect(returns == [true, true, true, true, true])
        let frames = try Self.drain(&queue, now: 0)
        let texts = frames.map { $0.map(Self.text) }
        #expect(texts == [["line 000", "line 001"], ["line 002", "line 003"], ["line 004"]])
    }

    @Test func overCapacityTheOldestAreDroppedAndToldFirst() throws {
        let length = Self.entryLength(app: "a", index: 0)
        var queue = ShipperQueue(capacity: 5 * length, batchCount: 4, noticeDelay: 0)
        let apps = ["a", "a", "b", "a", "b", "c", "a", "c", "b", "c"]
        var returns: [Bool] = []
        for (index, app) in apps.enumerated() {
            #expect(Self.entryLength(app: app, index: index) == length)
            returns.append(Self.append(&queue, app: app, index: index))
            #expect(queue.bytes <= queue.capacity, "after \(index)")
            #expect(queue.bytes == queue.count * length, "after \(index)")
        }
        // Batches begin at 0, 4, 8 and fill at 3 and 7.
        #expect(returns == [true, false, false, true, true, false, false, true, true, false])
        // Five held, 0...4 dropped: a lost 0, 1, 3 (first at append 5), b lost 2, 4 (first at append 7).
        #expect(queue.count == 5)
        #expect(queue.bytes == 5 * length)
        #expect(queue.droppedTotal == 5)
        let drops = queue.pendingDrops
        #expect(drops.map(\.app) == ["a", "b"])
        #expect(drops.map(\.count) == [3, 2])
        #expect(drops.map(\.since) == [Self.time(5), Self.time(7)])

        // The notices come first, one per app, in the order of their first drop.
        let noticeTaken = queue.take(now: Self.time(20))
        let notices = try Self.unpack(try #require(noticeTaken))
        try #require(notices.count == 2)
        for (notice, (app, count, since)) in zip(notices, [("a", 3, 5), ("b", 2, 7)]) {
            #expect(notice.sourceID == app)
            #expect(notice.timestamp == Self.time(20))
            #expect(notice.tags["source_type"] == "SLUICE")
            #expect(notice.tags["sluice_notice"] == "agent_drop")
            #expect(notice.log.type == .err)
            let text = Self.text(notice)
            #expect(text.contains("Error L10"))
            #expect(text.contains(" \(count) messages dropped since 2026-11-24T08:00:00.00\(since)000Z"), "\(text)")
            #expect(text == Notice.dropText(count: count, sinceNanos: Self.time(since), reason: queue.dropReason))
        }
        #expect(queue.pendingDrops.isEmpty)
        #expect(queue.droppedTotal == 5)

        // Then the batch whose front was dropped: 5, 6, 7 with the header moved up past 4.
        let remainderTaken = queue.take(now: Self.time(21))
        let remainder = try #require(remainderTaken)
        #expect(remainder.readableBytes == FrameHeader.size + 3 * length)
        let held = try Self.unpack(remainder)
        let newest = (5...7).map { Self.expected(app: apps[$0], index: $0) }
        #expect(held == newest)
        #expect(queue.count == 2)

        // And the open batch: 8, 9.
        let last = try Self.drain(&queue, now: Self.time(22))
        try #require(last.count == 1)
        let stillOpen = (8...9).map { Self.expected(app: apps[$0], index: $0) }
        #expect(last[0] == stillOpen)
        #expect(queue.isEmpty)
        #expect(queue.bytes == 0)
    }

    @Test func dropsFromTheOnlyBatchSealItAndKeepItsTail() throws {
        let length = Self.entryLength(app: "x", index: 0)
        var queue = ShipperQueue(capacity: 3 * length, batchCount: 100, noticeDelay: 0)
        for index in 0..<5 { _ = Self.append(&queue, app: "x", index: index) }
        // 0 and 1 dropped; 2, 3 in a sealed batch and 4 open.
        #expect(queue.count == 3)
        #expect(queue.droppedTotal == 2)
        #expect(queue.pendingDrops.map(\.count) == [2])
        #expect(queue.pendingDrops.map(\.since) == [Self.time(3)])
        #expect(queue.hasFullBatch)
        #expect(queue.openSince == Self.time(4))

        let noticeTaken = queue.take(now: Self.time(5))
        let notices = try Self.unpack(try #require(noticeTaken))
        #expect(notices.map(\.sourceID) == ["x"])
        let noticeText = notices.first.map(Self.text) ?? ""
        #expect(noticeText.contains(" 2 messages dropped"), "\(noticeText)")

        let tailTaken = queue.take(now: Self.time(5))
        let tail = try #require(tailTaken)
        // The header sits right after the two dropped entries.
        #expect(tail.readableBytes == FrameHeader.size + 2 * length)
        let tailEnvelopes = try Self.unpack(tail)
        #expect(tailEnvelopes == [Self.expected(app: "x", index: 2), Self.expected(app: "x", index: 3)])

        let rest = try Self.drain(&queue, now: Self.time(5))
        #expect(rest == [[Self.expected(app: "x", index: 4)]])
        #expect(queue.isEmpty)
    }

    @Test func manyDropsAcrossBatchesKeepExactlyTheNewest() throws {
        // Uneven shares: a one in six, b two, c three.
        func app(_ index: Int) -> String { ["a", "b", "b", "c", "c", "c"][index % 6] }
        let length = Self.entryLength(app: "a", index: 100)
        var queue = ShipperQueue(capacity: 20 * length, batchCount: 7, noticeDelay: 0)
        // Indices 100..<300, so that every payload has the same length.
        for index in 100..<300 {
            _ = Self.append(&queue, app: app(index), index: index)
            #expect(queue.bytes <= queue.capacity)
            #expect(queue.count == min(index - 99, 20))
        }
        // 20 fit: 100..<280 were dropped, each when the 20th after it came.
        #expect(queue.droppedTotal == 180)
        var order: [String] = []
        var lost: [String: Int] = [:]
        var since: [String: Int64] = [:]
        for index in 100..<280 {
            lost[app(index), default: 0] += 1
            if since[app(index)] == nil {
                since[app(index)] = Self.time(index + 20)
                order.append(app(index))
            }
        }
        #expect(order == ["c", "a", "b"])
        let drops = queue.pendingDrops
        #expect(drops.map(\.app) == order)
        #expect(drops.map(\.count) == [90, 30, 60])
        #expect(drops.map(\.count) == order.map { lost[$0] ?? -1 })
        #expect(drops.map(\.since) == order.map { since[$0] ?? -1 })

        let frames = try Self.drain(&queue, now: Self.time(300))
        try #require(frames.count >= 2)
        // The notices, then every envelope still held, oldest first.
        #expect(frames[0].map(\.sourceID) == order)
        for notice in frames[0] {
            let text = Self.text(notice)
            let count = lost[notice.sourceID] ?? -1
            #expect(notice.tags["source_type"] == "SLUICE")
            #expect(notice.log.type == .err)
            #expect(text.contains(": \(count) messages dropped"), "\(text)")
        }
        let held = Array(frames.dropFirst().joined())
        let newest = (280..<300).map { Self.expected(app: app($0), index: $0) }
        #expect(held == newest)
        #expect(queue.isEmpty)
        #expect(queue.bytes == 0)
    }

    @Test func anEnvelopeLargerThanTheCapacityIsKeptAlone() throws {
        let length = Self.entryLength(app: "big", index: 0)
        var queue = ShipperQueue(capacity: 10, batchCount: 100, noticeDelay: 0)
        #expect(length > 10)
        _ = Self.append(&queue, app: "big", index: 0)
        // Never drop the last envelope: it is kept though over the capacity.
        #expect(queue.count == 1)
        #expect(queue.droppedTotal == 0)
        #expect(queue.pendingDrops.isEmpty)

        _ = Self.append(&queue, app: "big", index: 1)
        #expect(queue.count == 1)
        #expect(queue.droppedTotal == 1)
        #expect(queue.bytes == length)
        let frames = try Self.drain(&queue, now: Self.time(2))
        try #require(frames.count == 2)
        #expect(frames[0].map(\.sourceID) == ["big"])
        let noticeText = frames[0].first.map(Self.text) ?? ""
        #expect(noticeText.contains(" 1 messages dropped"), "\(noticeText)")
        #expect(frames[1] == [Self.expected(app: "big", index: 1)])
    }

    @Test func noticesWaitUntilDeliveryResumesOrASecondHasPassed() throws {
        let length = Self.entryLength(app: "x", index: 0)
        var queue = ShipperQueue(capacity: 4 * length, batchCount: 2)
        for index in 0..<8 { _ = Self.append(&queue, app: "x", index: index) }
        #expect(queue.droppedTotal == 4)
        #expect(queue.pendingDrops.map(\.since) == [Self.time(4)])
        // Still full, and within a second of the first drop: batches only.
        let batchTaken = queue.take(now: Self.time(8))
        let batch = try Self.unpack(try #require(batchTaken))
        #expect(batch.map(Self.text) == [Self.payload(4), Self.payload(5)])
        #expect(queue.hasPendingNotices)
        // Half empty: delivery has resumed, the notice goes first.
        let noticeTaken = queue.take(now: Self.time(9))
        let notice = try Self.unpack(try #require(noticeTaken))
        #expect(notice.map(Self.text).first?.contains(" 4 messages dropped") == true, "\(notice.map(Self.text))")
        #expect(!queue.hasPendingNotices)

        // Sustained overload: the queue stays full, and the notice goes a
        // second after the first drop it tells of.
        for index in 8..<12 { _ = Self.append(&queue, app: "x", index: index) }
        #expect(queue.droppedTotal == 6)
        let early = queue.take(now: Self.time(12))
        let earlyFrame = try Self.unpack(try #require(early))
        #expect(earlyFrame.allSatisfy { $0.tags["source_type"] != Notice.sourceType })
        for index in 12..<16 { _ = Self.append(&queue, app: "x", index: index) }
        #expect(queue.droppedTotal == 8)
        let due = queue.take(now: Self.time(10) + queue.noticeDelay)
        let dueFrame = try Self.unpack(try #require(due))
        #expect(dueFrame.map(Self.text).first?.contains(" 4 messages dropped") == true, "\(dueFrame.map(Self.text))")
    }

    /// Appends a Log envelope of `size` payload bytes for `app`.
    static func append(_ queue: inout ShipperQueue, app: String, size: Int, index: Int) {
        let payload = [UInt8](repeating: UInt8(ascii: "a"), count: size)
        let fields = Self.fields(app)
        payload.withUnsafeBytes { bytes in
            _ = queue.append(app: app, now: Self.time(index)) {
                $0.writeLogEnvelopeEntry(fields, timestamp: Self.time(index), payload: bytes)
            }
        }
    }

    @Test func aFrameStaysWithinItsBytesOrHoldsOneEnvelopeAndHugeOnesAreRefused() throws {
        var probe = ByteBuffer()
        [UInt8](repeating: 0, count: 20).withUnsafeBytes {
            probe.writeLogEnvelopeEntry(Self.fields("s"), timestamp: Self.time(0), payload: $0)
        }
        // Room for three small envelopes and not a byte more than that.
        let batchBytes = 3 * probe.readableBytes + 1
        var queue = ShipperQueue(
            capacity: 1 << 20, batchCount: 100, batchBytes: batchBytes, noticeDelay: 0, maxEntryBytes: 4096)
        for index in 0..<3 { Self.append(&queue, app: "s", size: 20, index: index) }
        Self.append(&queue, app: "s", size: 1000, index: 3)
        Self.append(&queue, app: "s", size: 20, index: 4)
        Self.append(&queue, app: "s", size: 5000, index: 5)
        #expect(queue.refusedTotal == 1)
        #expect(queue.count == 5)
        let frames = try Self.drain(&queue, now: Self.time(6))
        #expect(frames.map(\.count) == [3, 1, 1])
        #expect(frames.map { $0.map(\.log.payload.count) } == [[20, 20, 20], [1000], [20]])
    }

    @Test func manyAppsNoticesAreSplitOverFrames() throws {
        let length = Self.entryLength(app: "app-00", index: 0)
        var queue = ShipperQueue(capacity: 2 * length, batchCount: 1, batchBytes: 300, noticeDelay: 0)
        for index in 0..<22 { _ = Self.append(&queue, app: "app-\(index < 10 ? "0" : "")\(index)", index: index) }
        #expect(queue.droppedTotal == 20)
        var notices: [Loggregator_V2_Envelope] = []
        var noticeFrames = 0
        while queue.hasPendingNotices {
            let taken = queue.take(now: Self.time(30))
            let frame = try Self.unpack(try #require(taken))
            #expect(frame.allSatisfy { $0.tags["source_type"] == Notice.sourceType })
            notices += frame
            noticeFrames += 1
        }
        #expect(noticeFrames > 1)
        #expect(notices.map(\.sourceID) == (0..<20).map { "app-\($0 < 10 ? "0" : "")\($0)" })
    }
}
