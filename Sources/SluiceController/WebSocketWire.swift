import NIOCore
import NIOWebSocket

extension ByteBuffer {
    /// Writes an unmasked (server-to-client) websocket frame header for a
    /// final frame of `length` payload bytes (RFC 6455 §5.2).
    mutating func writeWebSocketHeader(opcode: WebSocketOpcode, length: Int) {
        writeInteger(UInt8(0x80) | UInt8(webSocketOpcode: opcode))
        switch length {
        case ..<126:
            writeInteger(UInt8(length))
        case ...0xFFFF:
            writeInteger(UInt8(126))
            writeInteger(UInt16(length))
        default:
            writeInteger(UInt8(127))
            writeInteger(UInt64(length))
        }
    }

    mutating func writeWebSocketFrame(opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) {
        writeWebSocketHeader(opcode: opcode, length: payload.count)
        writeBytes(payload)
    }

    mutating func writeWebSocketFrame(opcode: WebSocketOpcode, payload: ByteBuffer) {
        writeWebSocketHeader(opcode: opcode, length: payload.readableBytes)
        writeImmutableBuffer(payload)
    }
}
