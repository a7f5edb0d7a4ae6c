import NIOCore
import SluiceWire

/// Cuts a byte stream into frames. A header that names an unknown type or
/// version, or a payload over `maxPayload`, is a `WireError`: the pipeline's
/// error handler closes that one connection. Payloads are slices, not copies.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame

    public let maxPayload: Int
    private var header: FrameHeader? = nil

    public init(maxPayload: Int = FrameHeader.defaultMaxPayload) {
        self.maxPayload = maxPayload
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try next(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while let frame = try next(from: &buffer) {
            context.fireChannelRead(wrapInboundOut(frame))
        }
        if buffer.readableBytes > 0 || header != nil {
            let have = buffer.readableBytes
            buffer.moveReaderIndex(forwardBy: have)
            throw WireError(.truncatedFrame, "connection ended inside a frame (\(have) bytes left over)")
        }
        return .needMoreData
    }

    /// The next whole frame in `buffer`, or nil if more bytes are needed.
    public mutating func next(from buffer: inout ByteBuffer) throws(WireError) -> Frame? {
        if header == nil {
            guard buffer.readableBytes >= FrameHeader.size else { return nil }
            let max = maxPayload
            let parsed: Result<FrameHeader, WireError> = buffer.withUnsafeReadableBytes { bytes in
                Result { () throws(WireError) -> FrameHeader in
                    try FrameHeader.parse(UnsafeRawBufferPointer(rebasing: bytes[0..<FrameHeader.size]), maxPayload: max)
                }
            }
            header = try parsed.get()
            buffer.moveReaderIndex(forwardBy: FrameHeader.size)
        }
        guard let header, let payload = buffer.readSlice(length: Int(header.length)) else { return nil }
        self.header = nil
        return Frame(header: header, payload: payload)
    }
}
