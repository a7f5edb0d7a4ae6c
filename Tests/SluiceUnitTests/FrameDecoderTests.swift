import Foundation
import Foundation
import NIOCore
import NIOEmbedded
import NIOTestUtils
import SluiceProto
import SluiceWire
import SwiftProtobuf
import Testing

@testable import SluiceTransport
import SluiceShipping

/// `FrameDecoder`: cutting a byte stream into frames, and refusing bad headers.
@Suite struct FrameDecoderTests {
    /// A frame and the bytes it is sent as.
    static func sample(
        _ type: FrameType, flags: FrameFlags = [], sequence: UInt64, payload: [UInt8]
    ) -> (bytes: ByteBuffer, frame: Frame) {
        let body = Make.buffer(payload)
        let header = FrameHeader(length: UInt32(payload.count), type: type, flags: flags, sequence: sequence)
        return (Make.frame(type, flags: flags, sequence: sequence, payload: body), Frame(header: header, payload: body))
    }

    static func batchFrame(sequence: UInt64) throws -> (bytes: ByteBuffer, frame: Frame) {
        let payload = try Make.batch([
            Make.log(app: "app-1", "first"),
            Make.log(app: "app-2", "second", type: .err),
            Make.counter(app: "app-1"),
        ])
        return sample(.envelopes, sequence: sequence, payload: Array(payload.readableBytesView))
    }

    static func requestFrame(sequence: UInt64) throws -> (bytes: ByteBuffer, frame: Frame) {
        var request = Sluice_V1_StreamRequest()
        request.sourceID = "app-1"
        request.limit = 25
        let bytes: [UInt8] = try request.serializedBytes()
        return sample(.recentRequest, sequence: sequence, payload: bytes)
    }

    /// Three frames of different types, back to back.
    static func threeFrames() throws -> (bytes: ByteBuffer, frames: [Frame]) {
        let parts = [
            try batchFrame(sequence: 1),
            sample(.recentResponse, flags: .final, sequence: 2, payload: []),
            sample(.stream, sequence: UInt64.max, payload: Array(0..<200).map { UInt8($0) }),
        ]
        var all = ByteBuffer()
        for part in parts { all.writeImmutableBuffer(part.bytes) }
        return (all, parts.map(\.frame))
    }

    static func channel(maxPayload: Int = FrameHeader.defaultMaxPayload) throws -> EmbeddedChannel {
        EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxPayload: maxPayload)))
    }

    static func readAll(_ channel: EmbeddedChannel) throws -> [Frame] {
        var frames: [Frame] = []
        while let frame = try channel.readInbound(as: Frame.self) { frames.append(frame) }
        return frames
    }

    /// A 16-byte header with any bytes, for headers `FrameHeader` cannot build.
    static func rawHeader(length: UInt32, version: UInt8 = 1, type: UInt8, flags: UInt16 = 0, sequence: UInt64 = 1)
        -> ByteBuffer
    {
        var buffer = ByteBuffer()
        buffer.writeInteger(length)
        buffer.writeInteger(version)
        buffer.writeInteger(type)
        buffer.writeInteger(flags)
        buffer.writeInteger(sequence)
        return buffer
    }

    @Test func verifierAcceptsFramesOfEveryKind() throws {
        let pairs: [(ByteBuffer, [Frame])] = try [
            Self.batchFrame(sequence: 1),
            Self.requestFrame(sequence: 2),
            Self.sample(.subscribe, sequence: 3, payload: Array("app-9".utf8)),
            Self.sample(.unsubscribe, sequence: 3, payload: []),
            Self.sample(.recentResponse, flags: .final, sequence: 4, payload: []),
            Self.sample(.stream, flags: FrameFlags(rawValue: 0xFFFF), sequence: UInt64.max, payload: [0, 0xFF, 0x0A]),
        ].map { ($0.bytes, [$0.frame]) }
        // Two frames in one write as well.
        let (two, twoFrames) = try Self.threeFrames()
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: pairs + [(two, twoFrames)],
            decoderFactory: { FrameDecoder() })
    }

    @Test func decodedBatchPayloadIsTheBatch() throws {
        let (bytes, expected) = try Self.batchFrame(sequence: 77)
        let channel = try Self.channel()
        try channel.writeInbound(bytes)
        let frames = try Self.readAll(channel)
        try #require(frames.count == 1)
        #expect(frames[0] == expected)
        #expect(frames[0].header.type == .envelopes)
        #expect(frames[0].header.sequence == 77)
        let envelopes = try decodeBatch(frames[0].payload)
        #expect(envelopes.map(\.sourceID) == ["app-1", "app-2", "app-1"])
        #expect(envelopes[1].log.payload == Array("second".utf8).data)
        #expect(try channel.finish().isClean)
    }

    @Test func splitAtEveryBytePositionGivesTheSameFrames() throws {
        let (bytes, expected) = try Self.threeFrames()
        for split in 0...bytes.readableBytes {
            let channel = try Self.channel()
            let first = bytes.getSlice(at: bytes.readerIndex, length: split)!
            let second = bytes.getSlice(at: bytes.readerIndex + split, length: bytes.readableBytes - split)!
            try channel.writeInbound(first)
            let early = try Self.readAll(channel)
            try channel.writeInbound(second)
            let frames = early + (try Self.readAll(channel))
            #expect(frames == expected, "split at \(split)")
            // Frames that were whole after the first write came out then.
            let wholeAfterFirst = Self.wholeFrames(in: split, of: expected)
            #expect(early.count == wholeAfterFirst, "split at \(split)")
            #expect(try channel.finish().isClean, "split at \(split)")
        }
    }

    static func wholeFrames(in prefix: Int, of frames: [Frame]) -> Int {
        var end = 0
        var count = 0
        for frame in frames {
            end += FrameHeader.size + frame.payload.readableBytes
            if end <= prefix { count += 1 }
        }
        return count
    }

    @Test func headerWriterMatchesFrameHeaderBytes() {
        var buffer = ByteBuffer()
        buffer.writeFrameHeader(type: .stream, flags: .final, sequence: 0x0102_0304_0506_0708, length: 0x0A0B_0C0D)
        let header = FrameHeader(length: 0x0A0B_0C0D, type: .stream, flags: .final, sequence: 0x0102_0304_0506_0708)
        #expect(Array(buffer.readableBytesView) == header.bytes)
        #expect(
            header.bytes == [0x0A, 0x0B, 0x0C, 0x0D, 1, 6, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test(arguments: [
        (99 as UInt8, 1 as UInt8, "unknown_frame_type"),
        (0, 1, "unknown_frame_type"),
        (11, 1, "unknown_frame_type"),
        (1, 2, "unsupported_version"),
        (1, 0, "unsupported_version"),
    ])
    func badHeaderThrows(type: UInt8, version: UInt8, code: String) throws {
        let channel = try Self.channel()
        var bytes = Self.rawHeader(length: 3, version: version, type: type)
        bytes.writeBytes([1, 2, 3])
        let error = #expect(throws: WireError.self) { try channel.writeInbound(bytes) }
        #expect(error?.code.description == code)
        #expect(try Self.readAll(channel).isEmpty)
        _ = try? channel.finish()
    }

    @Test func unknownTypeCodeIsUnknownFrameType() throws {
        let channel = try Self.channel()
        let error = #expect(throws: WireError.self) {
            try channel.writeInbound(Self.rawHeader(length: 0, type: 99))
        }
        #expect(error?.code == .unknownFrameType)
        _ = try? channel.finish()
    }

    @Test func versionTwoIsUnsupported() throws {
        let channel = try Self.channel()
        let error = #expect(throws: WireError.self) {
            try channel.writeInbound(Self.rawHeader(length: 0, version: 2, type: FrameType.envelopes.rawValue))
        }
        #expect(error?.code == .unsupportedVersion)
        _ = try? channel.finish()
    }

    @Test func payloadOverTheLimitIsTooLarge() throws {
        // The header alone is refused: the decoder does not wait for the payload.
        let channel = try Self.channel()
        let over = UInt32(FrameHeader.defaultMaxPayload + 1)
        let error = #expect(throws: WireError.self) {
            try channel.writeInbound(Self.rawHeader(length: over, type: FrameType.envelopes.rawValue))
        }
        #expect(error?.code == .frameTooLarge)
        _ = try? channel.finish()

        let small = try Self.channel(maxPayload: 100)
        let smallError = #expect(throws: WireError.self) {
            try small.writeInbound(Self.rawHeader(length: 101, type: FrameType.stream.rawValue))
        }
        #expect(smallError?.code == .frameTooLarge)
        _ = try? small.finish()

        let huge = try Self.channel()
        let hugeError = #expect(throws: WireError.self) {
            try huge.writeInbound(Self.rawHeader(length: UInt32.max, type: FrameType.stream.rawValue))
        }
        #expect(hugeError?.code == .frameTooLarge)
        _ = try? huge.finish()
    }

    @Test func payloadOfExactlyTheLimitIsAccepted() throws {
        let channel = try Self.channel(maxPayload: 100)
        let (bytes, frame) = Self.sample(.stream, sequence: 5, payload: [UInt8](repeating: 7, count: 100))
        try channel.writeInbound(bytes)
        #expect(try Self.readAll(channel) == [frame])
        #expect(try channel.finish().isClean)
    }

    @Test func framesBeforeABadHeaderStillComeOut() throws {
        let channel = try Self.channel()
        let (good, frame) = Self.sample(.subscribe, sequence: 1, payload: [1, 2])
        var bytes = good
        bytes.writeImmutableBuffer(Self.rawHeader(length: 0, type: 99))
        #expect(throws: WireError.self) { try channel.writeInbound(bytes) }
        #expect(try Self.readAll(channel) == [frame])
        _ = try? channel.finish()
    }

    @Test(arguments: [1, 5, 15, 16, 17, 16 + 49])
    func endOfStreamInsideAFrameIsTruncated(cut: Int) throws {
        let channel = try Self.channel()
        let (first, firstFrame) = Self.sample(.stream, sequence: 1, payload: [9, 9])
        let (second, _) = Self.sample(.stream, sequence: 2, payload: [UInt8](repeating: 1, count: 50))
        var bytes = first
        bytes.writeImmutableBuffer(second.getSlice(at: 0, length: cut)!)
        try channel.writeInbound(bytes)
        #expect(try Self.readAll(channel) == [firstFrame])
        let error = #expect(throws: WireError.self) { try channel.finish() }
        #expect(error?.code == .truncatedFrame)
    }

    @Test func endOfStreamBetweenFramesIsClean() throws {
        let channel = try Self.channel()
        let (bytes, frames) = try Self.threeFrames()
        try channel.writeInbound(bytes)
        #expect(try Self.readAll(channel) == frames)
        #expect(try channel.finish().isClean)
    }
}
