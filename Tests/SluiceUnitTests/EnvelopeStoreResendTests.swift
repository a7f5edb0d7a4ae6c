import NIOCore
import NIOEmbedded
import SluiceProto
import SluiceTransport
import SluiceWire
import Testing

@testable import SluiceServer

/// What a buffer server does with envelopes sent to it again after a
/// failure: it stores each once, per app, and streams a resend again.
@Suite struct EnvelopeStoreResendTests {
    func texts(_ store: EnvelopeStore, _ app: String) throws -> [String] {
        try EnvelopeStoreTests.recent(store, app: app).envelopes.map { String(decoding: $0.log.payload, as: UTF8.self) }
    }

    @Test func aFrameSentAgainIsStoredOnce() throws {
        let store = EnvelopeStore()
        let batch = try Make.batch([Make.log(app: "x", "1"), Make.log(app: "x", "2")])
        let part = [BatchPart(sender: 5, sequence: 9, count: 2)]
        _ = try store.ingest(batch, parts: part)
        _ = try store.ingest(batch, parts: part)
        #expect(try texts(store, "x") == ["1", "2"])
        // Identical lines of another frame are other lines.
        _ = try store.ingest(batch, parts: [BatchPart(sender: 5, sequence: 10, count: 2)])
        #expect(try texts(store, "x") == ["1", "2", "1", "2"])
    }

    /// A controller resends what was not acknowledged, which may be more
    /// than an app keeps: a frame the app has let go is still not new.
    @Test func aFrameSentAgainAfterTheAppLetItGoIsNotStoredAgain() throws {
        let store = EnvelopeStore(limits: .init(recentPerApp: 2))
        for sequence in 1...3 as ClosedRange<UInt64> {
            _ = try store.ingest(
                try Make.batch([Make.log(app: "x", "\(sequence)")]), parts: [BatchPart(sender: 5, sequence: sequence, count: 1)])
        }
        #expect(try texts(store, "x") == ["2", "3"])
        _ = try store.ingest(try Make.batch([Make.log(app: "x", "1")]), parts: [BatchPart(sender: 5, sequence: 1, count: 1)])
        #expect(try texts(store, "x") == ["2", "3"])
    }

    /// After a failover one sender frame's envelopes of two apps can reach
    /// one server as two parts, by two routes: the second is not a resend
    /// for the app it brings.
    @Test func anotherAppsPartOfTheSameFrameIsStored() throws {
        let store = EnvelopeStore()
        _ = try store.ingest(try Make.batch([Make.log(app: "y", "y1")]), parts: [BatchPart(sender: 5, sequence: 9, count: 1)])
        _ = try store.ingest(try Make.batch([Make.log(app: "x", "x1")]), parts: [BatchPart(sender: 5, sequence: 9, count: 1)])
        #expect(try texts(store, "x") == ["x1"])
        // The whole frame again, through another controller: nothing new.
        _ = try store.ingest(
            try Make.batch([Make.log(app: "x", "x1"), Make.log(app: "y", "y1")]),
            parts: [BatchPart(sender: 5, sequence: 9, count: 2)])
        #expect(try texts(store, "x") == ["x1"])
        #expect(try texts(store, "y") == ["y1"])
        // One part of a frame that goes back and forth between two apps.
        _ = try store.ingest(
            try Make.batch([Make.log(app: "x", "a"), Make.log(app: "y", "b"), Make.log(app: "x", "c")]),
            parts: [BatchPart(sender: 5, sequence: 11, count: 3)])
        #expect(try texts(store, "x") == ["x1", "a", "c"])
        #expect(try texts(store, "y") == ["y1", "b"])
    }

    /// A resend is streamed again: the first time may have gone out on a
    /// connection the controller dropped; readers skip what they got.
    @Test func aResendIsStreamedAgainButNotStored() throws {
        let store = EnvelopeStore()
        let channel = EmbeddedChannel()
        store.subscribe(app: "x", id: 3, channel: channel)
        let batch = try Make.batch([Make.log(app: "x", "1")])
        let part = [BatchPart(sender: 5, sequence: 9, count: 1)]
        #expect(try store.ingest(batch, parts: part).count == 1)
        #expect(try store.ingest(batch, parts: part).count == 1)
        #expect(store.totals.envelopes == 1)
        _ = try channel.finish()
    }
}
