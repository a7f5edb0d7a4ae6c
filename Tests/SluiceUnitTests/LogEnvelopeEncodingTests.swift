import Foundation
import NIOCore
import SluiceProto
import SluiceTransport
import SluiceWire
import SwiftProtobuf
import Testing

@testable import SluiceShipping

/// `writeLogEnvelopeEntry`: Log envelopes written field by field must be what
/// any protobuf decoder reads as the same envelope.
@Suite struct LogEnvelopeEncodingTests {
    static func entry(_ fields: LogEnvelopeFields, timestamp: Int64, payload: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        payload.withUnsafeBytes { buffer.writeLogEnvelopeEntry(fields, timestamp: timestamp, payload: $0) }
        return buffer
    }

    /// The envelope the fields stand for, built with SwiftProtobuf.
    static func expected(_ fields: LogEnvelopeFields, timestamp: Int64, payload: [UInt8]) -> Loggregator_V2_Envelope {
        Make.log(
            app: fields.sourceID, bytes: payload, timestamp: timestamp, instance: fields.instanceID,
            sourceType: fields.sourceType, type: fields.isError ? .err : .out)
    }

    /// Writes the entry, frames it as a batch, and decodes the one envelope.
    static func roundTrip(_ fields: LogEnvelopeFields, timestamp: Int64, payload: [UInt8]) throws
        -> Loggregator_V2_Envelope
    {
        var builder = BatchFrameBuilder(capacity: 256)
        payload.withUnsafeBytes { builder.appendLog(fields, timestamp: timestamp, payload: $0) }
        let frameResult = builder.finish(type: .envelopes, sequence: 1)
        let frame = try #require(frameResult)
        let envelopes = try ParsedFrame(frame).envelopes()
        try #require(envelopes.count == 1)
        // The raw entry alone is also a one-envelope batch.
        let alone = try decodeBatch(entry(fields, timestamp: timestamp, payload: payload))
        #expect(alone == envelopes)
        return envelopes[0]
    }

    static let payloadSizes = [0, 1, 127, 128, 16383, 16384, 70000]

    @Test(arguments: payloadSizes)
    func payloadsOfVarintBoundarySizes(size: Int) throws {
        var generator = SeededGenerator(seed: UInt64(size))
        let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let fields = LogEnvelopeFields(sourceID: "app-\(size)", instanceID: "4", sourceType: "APP/PROC/WEB")
        let decoded = try Self.roundTrip(fields, timestamp: 1_541_999_631_950_000_000, payload: payload)
        #expect(decoded == Self.expected(fields, timestamp: 1_541_999_631_950_000_000, payload: payload))
        #expect(decoded.log.payload.count == size)
        #expect(decoded.log.payload == payload.data)
    }

    @Test(arguments: [0 as Int64, 1, 127, 128, 1_541_999_631_950_000_000, Int64.max, -1, Int64.min])
    func timestamps(timestamp: Int64) throws {
        let fields = LogEnvelopeFields(sourceID: "app")
        let decoded = try Self.roundTrip(fields, timestamp: timestamp, payload: Array("t".utf8))
        #expect(decoded.timestamp == timestamp)
        #expect(decoded == Self.expected(fields, timestamp: timestamp, payload: Array("t".utf8)))
    }

    @Test func fieldsAreDecodedExactly() throws {
        let fields = LogEnvelopeFields(sourceID: "my-app", instanceID: "12", sourceType: "RTR", isError: true)
        let decoded = try Self.roundTrip(fields, timestamp: 99, payload: Array("GET / 200".utf8))
        #expect(decoded.sourceID == "my-app")
        #expect(decoded.instanceID == "12")
        #expect(decoded.tags == ["source_type": "RTR"])
        #expect(decoded.deprecatedTags.isEmpty)
        #expect(decoded.log.type == .err)
        #expect(decoded.log.payload == Array("GET / 200".utf8).data)
        #expect(decoded.timestamp == 99)
        #expect(decoded.unknownFields.data.isEmpty)
    }

    @Test func outIsTypeZero() throws {
        let fields = LogEnvelopeFields(sourceID: "a", isError: false)
        let decoded = try Self.roundTrip(fields, timestamp: 1, payload: [0x41])
        #expect(decoded.log.type == .out)
        guard case .log? = decoded.message else {
            Issue.record("not a Log envelope: \(decoded)")
            return
        }
    }

    @Test func emptyInstanceAndSourceTypeAreLeftOut() throws {
        let fields = LogEnvelopeFields(sourceID: "a", instanceID: "", sourceType: "")
        let decoded = try Self.roundTrip(fields, timestamp: 5, payload: Array("x".utf8))
        #expect(decoded.instanceID == "")
        #expect(decoded.tags.isEmpty)
        #expect(decoded == Self.expected(fields, timestamp: 5, payload: Array("x".utf8)))
    }

    @Test func emptySourceIDAndPayload() throws {
        let fields = LogEnvelopeFields(sourceID: "", instanceID: "", sourceType: "")
        let decoded = try Self.roundTrip(fields, timestamp: 0, payload: [])
        #expect(decoded == Self.expected(fields, timestamp: 0, payload: []))
        #expect(decoded.log.payload.isEmpty)
    }

    @Test func nonUTF8PayloadAndUnicodeFields() throws {
        let payload: [UInt8] = [0x00, 0xFF, 0xFE, 0xC3, 0x28, 0x80, 0x0A, 0xED, 0xA0, 0x80]
        let fields = LogEnvelopeFields(sourceID: "ünï-app", instanceID: "ø1", sourceType: "APP/PROC/WÉB")
        let decoded = try Self.roundTrip(fields, timestamp: 3, payload: payload)
        #expect(decoded.log.payload == payload.data)
        #expect(decoded.sourceID == "ünï-app")
        #expect(decoded.instanceID == "ø1")
        #expect(decoded.tags["source_type"] == "APP/PROC/WÉB")
    }

    /// With every field set and a payload, the field order is SwiftProtobuf's
    /// own (1, 2, 4, 8, 9), so the bytes must be identical.
    @Test(arguments: [false, true])
    func bytesEqualSwiftProtobufsOwn(isError: Bool) throws {
        let fields = LogEnvelopeFields(sourceID: "app-7", instanceID: "2", sourceType: "APP/PROC/WEB", isError: isError)
        for size in [1, 5, 100, 116, 117, 118, 119, 120, 127, 128, 129, 16_300, 16_360, 16_384, 70_000] {
            let payload = [UInt8](repeating: 0x61, count: size)
            let ours = Self.entry(fields, timestamp: 1_541_999_631_950_000_000, payload: payload)
            let envelope: [UInt8] = try Self.expected(fields, timestamp: 1_541_999_631_950_000_000, payload: payload)
                .serializedBytes()
            var theirs: [UInt8] = [0x0A]
            ProtoVarint.encode(UInt64(envelope.count)) { theirs.append($0) }
            theirs += envelope
            #expect(Array(ours.readableBytesView) == theirs, "payload of \(size) bytes")
        }
    }

    /// Every size from 0 to 300 and around 16 KiB, so that the payload, Log
    /// and envelope lengths each cross a varint boundary.
    @Test func sweepOfSizesDecodes() throws {
        let fields = LogEnvelopeFields(sourceID: "sweep", instanceID: "0", sourceType: "STG", isError: true)
        for size in Array(0...300) + Array(16_250...16_400) {
            let payload = [UInt8](repeating: UInt8(truncatingIfNeeded: size), count: size)
            let buffer = Self.entry(fields, timestamp: 42, payload: payload)
            let decoded = try decodeBatch(buffer)
            #expect(decoded == [Self.expected(fields, timestamp: 42, payload: payload)], "payload of \(size) bytes")
        }
    }

    @Test func entriesAppendToABatch() throws {
        var buffer = ByteBuffer()
        var expected: [Loggregator_V2_Envelope] = []
        for i in 0..<10 {
            let fields = LogEnvelopeFields(sourceID: "app-\(i % 2)", instanceID: "\(i)", isError: i % 3 == 0)
            let payload = Array("line \(i)".utf8)
            payload.withUnsafeBytes { buffer.writeLogEnvelopeEntry(fields, timestamp: Int64(i), payload: $0) }
            expected.append(Self.expected(fields, timestamp: Int64(i), payload: payload))
        }
        #expect(try decodeBatch(buffer) == expected)
        // Sluice's own scanner agrees.
        var apps: [String] = []
        try buffer.forEachEnvelope { envelope, fields in
            apps.append(
                String(buffer: envelope.getSlice(at: envelope.readerIndex + fields.sourceID.lowerBound, length: fields.sourceID.count)!))
        }
        #expect(apps == expected.map(\.sourceID))
    }

    @Test(arguments: [0 as UInt64, 1, 127, 128, 16383, 16384, UInt64(UInt32.max), UInt64.max])
    func writeVarintMatchesProtoVarint(value: UInt64) {
        var buffer = ByteBuffer()
        buffer.writeVarint(value)
        var expected: [UInt8] = []
        ProtoVarint.encode(value) { expected.append($0) }
        #expect(Array(buffer.readableBytesView) == expected)
        #expect(buffer.readableBytes == ProtoVarint.size(value))
        let sizes: [UInt64: Int] = [0: 1, 127: 1, 128: 2, 16383: 2, 16384: 3, UInt64.max: 10]
        if let size = sizes[value] { #expect(buffer.readableBytes == size) }
    }
}
