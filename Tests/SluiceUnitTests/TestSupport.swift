import Foundation
import NIOCore
import SluiceTransport
import SluiceShipping
import SluiceProto
import SluiceWire
import SwiftProtobuf

/// A small seeded generator (SplitMix64) so that "random" tests are repeatable.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Envelopes and batches for the unit tests.
enum Make {
    static func log(
        app: String,
        _ text: String = "hello",
        timestamp: Int64 = 1_541_999_631_950_000_000,
        instance: String = "0",
        sourceType: String = "APP/PROC/WEB",
        type: Loggregator_V2_Log.TypeEnum = .out
    ) -> Loggregator_V2_Envelope {
        log(app: app, bytes: Array(text.utf8), timestamp: timestamp, instance: instance, sourceType: sourceType, type: type)
    }

    static func log(
        app: String,
        bytes: [UInt8],
        timestamp: Int64 = 1_541_999_631_950_000_000,
        instance: String = "0",
        sourceType: String = "APP/PROC/WEB",
        type: Loggregator_V2_Log.TypeEnum = .out
    ) -> Loggregator_V2_Envelope {
        var envelope = Loggregator_V2_Envelope()
        envelope.timestamp = timestamp
        envelope.sourceID = app
        envelope.instanceID = instance
        if !sourceType.isEmpty { envelope.tags = ["source_type": sourceType] }
        var log = Loggregator_V2_Log()
        log.payload = Data(bytes)
        log.type = type
        envelope.log = log
        return envelope
    }

    static func counter(app: String, timestamp: Int64 = 42) -> Loggregator_V2_Envelope {
        var envelope = Loggregator_V2_Envelope()
        envelope.sourceID = app
        envelope.timestamp = timestamp
        var counter = Loggregator_V2_Counter()
        counter.name = "requests"
        counter.delta = 3
        counter.total = 99
        envelope.counter = counter
        return envelope
    }

    static func bytes(_ envelope: Loggregator_V2_Envelope) throws -> [UInt8] {
        try envelope.serializedBytes()
    }

    static func buffer(_ bytes: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeBytes(bytes)
        return buffer
    }

    /// An `EnvelopeBatch` payload as serialized by SwiftProtobuf.
    static func batch(_ envelopes: [Loggregator_V2_Envelope]) throws -> ByteBuffer {
        var batch = Loggregator_V2_EnvelopeBatch()
        batch.batch = envelopes
        let bytes: [UInt8] = try batch.serializedBytes()
        return buffer(bytes)
    }

    /// A whole frame: header then payload.
    static func frame(
        _ type: FrameType, flags: FrameFlags = [], sequence: UInt64, payload: ByteBuffer
    ) -> ByteBuffer {
        var out = ByteBuffer()
        out.writeFrame(type: type, flags: flags, sequence: sequence, payload: payload)
        return out
    }
}

/// One frame read back from bytes with `FrameHeader.parse`.
struct ParsedFrame {
    var header: FrameHeader
    var payload: ByteBuffer

    /// Parses exactly one frame; the header's length must match the bytes.
    init(_ bytes: ByteBuffer, maxPayload: Int = FrameHeader.defaultMaxPayload) throws {
        var rest = bytes
        guard let (header, payload) = try Self.next(&rest, maxPayload: maxPayload), rest.readableBytes == 0 else {
            throw ParseProblem(text: "not exactly one frame: \(bytes.readableBytes) bytes")
        }
        self.header = header
        self.payload = payload
    }

    static func next(_ bytes: inout ByteBuffer, maxPayload: Int) throws -> (FrameHeader, ByteBuffer)? {
        guard bytes.readableBytes >= FrameHeader.size else { return nil }
        let header = try bytes.withUnsafeReadableBytes { raw in
            try FrameHeader.parse(UnsafeRawBufferPointer(rebasing: raw[0..<FrameHeader.size]), maxPayload: maxPayload)
        }
        guard bytes.readableBytes >= FrameHeader.size + Int(header.length) else {
            throw ParseProblem(text: "frame of \(header.length) bytes, only \(bytes.readableBytes - 16) there")
        }
        bytes.moveReaderIndex(forwardBy: FrameHeader.size)
        return (header, bytes.readSlice(length: Int(header.length))!)
    }

    /// The payload's batch (its parts trailer left out, if it has one)
    /// decoded as an `EnvelopeBatch` by SwiftProtobuf.
    func envelopes() throws -> [Loggregator_V2_Envelope] {
        try decodeBatch(Frame(header: header, payload: payload).batchAndParts().batch)
    }
}

struct ParseProblem: Error, CustomStringConvertible {
    var text: String
    var description: String { text }
}

/// Decodes a buffer's readable bytes as an `EnvelopeBatch` with SwiftProtobuf.
func decodeBatch(_ payload: ByteBuffer) throws -> [Loggregator_V2_Envelope] {
    let bytes = Array(payload.readableBytesView)
    return try Loggregator_V2_EnvelopeBatch(serializedBytes: bytes).batch
}

extension Array where Element == UInt8 {
    var data: Data { Data(self) }
}
