import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import SluiceCLI
import SluiceWire
import Testing

/// The websocket client `sluice logs` uses, against a websocket server
/// whose first frame reaches the client in the same read as its 101 (as a
/// controller's notice to a reader joining while a zone is down can).
@Suite struct WebSocketClientTests {
    @Test(.timeLimit(.minutes(1))) func aFrameThatArrivesWithTheUpgradeIsKept() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                let upgrader = NIOWebSocketServerUpgrader(
                    shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture([:]) },
                    upgradePipelineHandler: { channel, _ in
                        let frame = WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(string: "first"))
                        return channel.writeAndFlush(frame)
                    })
                return channel.pipeline.configureHTTPServerPipeline(
                    withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }

        // A relay that holds the server's bytes until the 101 and at least
        // one byte after it are in, then hands them on in one write.
        let serverPort = server.localAddress!.port!
        let relay = try await ServerBootstrap(group: group)
            .childChannelInitializer { client in
                let upstream = ClientBootstrap(group: client.eventLoop)
                    .channelInitializer { upstream in
                        upstream.eventLoop.makeCompletedFuture {
                            try upstream.pipeline.syncOperations.addHandler(Coalescer(peer: client))
                        }
                    }
                    .connect(host: "127.0.0.1", port: serverPort)
                return client.eventLoop.makeCompletedFuture {
                    try client.pipeline.syncOperations.addHandler(Forwarder(peer: upstream))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { relay.close(promise: nil) }

        let received = NIOLockedValueBox<[String]>([])
        let client = try await WebSocketClient.connect(HTTPURL(host: "127.0.0.1", port: relay.localAddress!.port!)) {
            if case .binary(let bytes) = $0 { received.withLockedValue { $0.append(String(buffer: bytes)) } }
        }
        let got = await waitUntil(timeout: .seconds(10)) { received.withLockedValue { !$0.isEmpty } }
        #expect(got)
        #expect(received.withLockedValue { $0 } == ["first"])
        client.abort()
    }
}

/// Client → server: every read, once the upstream connection is up.
private final class Forwarder: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let peer: EventLoopFuture<any Channel>

    init(peer: EventLoopFuture<any Channel>) { self.peer = peer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        peer.whenSuccess { $0.writeAndFlush(bytes, promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.whenSuccess { $0.close(promise: nil) }
    }
}

/// Server → client: the response head and what follows it in one write.
private final class Coalescer: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let peer: any Channel
    private var held: ByteBuffer? = ByteBuffer()

    init(peer: any Channel) { self.peer = peer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var read = unwrapInboundIn(data)
        guard var waiting = held else {
            peer.writeAndFlush(read, promise: nil)
            return
        }
        waiting.writeBuffer(&read)
        let bytes = Array(waiting.readableBytesView)
        let headEnd = bytes.indices.dropLast(3).first { bytes[$0..<$0 + 4].elementsEqual("\r\n\r\n".utf8) }
        if let headEnd, headEnd + 4 < bytes.count {
            held = nil
            peer.writeAndFlush(waiting, promise: nil)
        } else {
            held = waiting
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.close(promise: nil)
    }
}
