import NIOCore
import NIOEmbedded
import NIOWebSocket
@testable import SluiceController

/// A tail's websocket as the controller reads what the reader sends: NIO's
/// frame decoder with the controller's frame limit, then each frame given
/// to the egress core (`TailStateMachine`) as `WebSocketTailHandler` gives
/// it, and its answers (pong, close) written as the handler writes them.
/// After the close is answered nothing more may be sent.
enum WebSocketTarget: FuzzTarget {
    static let name = "websocket"

    final class Reader: ChannelInboundHandler {
        typealias InboundIn = WebSocketFrame
        var machine = TailStateMachine(app: "fuzz", queueLimit: 4, zones: ["z1": .up])
        var closed = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            let action: TailStateMachine.Action
            switch frame.opcode {
            case .connectionClose: action = machine.closeReceived(frame.unmaskedData)
            case .ping: action = machine.pingReceived(frame.unmaskedData)
            default: action = .none
            }
            var out = ByteBuffer()
            switch action {
            case .sendPong(let payload):
                guard !closed else { fatalError("a pong after the close was answered") }
                out.writeWebSocketFrame(opcode: .pong, payload: payload)
            case .sendCloseThenClose(let payload):
                guard !closed else { fatalError("a second close answer") }
                closed = true
                out.writeWebSocketFrame(opcode: .connectionClose, payload: payload)
            default:
                break
            }
            guard machine.state == .open || closed else { fatalError("closing without answering the close") }
        }
    }

    static func run(_ input: UnsafeRawBufferPointer) {
        let channel = EmbeddedChannel()
        try! channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 16)), Reader(),
        ])
        defer { _ = try? channel.finish() }
        // A decoder error ends it: the handler closes the connection.
        FuzzTargets.stream(input, into: channel)
    }
}
