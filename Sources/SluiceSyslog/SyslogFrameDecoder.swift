import NIOCore
import SluiceWire

/// Cuts a syslog TCP stream into messages, each frame framed as it says by
/// its first byte (RFC 6587): a digit begins an octet count (`LEN SP MSG`),
/// anything else a message that ends at LF. A count that is not a number,
/// or a message over `maxMessageBytes`, is a protocol error: that
/// connection is closed with the reason logged.
public struct SyslogFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public let maxMessageBytes: Int

    public init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        guard let first = view.first else { return .needMoreData }
        if first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9") {
            return try decodeOctetCounted(context: context, buffer: &buffer)
        }
        // Blank lines between messages are skipped.
        if first == UInt8(ascii: "\n") || first == UInt8(ascii: "\r") {
            buffer.moveReaderIndex(forwardBy: 1)
            return .continue
        }
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count > maxMessageBytes {
                throw WireError(
                    .frameTooLarge, "a newline-framed syslog message is over \(maxMessageBytes) bytes with no end")
            }
            return .needMoreData
        }
        let length = newline - view.startIndex
        guard length <= maxMessageBytes else {
            throw WireError(.frameTooLarge, "a newline-framed syslog message is over \(maxMessageBytes) bytes")
        }
        var message = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if message.readableBytesView.last == UInt8(ascii: "\r") { message.moveWriterIndex(to: message.writerIndex - 1) }
        context.fireChannelRead(Self.wrapInboundOut(message))
        return .continue
    }

    private func decodeOctetCounted(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        var length = 0
        var digits = 0
        for byte in view {
            if byte == UInt8(ascii: " ") { break }
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"), digits < 10 else {
                throw WireError(.malformedRequest, "a syslog octet count is not a number followed by a space")
            }
            length = length * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
        }
        guard digits < view.count else { return .needMoreData }
        guard length <= maxMessageBytes else {
            throw WireError(.frameTooLarge, "a syslog message of \(length) bytes is over the limit of \(maxMessageBytes)")
        }
        guard view.count >= digits + 1 + length else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: digits + 1)
        let message = buffer.readSlice(length: length)!
        if length > 0 { context.fireChannelRead(Self.wrapInboundOut(message)) }
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A last newline-framed message without its LF still counts.
        if let first = buffer.readableBytesView.first, !(first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")),
            buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) == nil, buffer.readableBytes <= maxMessageBytes
        {
            var message = buffer.readSlice(length: buffer.readableBytes)!
            if message.readableBytesView.last == UInt8(ascii: "\r") { message.moveWriterIndex(to: message.writerIndex - 1) }
            if message.readableBytes > 0 { context.fireChannelRead(Self.wrapInboundOut(message)) }
            return .needMoreData
        }
        let state = try decode(context: context, buffer: &buffer)
        if state == .needMoreData && buffer.readableBytes > 0 {
            throw WireError(.truncatedFrame, "the connection ended inside a syslog message")
        }
        return state
    }
}
