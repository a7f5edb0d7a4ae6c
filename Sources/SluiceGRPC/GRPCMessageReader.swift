import NIOCore

/// Cuts a gRPC call's request bytes into its messages: each is a
/// compressed flag (1 byte), a length (4 bytes, big-endian) and that many
/// bytes. A message arrives in any number of DATA frames, and one frame may
/// hold several. Plain state, no I/O: the codec feeds it DATA as it comes.
///
/// Sluice takes no compressed messages (it answers `grpc-accept-encoding:
/// identity`), and none larger than `maxMessage` (gRPC's default limit is
/// 4 MiB, as is Sluice's `--max-frame`).
public struct GRPCMessageReader: Sendable {
    public static let prefixSize = 5
    public let maxMessage: Int
    private var buffer: ByteBuffer?

    public init(maxMessage: Int) {
        self.maxMessage = maxMessage
    }

    /// Bytes held that are not yet a whole message.
    public var pendingBytes: Int { buffer?.readableBytes ?? 0 }

    public mutating func append(_ bytes: ByteBuffer) {
        if buffer == nil || buffer!.readableBytes == 0 {
            buffer = bytes
        } else {
            // Only the part of a message not yet whole is kept: what was
            // read goes, so a long call's buffer holds at most one message
            // and the frame after it.
            buffer!.discardReadBytes()
            var more = bytes
            buffer!.writeBuffer(&more)
        }
    }

    /// The next whole message, if one is here: a slice of what came, not
    /// a copy.
    public mutating func next() throws(GRPCStatus) -> ByteBuffer? {
        guard var buffer, buffer.readableBytes >= Self.prefixSize else { return nil }
        let start = buffer.readerIndex
        let flag = buffer.getInteger(at: start, as: UInt8.self)!
        let length = Int(buffer.getInteger(at: start + 1, as: UInt32.self)!)
        guard flag == 0 else {
            throw flag == 1
                ? GRPCStatus(.unimplemented, "compressed messages are not taken: send them with grpc-encoding identity")
                : GRPCStatus(.internal, "a message's compressed flag is \(flag), not 0 or 1")
        }
        guard length <= maxMessage else {
            throw GRPCStatus(
                .resourceExhausted, "a message of \(length) bytes is over the limit of \(maxMessage)")
        }
        guard buffer.readableBytes >= Self.prefixSize + length else { return nil }
        let message = buffer.getSlice(at: start + Self.prefixSize, length: length)!
        buffer.moveReaderIndex(forwardBy: Self.prefixSize + length)
        self.buffer = buffer.readableBytes == 0 ? nil : buffer
        return message
    }

    /// Writes `message` with its prefix (not compressed) into a new buffer.
    public static func framed(_ message: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: prefixSize + message.readableBytes)
        out.writeInteger(UInt8(0))
        out.writeInteger(UInt32(message.readableBytes))
        var message = message
        out.writeBuffer(&message)
        return out
    }
}
