import Foundation
import NIOCore
import SluiceProto
import SluiceWire
import SwiftProtobuf
import Testing

@testable import SluiceTransport
import SluiceShipping

/// `BatchFrameBuilder` and the batch helpers on `ByteBuffer`.
@Suite struct BatchFrameBuilderTests {
    @Test func mixedAppendsParseBackInOrder() throws {
        let first = Make.log(app: "app-1", "from a ByteBuffer")
        let second = Make.counter(app: "app-2", timestamp: 5)
        let big = Make.log(app: "app-3", bytes: [UInt8](repeating: 0x41, count: 100_000), type: .err)
        var builder = BatchFrameBuilder(capacity: 64)
        #expect(builder.isEmpty)
        #expect(builder.payloadBytes == 0)

        builder.append(Make.buffer(try Make.bytes(first)))
        try Make.bytes(second).withUnsafeBytes { builder.append($0) }
        let logFields = LogEnvelopeFields(sourceID: "app-4", instanceID: "3", sourceType: "RTR", isError: true)
        Array("written from fields".utf8).withUnsafeBytes {
            builder.appendLog(logFields, timestamp: 1_700_000_000_000_000_000, payload: $0)
        }
        // Larger than the builder's initial capacity.
        try Make.bytes(big).withUnsafeBytes { builder.append($0) }
        #expect(builder.count == 4)
        #expect(!builder.isEmpty)
        let payloadBytes = builder.payloadBytes

        let frameResult = builder.finish(type: .envelopes, flags: .final, sequence: 0xDEAD_BEEF)
        let frame = try #require(frameResult)
        let parsed = try ParsedFrame(frame)
        #expect(parsed.header.type == .envelopes)
        #expect(parsed.header.flags == .final)
        #expect(parsed.header.version == FrameHeader.currentVersion)
        #expect(parsed.header.sequence == 0xDEAD_BEEF)
        #expect(Int(parsed.header.length) == payloadBytes)
        #expect(Int(parsed.header.length) == frame.readableBytes - FrameHeader.size)

        let fromFields = Make.log(
            app: "app-4", "written from fields", timestamp: 1_700_000_000_000_000_000, instance: "3",
            sourceType: "RTR", type: .err)
        #expect(try parsed.envelopes() == [first, second, fromFields, big])
    }

    @Test func payloadIsExactlyWhatSwiftProtobufWouldWrite() throws {
        let envelopes = (0..<20).map { Make.log(app: "app-\($0 % 3)", "line \($0)", timestamp: Int64($0)) }
        var builder = BatchFrameBuilder()
        for envelope in envelopes { builder.append(Make.buffer(try Make.bytes(envelope))) }
        let frameResult = builder.finish(type: .stream, sequence: 9)
        let frame = try #require(frameResult)
        let parsed = try ParsedFrame(frame)
        #expect(parsed.payload == (try Make.batch(envelopes)))
        #expect(parsed.header.flags == [])
    }

    @Test func finishWithNothingAppendedIsNilUnlessAllowed() throws {
        var builder = BatchFrameBuilder()
        let nothing = builder.finish(type: .stream, sequence: 1)
        #expect(nothing == nil)
        let stillNothing = builder.finish(type: .recentResponse, flags: .final, sequence: 1)
        #expect(stillNothing == nil)

        let emptyResult = builder.finish(type: .recentResponse, flags: .final, sequence: 12, allowEmpty: true)
        let empty = try #require(emptyResult)
        #expect(empty.readableBytes == FrameHeader.size)
        let parsed = try ParsedFrame(empty)
        #expect(parsed.header == FrameHeader(length: 0, type: .recentResponse, flags: .final, sequence: 12))
        #expect(try parsed.envelopes().isEmpty)
        #expect(builder.isEmpty)
    }

    @Test func builderIsEmptyAndReusableAfterFinish() throws {
        var builder = BatchFrameBuilder(capacity: 128)
        let a = Make.log(app: "a", "one")
        let b = Make.log(app: "b", "two")
        builder.append(Make.buffer(try Make.bytes(a)))
        let firstFrameResult = builder.finish(type: .stream, sequence: 1)
        let firstFrame = try #require(firstFrameResult)
        #expect(builder.isEmpty)
        #expect(builder.count == 0)
        #expect(builder.payloadBytes == 0)
        let nothing = builder.finish(type: .stream, sequence: 2)
        #expect(nothing == nil)

        builder.append(Make.buffer(try Make.bytes(b)))
        builder.append(Make.buffer(try Make.bytes(a)))
        #expect(builder.count == 2)
        let secondFrameResult = builder.finish(type: .stream, sequence: 2)
        let secondFrame = try #require(secondFrameResult)
        #expect(try ParsedFrame(secondFrame).envelopes() == [b, a])
        // The first frame is untouched by later use of the builder.
        #expect(try ParsedFrame(firstFrame).envelopes() == [a])
        #expect(try ParsedFrame(firstFrame).header.sequence == 1)
    }

    @Test func forEachEnvelopeGivesEachEnvelopesBytes() throws {
        let envelopes = [
            Make.log(app: "app-1", "x", timestamp: 11),
            Make.counter(app: "ünïcødé", timestamp: -3),
            Make.log(app: "app-3", bytes: [UInt8](repeating: 0xFF, count: 300), timestamp: 0),
            Loggregator_V2_Envelope(),
        ]
        let batch = try Make.batch(envelopes)
        var slices: [[UInt8]] = []
        var apps: [String] = []
        var timestamps: [Int64] = []
        try batch.forEachEnvelope { envelope, fields in
            slices.append(Array(envelope.readableBytesView))
            let app = envelope.getSlice(at: envelope.readerIndex + fields.sourceID.lowerBound, length: fields.sourceID.count)!
            apps.append(String(buffer: app))
            timestamps.append(fields.timestamp)
        }
        #expect(slices == (try envelopes.map { try Make.bytes($0) }))
        #expect(apps == ["app-1", "ünïcødé", "app-3", ""])
        #expect(timestamps == [11, -3, 0, 0])
    }

    @Test func forEachEnvelopeStartsAtTheReaderIndex() throws {
        let envelopes = [Make.log(app: "a", "1"), Make.log(app: "b", "22")]
        var builder = BatchFrameBuilder()
        for envelope in envelopes { builder.append(Make.buffer(try Make.bytes(envelope))) }
        let frameResult = builder.finish(type: .stream, sequence: 3)
        var frame = try #require(frameResult)
        frame.moveReaderIndex(forwardBy: FrameHeader.size)
        var slices: [[UInt8]] = []
        try frame.forEachEnvelope { envelope, _ in slices.append(Array(envelope.readableBytesView)) }
        #expect(slices == (try envelopes.map { try Make.bytes($0) }))
    }

    @Test func forEachEnvelopeRejectsAMalformedBatchWhole() throws {
        var batch = try Make.batch([Make.log(app: "a", "fine")])
        batch.writeBytes([0x0A, 0x05, 0x12, 0x01])  // an envelope whose length runs past the end
        var seen = 0
        let error = #expect(throws: WireError.self) {
            try batch.forEachEnvelope { _, _ in seen += 1 }
        }
        #expect(error?.code == .malformedBatch)
        #expect(seen == 0)
    }

    @Test func setFrameSequenceRewritesOnlyTheSequence() throws {
        var builder = BatchFrameBuilder()
        let envelope = Make.log(app: "a", "1")
        builder.append(Make.buffer(try Make.bytes(envelope)))
        let frameResult = builder.finish(type: .stream, flags: .final, sequence: 1)
        var frame = try #require(frameResult)
        frame.setFrameSequence(0x1122_3344_5566_7788)
        let parsed = try ParsedFrame(frame)
        #expect(parsed.header.sequence == 0x1122_3344_5566_7788)
        #expect(parsed.header.type == .stream)
        #expect(parsed.header.flags == .final)
        #expect(try parsed.envelopes() == [envelope])
    }
}
