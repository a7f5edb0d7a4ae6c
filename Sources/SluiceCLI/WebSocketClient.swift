import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

/// A websocket client for `/apps/{app}/stream`: connects, upgrades, and
/// hands every data message to `onMessage` (on the channel's event loop).
/// Pings are answered; `closed` completes when the connection ends.
public final class WebSocketClient: Sendable {
    public enum Message: Sendable {
        case binary(ByteBuffer)
        case text(String)
    }

    private let channel: any Channel
    private let pingCount: NIOLockedValueBox<Int>
    public let closed: EventLoopFuture<Void>

    private init(channel: any Channel, pingCount: NIOLockedValueBox<Int>) {
        self.channel = channel
        self.pingCount = pingCount
        self.closed = channel.closeFuture
    }

    /// Pings received from the server (each answered with a pong).
    public var pingsReceived: Int { pingCount.withLockedValue { $0 } }

    public static func connect(
        _ url: HTTPURL,
        maxMessage: Int = 16 * 1024 * 1024,
        headers extra: [(String, String)] = [],
        trustRoots: String? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onMessage: @escaping @Sendable (Message) -> Void
    ) async throws -> WebSocketClient {
        let tls: NIOSSLContext? = url.tls ? try HTTPClient.tlsContext(trustRoots: trustRoots) : nil
        let serverName = HTTPClient.serverName(url.host)
        let loop = group.next()
        let upgraded = loop.makePromise(of: Void.self)
        let pingCount = NIOLockedValueBox(0)
        let connecting = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    let upgrader = NIOWebSocketClientUpgrader(
                        maxFrameSize: maxMessage,
                        automaticErrorHandling: true,
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                let requester = try channel.pipeline.syncOperations.handler(type: UpgradeRequester.self)
                                channel.pipeline.syncOperations.removeHandler(requester, promise: nil)
                                try channel.pipeline.syncOperations.addHandler(
                                    MessageHandler(onMessage: onMessage, pingCount: pingCount))
                                upgraded.succeed()
                            }
                        })
                    // Frames the server writes right after its 101 can come in
                    // the same read: they go on to the websocket decoder.
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        leftOverBytesStrategy: .forwardBytes,
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                    try channel.pipeline.syncOperations.addHandler(
                        UpgradeRequester(url: url, headers: extra, failed: upgraded))
                }
            }
            .connect(host: url.host, port: url.port)
        let channel: any Channel
        do {
            channel = try await connecting.get()
        } catch {
            upgraded.fail(error)
            throw CommandFailure(ErrorText.cannotReach("\(url.host):\(url.port)", error))
        }
        channel.closeFuture.whenComplete { _ in upgraded.fail(ChannelError.inputClosed) }
        do {
            try await upgraded.futureResult.get()
        } catch let refused as WebSocketRefused {
            channel.close(promise: nil)
            throw refused
        } catch let tls as WebSocketTLSFailure {
            channel.close(promise: nil)
            throw tls
        } catch {
            channel.close(promise: nil)
            throw WebSocketRefused(url: url.description)
        }
        return WebSocketClient(channel: channel, pingCount: pingCount)
    }

    /// Sends a close frame and waits for the connection to end.
    public func close() async {
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: ByteBuffer(bytes: [0x03, 0xE8]))
        try? await channel.writeAndFlush(frame)
        let channel = self.channel
        let deadline = channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        try? await closed.get()
        deadline.cancel()
    }

    /// Stops or resumes reading from the socket (a test's stand-in for a
    /// reader that stalls).
    public func setReading(_ reading: Bool) async throws {
        try await channel.setOption(.autoRead, value: reading).get()
        if reading { channel.read() }
    }

    /// Ends the connection at once, without a close handshake.
    public func abort() {
        channel.close(promise: nil)
    }
}

/// The TLS handshake with the controller failed: a wrong or missing CA,
/// or `http://` against HTTPS (and the reverse). Trying again will not help.
public struct WebSocketTLSFailure: Error, CustomStringConvertible {
    public var url: String
    public var error: String
    public var description: String {
        "TLS with \(url) failed: \(error) (is the URL's scheme right, and --ca the controller's CA?)"
    }
}

public struct WebSocketRefused: Error, CustomStringConvertible {
    public var url: String
    /// The server's answer instead of 101, if it gave one.
    public var status: Int?
    /// The `message` of its JSON error, or its body.
    public var message: String?

    public init(url: String, status: Int? = nil, message: String? = nil) {
        self.url = url
        self.status = status
        self.message = message
    }

    public var description: String {
        guard let status else { return "the server did not accept a websocket at \(url)" }
        return "\(url) answered \(status)" + (message.map { ": \($0)" } ?? "")
    }
}

/// Sends the upgrade request once connected; fails the upgrade if the server
/// answers with a plain HTTP response instead.
private final class UpgradeRequester: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let url: HTTPURL
    private let extra: [(String, String)]
    private let failed: EventLoopPromise<Void>
    private var status: Int?
    private var body = ByteBuffer()

    init(url: HTTPURL, headers: [(String, String)], failed: EventLoopPromise<Void>) {
        self.url = url
        self.extra = headers
        self.failed = failed
    }

    func channelActive(context: ChannelHandlerContext) {
        var headers = HTTPHeaders([("Host", url.hostHeader), ("Content-Length", "0")])
        for (name, value) in extra { headers.add(name: name, value: value) }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: url.path, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOSSLError || error is BoringSSLError {
            failed.fail(WebSocketTLSFailure(url: url.description, error: "\(error)"))
        }
        context.fireErrorCaught(error)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Only a refused upgrade reaches here.
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(var part):
            if body.readableBytes < 64 * 1024 { body.writeBuffer(&part) }
        case .end:
            failed.fail(
                WebSocketRefused(url: url.description, status: status, message: AccessAdvice.apiMessage(body)))
            context.close(promise: nil)
        }
    }
}

private final class MessageHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let onMessage: @Sendable (WebSocketClient.Message) -> Void
    private let pingCount: NIOLockedValueBox<Int>
    private var fragments: ByteBuffer?
    private var fragmentOpcode: WebSocketOpcode = .binary

    init(onMessage: @escaping @Sendable (WebSocketClient.Message) -> Void, pingCount: NIOLockedValueBox<Int>) {
        self.onMessage = onMessage
        self.pingCount = pingCount
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .text:
            if frame.fin {
                deliver(frame.opcode, frame.unmaskedData)
            } else {
                fragmentOpcode = frame.opcode
                fragments = frame.unmaskedData
            }
        case .continuation:
            var data = frame.unmaskedData
            fragments?.writeBuffer(&data)
            if frame.fin, let whole = fragments {
                fragments = nil
                deliver(fragmentOpcode, whole)
            }
        case .ping:
            pingCount.withLockedValue { $0 += 1 }
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            let reply = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: ByteBuffer())
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in channel.close(promise: nil) }
        default:
            break
        }
    }

    private func deliver(_ opcode: WebSocketOpcode, _ data: ByteBuffer) {
        if opcode == .text {
            onMessage(.text(String(buffer: data)))
        } else {
            onMessage(.binary(data))
        }
    }
}
