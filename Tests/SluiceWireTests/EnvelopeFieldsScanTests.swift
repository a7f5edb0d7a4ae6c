import Foundation
import SluiceProto
import SwiftProtobuf
import Testing

@testable import SluiceWire

@Suite struct EnvelopeFieldsScanTests {
    @Test func logEnvelopeWithTags() throws {
        let envelope = Fixture.log(source: "6d6b4f3c-app", timestamp: 1_541_999_631_950_000_000)
        let bytes: [UInt8] = try envelope.serializedBytes()
        let fields = try scan(bytes)
        #expect(sourceBytes(bytes, fields) == Array("6d6b4f3c-app".utf8))
        #expect(fields.timestamp == 1_541_999_631_950_000_000)
        #expect(fields.isLog)
    }

    @Test func envelopeWithoutTags() throws {
        let envelope = Fixture.log(source: "plain", timestamp: 99, instance: "", tags: [:])
        let bytes: [UInt8] = try envelope.serializedBytes()
        let fields = try scan(bytes)
        #expect(sourceBytes(bytes, fields) == Array("plain".utf8))
        #expect(fields.timestamp == 99)
    }

    @Test(arguments: [Fixture.counter(), Fixture.gauge(), Fixture.timer(), Fixture.event(), EnvelopeCodecTests.tagged()])
    func everyKind(_ envelope: Loggregator_V2_Envelope) throws {
        let bytes: [UInt8] = try envelope.serializedBytes()
        let fields = try scan(bytes)
        #expect(sourceBytes(bytes, fields) == Array(envelope.sourceID.utf8))
        #expect(fields.timestamp == envelope.timestamp)
        #expect(fields.isLog == (envelope.message.map { if case .log = $0 { true } else { false } } ?? false))
    }

    @Test func payloadThatLooksLikeFieldsIsSkipped() throws {
        // A payload holding what would be "source_id = evil, timestamp = 5" at the top level.
        let fake: [UInt8] = [0x12, 0x04, 0x65, 0x76, 0x69, 0x6C, 0x08, 0x05]
        let withSource = Fixture.log(source: "real", timestamp: 77, payload: fake + fake)
        let bytes: [UInt8] = try withSource.serializedBytes()
        let fields = try scan(bytes)
        #expect(sourceBytes(bytes, fields) == Array("real".utf8))
        #expect(fields.timestamp == 77)

        // Without a real source_id the fake one must not be found either.
        let withoutSource = Fixture.log(source: "", timestamp: 0, payload: fake, tags: ["k": "\u{12}\u{01}x"])
        let bare: [UInt8] = try withoutSource.serializedBytes()
        let bareFields = try scan(bare)
        #expect(bareFields.sourceID.isEmpty)
        #expect(bareFields.timestamp == 0)
    }

    @Test func missingSourceIDGivesEmptyRange() throws {
        var envelope = Fixture.counter(source: "", timestamp: 12)
        envelope.instanceID = "1"
        let bytes: [UInt8] = try envelope.serializedBytes()
        let fields = try scan(bytes)
        #expect(fields.sourceID.isEmpty)
        #expect(fields.timestamp == 12)

        let empty = try scan([])
        #expect(empty.sourceID.isEmpty)
        #expect(empty.timestamp == 0)

        // Present but empty.
        let explicit = try scan([0x12, 0x00, 0x08, 0x03])
        #expect(explicit.sourceID.isEmpty)
        #expect(explicit.timestamp == 3)
    }

    @Test(arguments: [Int64(-1), -1_541_999_631_950_000_000, Int64.min, Int64.max])
    func extremeTimestamps(_ timestamp: Int64) throws {
        let envelope = Fixture.log(source: "neg", timestamp: timestamp)
        let bytes: [UInt8] = try envelope.serializedBytes()
        let fields = try scan(bytes)
        #expect(fields.timestamp == timestamp)
        #expect(sourceBytes(bytes, fields) == Array("neg".utf8))
    }

    /// Hand-made envelopes that are valid protobuf; SwiftProtobuf is the oracle.
    static let handMade: [[UInt8]] = [
        // Unknown fields of every wire type before the two fields.
        [0x58, 0x01, 0x61] + [1, 2, 3, 4, 5, 6, 7, 8] + [0x6D, 1, 2, 3, 4] + [0x72, 0x01, 0x00]
            + [0x12, 0x02, 0x61, 0x62, 0x08, 0x05],
        // Timestamp and source_id twice: the last one wins.
        [0x12, 0x01, 0x61, 0x08, 0x01, 0x12, 0x02, 0x62, 0x62, 0x08, 0x02],
        // Tags and log before source_id.
        [0x4A, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x76, 0x22, 0x02, 0x10, 0x01, 0x12, 0x01, 0x7A],
        // Non-minimal varints for the timestamp and the length.
        [0x08, 0x81, 0x80, 0x00, 0x12, 0x81, 0x00, 0x63],
        // A ten-byte varint: -1.
        [0x08] + Array(repeating: 0xFF, count: 9) + [0x01],
        // Only fields Sluice does not read.
        [0x42, 0x01, 0x30, 0x52, 0x00],
    ]

    @Test(arguments: handMade)
    func agreesWithSwiftProtobuf(_ bytes: [UInt8]) throws {
        let decoded = try Loggregator_V2_Envelope(serializedBytes: bytes)
        let fields = try scan(bytes)
        #expect(sourceBytes(bytes, fields) == Array(decoded.sourceID.utf8))
        #expect(fields.timestamp == decoded.timestamp)
    }
}
