import NIOCore
import SluiceProto
import SluiceTransport
import SluiceWire
import SwiftProtobuf
import Testing

@testable import SluiceController
@testable import SluiceServer

/// Recent answers merged across servers and zones: by time, each envelope
/// once, identical lines every time.
@Suite struct RecentMergeTests {
    func envelope(_ text: String, at timestamp: Int64, _ identity: EnvelopeIdentity?) throws -> RecentEnvelope {
        RecentEnvelope(
            timestamp: timestamp, bytes: Make.buffer(try Make.bytes(Make.log(app: "a", text, timestamp: timestamp))),
            identity: identity)
    }

    func texts(_ list: [RecentEnvelope]) throws -> [String] {
        try list.map {
            String(decoding: try Loggregator_V2_Envelope(serializedBytes: Array($0.bytes.readableBytesView)).log.payload, as: UTF8.self)
        }
    }

    @Test func listsMergeByTimeKeepingListOrderOnTies() throws {
        let one = [try envelope("a1", at: 1, nil), try envelope("a3", at: 3, nil), try envelope("a5", at: 5, nil)]
        let two = [try envelope("b2", at: 2, nil), try envelope("b3", at: 3, nil)]
        #expect(try texts(RecentMerge.merge([one, two])) == ["a1", "b2", "a3", "b3", "a5"])
    }

    /// A frame that reached a server late (sent again after its owner
    /// left) is stored after newer lines; the answer is still in time
    /// order, ties in the order stored.
    @Test func aListThatArrivedOutOfOrderIsAnsweredInTimeOrder() throws {
        let late = [
            try envelope("a1", at: 1, nil), try envelope("a4", at: 4, nil), try envelope("a2", at: 2, nil),
            try envelope("a2'", at: 2, nil), try envelope("a3", at: 3, nil),
        ]
        let other = [try envelope("b2", at: 2, nil), try envelope("b5", at: 5, nil)]
        #expect(try texts(RecentMerge.merge([late])) == ["a1", "a2", "a2'", "a3", "a4"])
        #expect(try texts(RecentMerge.merge([late, other])) == ["a1", "a2", "a2'", "b2", "a3", "a4", "b5"])
    }

    /// Three identical lines at the same second (a Heroku-style sender with
    /// whole-second timestamps) are three lines, even when a stand-in
    /// holds them too.
    @Test func identicalLinesAreAllKeptAndACopyHeldTwiceIsTakenOnce() throws {
        let owner = try (0..<3).map { try envelope("heartbeat", at: 10, EnvelopeIdentity(sender: 9, sequence: 1, ordinal: UInt32($0))) }
        let standIn = try (1..<3).map { try envelope("heartbeat", at: 10, EnvelopeIdentity(sender: 9, sequence: 1, ordinal: UInt32($0))) }
        #expect(try texts(RecentMerge.merge([owner])) == ["heartbeat", "heartbeat", "heartbeat"])
        #expect(try texts(RecentMerge.merge([owner, standIn])) == ["heartbeat", "heartbeat", "heartbeat"])
        // Without identities nothing is taken for a copy.
        let anonymous = try (0..<2).map { _ in try envelope("heartbeat", at: 10, nil) }
        #expect(RecentMerge.merge([anonymous, anonymous]).count == 4)
    }

    /// A server's answer carries each envelope's identity; an answer cut by
    /// its limit starts mid-frame, and says so with the part's first ordinal.
    @Test func identitiesComeFromTheServersAnswer() throws {
        let store = EnvelopeStore()
        let batch = try Make.batch((0..<4).map { _ in Make.log(app: "a", "same", timestamp: 10) })
        _ = try store.ingest(batch, parts: [BatchPart(sender: 3, sequence: 8, count: 4)])
        let frames = try store.recentFrames(app: "a", limit: 3, sequence: 1).map { bytes in
            let parsed = try ParsedFrame(bytes)
            return Frame(header: parsed.header, payload: parsed.payload)
        }
        let answer = RecentMerge.envelopes(of: frames)
        #expect(answer.map(\.identity) == (1..<4).map { EnvelopeIdentity(sender: 3, sequence: 8, ordinal: UInt32($0)) })
        // The stand-in's full copy merged with it: four lines, not seven.
        let full = RecentMerge.envelopes(
            of: try store.recentFrames(app: "a", limit: 100, sequence: 2).map { bytes in
                let parsed = try ParsedFrame(bytes)
                return Frame(header: parsed.header, payload: parsed.payload)
            })
        #expect(RecentMerge.merge([answer, full]).count == 4)
    }
}

/// `AckGate`: a buffer server's acknowledgement waits for the writes that
/// hand what it acknowledges to other controllers' readers.
@Suite struct AckGateTests {
    @Test func aBurstWithoutOtherWritesIsAcknowledgedAtOnce() {
        var gate = AckGate()
        #expect(gate.burstEnded(taken: 3, writes: 0).ack == 3)
        #expect(gate.burstEnded(taken: 3, writes: 0).ack == nil)  // nothing new
        #expect(gate.burstEnded(taken: 5, writes: 0).ack == 5)
    }

    @Test func anAcknowledgementWaitsForItsWritesAndForTheBurstsBeforeIt() {
        var gate = AckGate()
        let first = gate.burstEnded(taken: 2, writes: 2)
        #expect(first.ack == nil)
        let second = gate.burstEnded(taken: 4, writes: 0)
        #expect(second.ack == nil)  // after the first
        #expect(gate.writeFinished(burst: first.burst) == nil)
        #expect(gate.writeFinished(burst: first.burst) == 4)  // both go at once
        #expect(gate.acknowledged == 4)
        #expect(gate.writeFinished(burst: first.burst) == nil)
    }

    /// Writes to a controller that stopped reading hold the acknowledgement
    /// up only until the burst expires.
    @Test func anExpiredBurstIsAcknowledgedWithoutItsWrites() {
        var gate = AckGate()
        let stuck = gate.burstEnded(taken: 7, writes: 1)
        #expect(stuck.ack == nil)
        #expect(gate.expire(burst: stuck.burst) == 7)
        #expect(gate.writeFinished(burst: stuck.burst) == nil)
        #expect(gate.expire(burst: stuck.burst) == nil)
    }
}
