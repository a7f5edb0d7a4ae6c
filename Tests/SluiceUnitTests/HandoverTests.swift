import NIOCore
import NIOEmbedded
import SluiceProto
import SluiceTransport
import SluiceWire
import Testing

@testable import SluiceServer

/// A leaving server's history (`EnvelopeStore.handoverFrames`) taken in by
/// another server (`ingest(history:)`), and a renewed subscription's replay.
@Suite struct HandoverTests {
    /// `count` numbered lines of `app` from sender 7, `perFrame` to a sender frame, at times `start`, `start + 1`…
    static func ingestFrames(
        _ store: EnvelopeStore, app: String, count: Int, perFrame: Int, start: Int64, firstSequence: UInt64 = 1
    ) throws {
        var sequence = firstSequence
        for first in stride(from: 0, to: count, by: perFrame) {
            let envelopes = (first..<min(count, first + perFrame)).map {
                Make.log(app: app, "line \(Int(start) + $0)", timestamp: start + Int64($0))
            }
            _ = try store.ingest(
                try Make.batch(envelopes), parts: [BatchPart(sender: 7, sequence: sequence, count: UInt32(envelopes.count))])
            sequence += 1
        }
    }

    /// Takes every frame of a handover answer into `store` as history.
    static func takeIn(_ frames: [ByteBuffer], into store: EnvelopeStore) throws {
        for bytes in frames {
            let parsed = try ParsedFrame(bytes, maxPayload: 64 * 1024 * 1024)
            let (batch, parts) = try Frame(header: parsed.header, payload: parsed.payload).batchAndParts()
            guard !parts.isEmpty else { continue }
            _ = try store.ingest(batch, parts: parts, history: true, ordinals: true)
        }
    }

    static func texts(_ store: EnvelopeStore, app: String) throws -> [String] {
        try EnvelopeStoreTests.recent(store, app: app, limit: 100_000).envelopes.map { String(decoding: $0.log.payload, as: UTF8.self) }
    }

    @Test func theHistoryGoesInTimeOrderBeforeNewerLinesAlreadyThere() throws {
        let leaving = EnvelopeStoreTests.store()
        try Self.ingestFrames(leaving, app: "A", count: 50, perFrame: 10, start: 0)
        let taking = EnvelopeStoreTests.store()
        // The server taking over had newer lines of the app already.
        try Self.ingestFrames(taking, app: "A", count: 20, perFrame: 10, start: 1000, firstSequence: 100)
        let frames = leaving.handoverFrames(sequence: 9)
        let last = try ParsedFrame(frames.last!)
        #expect(last.header.flags.contains(.final) && last.header.type == .recentResponse && last.header.sequence == 9)
        try Self.takeIn(frames, into: taking)
        #expect(try Self.texts(taking, app: "A") == (0..<50).map { "line \($0)" } + (1000..<1020).map { "line \($0)" })
        // Each envelope keeps its identity: a merge with the leaving
        // server's own answer would take each once.
        let before = try EnvelopeStoreTests.recent(leaving, app: "A").frames.flatMap { try Frame(header: $0.header, payload: $0.payload).batchAndParts().parts }
        let after = try EnvelopeStoreTests.recent(taking, app: "A", limit: 100_000).frames.flatMap { try Frame(header: $0.header, payload: $0.payload).batchAndParts().parts }
        let beforeIDs = before.flatMap { part in (0..<part.count).map { part.identity(at: $0) } }
        let afterIDs = Array(after.flatMap { part in (0..<part.count).map { part.identity(at: $0) } }.prefix(50))
        #expect(afterIDs == beforeIDs)
    }

    @Test func aSenderFramesRunSplitAcrossHistoryFramesIsKeptWhole() throws {
        // Small frames: runs of 40 lines are cut across them.
        let leaving = EnvelopeStoreTests.store(maxFramePayload: 1024)
        try Self.ingestFrames(leaving, app: "A", count: 200, perFrame: 40, start: 0)
        let frames = leaving.handoverFrames(sequence: 1)
        #expect(frames.count > 6)
        let taking = EnvelopeStoreTests.store()
        try Self.takeIn(frames, into: taking)
        #expect(try Self.texts(taking, app: "A") == (0..<200).map { "line \($0)" })
        // The same history again (a second controller of the zone) is stored once.
        try Self.takeIn(frames, into: taking)
        #expect(try Self.texts(taking, app: "A") == (0..<200).map { "line \($0)" })
    }

    @Test func twoControllersHandingTheSameHistoryInterleavedStoreItOnce() throws {
        let leaving = EnvelopeStoreTests.store(maxFramePayload: 1024)
        try Self.ingestFrames(leaving, app: "A", count: 200, perFrame: 40, start: 0)
        let first = leaving.handoverFrames(sequence: 1)
        let second = leaving.handoverFrames(sequence: 2)
        let taking = EnvelopeStoreTests.store()
        for (one, other) in zip(first, second) { try Self.takeIn([one, other], into: taking) }
        #expect(try Self.texts(taking, app: "A") == (0..<200).map { "line \($0)" })
    }

    /// Envelopes without identity (Sluice's notices) are given one in the
    /// handover, the same in each controller's answer: taken in twice,
    /// they are stored once; and the history sent on again by the server
    /// that took them keeps those identities.
    @Test func noticesHandedOverByTwoControllersAreStoredOnce() throws {
        let leaving = EnvelopeStoreTests.store()
        try Self.ingestFrames(leaving, app: "A", count: 20, perFrame: 10, start: 0)
        leaving.ingestNotice(app: "A", text: "first notice")
        leaving.ingestNotice(app: "A", text: "second notice")
        let first = leaving.handoverFrames(sequence: 1)
        let second = leaving.handoverFrames(sequence: 2)
        let taking = EnvelopeStoreTests.store()
        try Self.takeIn(first, into: taking)
        try Self.takeIn(second, into: taking)
        let expected = (0..<20).map { "line \($0)" } + ["first notice", "second notice"]
        #expect(try Self.texts(taking, app: "A") == expected)
        let next = EnvelopeStoreTests.store()
        try Self.takeIn(taking.handoverFrames(sequence: 1), into: next)
        try Self.takeIn(taking.handoverFrames(sequence: 2), into: next)
        try Self.takeIn(second, into: next)
        #expect(try Self.texts(next, app: "A") == expected)
    }

    /// Two parts of one sender frame with a gap between their ordinals
    /// (what a merge leaves) keep their own ordinals, here and at the next
    /// server: the envelopes between were not these.
    @Test func partsOfOneSenderFrameWithAGapKeepTheirOrdinals() throws {
        let store = EnvelopeStoreTests.store()
        let envelopes = (0..<7).map { Make.log(app: "A", "line \($0)", timestamp: Int64($0)) }
        _ = try store.ingest(
            try Make.batch(envelopes),
            parts: [
                BatchPart(sender: 7, sequence: 1, count: 3, first: 0), BatchPart(sender: 7, sequence: 1, count: 4, first: 6),
            ], history: true, ordinals: true)
        func ordinals(_ store: EnvelopeStore) throws -> [UInt32] {
            let parts = try EnvelopeStoreTests.recent(store, app: "A").frames.flatMap {
                try Frame(header: $0.header, payload: $0.payload).batchAndParts().parts
            }
            return parts.flatMap { part in (0..<part.count).map { part.identity(at: $0).ordinal } }
        }
        #expect(try ordinals(store) == [0, 1, 2, 6, 7, 8, 9])
        let next = EnvelopeStoreTests.store()
        try Self.takeIn(store.handoverFrames(sequence: 1), into: next)
        #expect(try ordinals(next) == [0, 1, 2, 6, 7, 8, 9])
        #expect(try Self.texts(next, app: "A") == (0..<7).map { "line \($0)" })
    }

    /// A dead server's last seconds come as the link's own batches, whose
    /// parts may hold several apps' envelopes of one sender frame: each
    /// app's ordinals count from its own first envelope, as at the server
    /// that had them.
    @Test func historyWithoutOrdinalsCountsEachAppsOwn() throws {
        let store = EnvelopeStoreTests.store()
        let envelopes = ["A", "A", "A", "B", "B"].enumerated().map {
            Make.log(app: $0.element, "\($0.element) \($0.offset)", timestamp: Int64($0.offset))
        }
        _ = try store.ingest(try Make.batch(envelopes), parts: [BatchPart(sender: 7, sequence: 1, count: 5)], history: true)
        for (app, count) in [("A", 3), ("B", 2)] {
            let parts = try EnvelopeStoreTests.recent(store, app: app).frames.flatMap {
                try Frame(header: $0.header, payload: $0.payload).batchAndParts().parts
            }
            let ordinals = parts.flatMap { part in (0..<part.count).map { part.identity(at: $0).ordinal } }
            #expect(ordinals == (0..<UInt32(count)).map { $0 }, "\(app)")
        }
    }

    @Test func theHistoryIsGivenOnlyWhileLeavingOnceToEachControllerOfTheZone() {
        let roster = ControllerRoster(zone: "z1")
        let own = EmbeddedChannel()
        let other = EmbeddedChannel()
        let stranger = EmbeddedChannel()
        defer {
            _ = try? own.finish()
            _ = try? other.finish()
            _ = try? stranger.finish()
        }
        roster.hello(own, zone: "z1")
        roster.hello(own, zone: "z1")
        roster.hello(other, zone: "z2")
        #expect(roster.count == 1)
        #expect(!roster.mayHandOver(own))
        roster.startLeaving()
        #expect(!roster.mayHandOver(other))
        #expect(!roster.mayHandOver(stranger))
        #expect(roster.mayHandOver(own))
        #expect(!roster.mayHandOver(own))
    }

    @Test func aPartWhoseOrdinalsOverflowIsMalformed() {
        var payload = ByteBuffer()
        payload.writeInteger(UInt64(7))
        payload.writeInteger(UInt64(1))
        payload.writeInteger(UInt32.max)
        payload.writeInteger(UInt32(2))
        payload.writeInteger(UInt32(1))
        let error = #expect(throws: WireError.self) { try Frame.split(identified: payload, ordinals: true) }
        #expect(error?.code == .malformedBatch)
    }

    @Test func aRenewedSubscriptionGetsWhatWasStoredSinceItsTimeFirstInWholeSenderFrames() throws {
        let store = EnvelopeStoreTests.store(maxFramePayload: 1024)
        try Self.ingestFrames(store, app: "A", count: 100, perFrame: 20, start: 0)
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        let replay = store.subscribe(app: "A", id: 5, channel: channel, since: 30)
        var texts: [String] = []
        var senderFrames: [UInt64] = []
        for bytes in replay {
            let parsed = try ParsedFrame(bytes)
            #expect(parsed.header.type == .stream && parsed.header.sequence == 5)
            let (_, parts) = try Frame(header: parsed.header, payload: parsed.payload).batchAndParts()
            senderFrames += parts.map(\.sequence)
            texts += try parsed.envelopes().map { String(decoding: $0.log.payload, as: UTF8.self) }
        }
        #expect(texts == (30..<100).map { "line \($0)" })
        // Each sender frame in one part, never cut between two frames.
        #expect(senderFrames == [2, 3, 4, 5])
        // Without a time, nothing is replayed; live lines go to both.
        #expect(store.subscribe(app: "A", id: 6, channel: channel).isEmpty)
    }
}
