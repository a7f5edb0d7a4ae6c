import NIOCore
import SluiceWire

/// One frame of the link protocol: its header and its payload bytes, a slice
/// of the buffer it arrived in.
public struct Frame: Hashable, Sendable {
    public var header: FrameHeader
    public var payload: ByteBuffer

    public init(header: FrameHeader, payload: ByteBuffer) {
        self.header = header
        self.payload = payload
    }
}

extension ByteBuffer {
    /// Writes a frame header in front of `length` payload bytes.
    @inlinable
    public mutating func writeFrameHeader(
        type: FrameType, flags: FrameFlags = [], sequence: UInt64, length: Int
    ) {
        writeInteger(UInt32(length))
        writeInteger(FrameHeader.currentVersion)
        writeInteger(type.rawValue)
        writeInteger(flags.rawValue)
        writeInteger(sequence)
    }

    /// Writes a whole frame: header, then a copy of `payload`'s readable bytes.
    public mutating func writeFrame(
        type: FrameType, flags: FrameFlags = [], sequence: UInt64, payload: ByteBuffer
    ) {
        writeFrameHeader(type: type, flags: flags, sequence: sequence, length: payload.readableBytes)
        writeImmutableBuffer(payload)
    }

    /// Appends one envelope's bytes to an `EnvelopeBatch` being built in this
    /// buffer: the tag of field 1, the length, the bytes.
    @inlinable
    public mutating func writeBatchEntry(_ envelope: ByteBuffer) {
        writeBatchEntryHeader(length: envelope.readableBytes)
        writeImmutableBuffer(envelope)
    }

    @inlinable
    public mutating func writeBatchEntry(_ envelope: UnsafeRawBufferPointer) {
        writeBatchEntryHeader(length: envelope.count)
        writeBytes(envelope)
    }

    /// A protobuf varint.
    @inlinable
    public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        writeInteger(UInt8(v))
    }

    @inlinable
    public mutating func writeBatchEntryHeader(length: Int) {
        writeInteger(ProtoVarint.batchEnvelopeTag)
        writeVarint(UInt64(length))
    }

    /// `withUnsafeReadableBytes` for a body with a typed error.
    public func withUnsafeReadableBytesTyped<T>(
        _ body: (UnsafeRawBufferPointer) throws(WireError) -> T
    ) throws(WireError) -> T {
        let result: Result<T, WireError> = withUnsafeReadableBytes { bytes in
            Result { () throws(WireError) -> T in try body(bytes) }
        }
        return try result.get()
    }

    /// Calls `body` with a slice for each envelope of the `EnvelopeBatch` in
    /// this buffer's readable bytes, after checking the whole batch.
    public func forEachEnvelope(
        _ body: (_ envelope: ByteBuffer, _ fields: EnvelopeFields) -> Void
    ) throws(WireError) {
        let base = readerIndex
        try withUnsafeReadableBytesTyped { bytes throws(WireError) in
            try EnvelopeBatchScanner.forEach(in: bytes) { range, fields in
                body(getSlice(at: base + range.lowerBound, length: range.count)!, fields)
            }
        }
    }
}

/// A builder of one outgoing frame whose payload is an `EnvelopeBatch`: room
/// for the header is kept in front, envelopes are appended, `finish` fills
/// in the header. The buffer is allocated at the first append.
public struct BatchFrameBuilder: Sendable {
    private var buffer: ByteBuffer?
    private let allocator: ByteBufferAllocator
    private let capacity: Int
    public private(set) var count: Int = 0
    /// Where the envelopes came from, when the frame is IDENTIFIED.
    public private(set) var parts: [BatchPart] = []

    public init(allocator: ByteBufferAllocator = ByteBufferAllocator(), capacity: Int = 64 * 1024) {
        self.allocator = allocator
        self.capacity = capacity
    }

    public var isEmpty: Bool { count == 0 }
    /// Parts so far.
    public var partCount: Int { parts.count }
    /// Bytes of the payload so far, the parts' trailer included (parts of
    /// `BatchPart.size`; a frame finished with ordinals takes 4 more a part).
    public var payloadBytes: Int {
        (buffer?.readableBytes ?? FrameHeader.size) - FrameHeader.size + (parts.isEmpty ? 0 : parts.count * BatchPart.size + 4)
    }

    /// Envelopes appended from now on belong to this sender's frame (the
    /// same part goes on if it is the last one's). With `first`, the first
    /// of them has that ordinal (see `BatchPart.first`), and the last part
    /// goes on only if they follow its envelopes.
    public mutating func beginPart(sender: UInt64, sequence: UInt64, first: UInt32? = nil) {
        if let last = parts.last, last.sender == sender, last.sequence == sequence,
            first == nil || first == last.first &+ last.count
        {
            return
        }
        if let last = parts.last, last.count == 0 { parts.removeLast() }
        parts.append(BatchPart(sender: sender, sequence: sequence, count: 0, first: first ?? 0))
    }

    private mutating func counted() {
        count += 1
        if !parts.isEmpty { parts[parts.count - 1].count += 1 }
    }

    private mutating func prepare(for length: Int) {
        if buffer == nil {
            var fresh = allocator.buffer(capacity: Swift.max(capacity, length + FrameHeader.size + 16))
            fresh.moveWriterIndex(forwardBy: FrameHeader.size)
            buffer = fresh
        }
    }

    public mutating func append(_ envelope: ByteBuffer) {
        prepare(for: envelope.readableBytes)
        buffer!.writeBatchEntry(envelope)
        counted()
    }

    public mutating func append(_ envelope: UnsafeRawBufferPointer) {
        prepare(for: envelope.count)
        buffer!.writeBatchEntry(envelope)
        counted()
    }

    /// Appends one batch entry (tag, length, envelope) that `write` writes
    /// itself, with room for about `reserving` bytes made first.
    public mutating func appendEntry(reserving: Int, _ write: (inout ByteBuffer) -> Void) {
        prepare(for: reserving)
        write(&buffer!)
        counted()
    }

    /// The finished frame (nil if nothing was appended and `allowEmpty` is
    /// false); the builder starts over empty.
    public mutating func finish(
        type: FrameType, flags: FrameFlags = [], sequence: UInt64, allowEmpty: Bool = false, ordinals: Bool = false
    ) -> ByteBuffer? {
        if buffer == nil {
            guard allowEmpty else { return nil }
            prepare(for: 0)
        }
        var frame = buffer!
        var flags = flags
        let parts = self.parts.filter { $0.count > 0 }
        buffer = nil
        count = 0
        self.parts = []
        if !parts.isEmpty {
            for part in parts {
                frame.writeInteger(part.sender)
                frame.writeInteger(part.sequence)
                if ordinals { frame.writeInteger(part.first) }
                frame.writeInteger(part.count)
            }
            frame.writeInteger(UInt32(parts.count))
            flags.insert(.identified)
            if ordinals { flags.insert(.ordinals) }
        }
        let length = frame.readableBytes - FrameHeader.size
        let start = frame.readerIndex
        frame.setInteger(UInt32(length), at: start)
        frame.setInteger(FrameHeader.currentVersion, at: start + 4)
        frame.setInteger(type.rawValue, at: start + 5)
        frame.setInteger(flags.rawValue, at: start + 6)
        frame.setInteger(sequence, at: start + 8)
        return frame
    }
}

extension ByteBuffer {
    /// Reads the header of a frame this process built (no limits checked).
    public mutating func readFrameHeaderUnchecked() -> FrameHeader? {
        guard readableBytes >= FrameHeader.size,
            let header = try? withUnsafeReadableBytes({ bytes in
                try FrameHeader.parse(UnsafeRawBufferPointer(rebasing: bytes[0..<FrameHeader.size]), maxPayload: Int.max)
            })
        else { return nil }
        moveReaderIndex(forwardBy: FrameHeader.size)
        return header
    }

    /// Sets the sequence number of a frame that starts at the reader index.
    public mutating func setFrameSequence(_ sequence: UInt64) {
        setInteger(sequence, at: readerIndex + 8)
    }
}

extension Frame {
    /// The batch and, for an IDENTIFIED frame, its parts (empty otherwise).
    public func batchAndParts() throws(WireError) -> (batch: ByteBuffer, parts: [BatchPart]) {
        guard header.flags.contains(.identified) else { return (payload, []) }
        return try Self.split(identified: payload, ordinals: header.flags.contains(.ordinals))
    }

    /// Splits an IDENTIFIED payload into its batch and its parts.
    public static func split(
        identified payload: ByteBuffer, ordinals: Bool = false
    ) throws(WireError) -> (batch: ByteBuffer, parts: [BatchPart]) {
        let size = ordinals ? BatchPart.sizeWithOrdinal : BatchPart.size
        guard payload.readableBytes >= 4,
            let count = payload.getInteger(at: payload.writerIndex - 4, as: UInt32.self),
            Int(count) <= (payload.readableBytes - 4) / size
        else { throw WireError(.malformedBatch, "an identified frame's parts trailer is cut short") }
        let trailer = Int(count) * size + 4
        var parts: [BatchPart] = []
        parts.reserveCapacity(Int(count))
        var offset = payload.writerIndex - trailer
        for _ in 0..<count {
            let first: UInt32 = ordinals ? payload.getInteger(at: offset + 16)! : 0
            let envelopes: UInt32 = payload.getInteger(at: offset + size - 4)!
            guard !first.addingReportingOverflow(envelopes).overflow else {
                throw WireError(.malformedBatch, "a part's first ordinal \(first) and count \(envelopes) overflow")
            }
            parts.append(
                BatchPart(
                    sender: payload.getInteger(at: offset)!, sequence: payload.getInteger(at: offset + 8)!,
                    count: envelopes, first: first))
            offset += size
        }
        return (payload.getSlice(at: payload.readerIndex, length: payload.readableBytes - trailer)!, parts)
    }
}

extension ByteBuffer {
    /// An ACK frame: every ENVELOPES frame up to `sequence` was taken in.
    /// The one way every receiver writes its acknowledgements.
    public static func ackFrame(upTo sequence: UInt64, allocator: ByteBufferAllocator) -> ByteBuffer {
        emptyFrame(.ack, sequence: sequence, allocator: allocator)
    }

    /// A frame of `type` with no payload (ACK, LEAVING, HANDOVER_REQUEST).
    public static func emptyFrame(
        _ type: FrameType, flags: FrameFlags = [], sequence: UInt64, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var frame = allocator.buffer(capacity: FrameHeader.size)
        frame.writeFrameHeader(type: type, flags: flags, sequence: sequence, length: 0)
        return frame
    }
}
