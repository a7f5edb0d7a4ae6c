import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SluiceWire

/// A small HTTP listener for a process that has no HTTP API of its own (a
/// buffer server): `GET /metrics` (Prometheus text, from `render`) and
/// `GET /healthz`.
public final class MetricsHTTPServer: Service, Sendable {
    private let listen: Endpoint
    private let render: @Sendable () -> [UInt8]
    private let group: any EventLoopGroup
    private let logger: Logger
    private let channelBox = ChannelBox()

    public init(
        listen: Endpoint, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger,
        render: @escaping @Sendable () -> [UInt8]
    ) {
        self.listen = listen
        self.group = group
        self.logger = logger
        self.render = render
    }

    @discardableResult
    public func bind() async throws -> Endpoint {
        if let bound = channelBox.channel?.localAddress { return Endpoint(bound) }
        let render = self.render
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(render: render))
                }
            }
            .bind(host: listen.host, port: listen.port)
            .get()
        channelBox.channel = channel
        let endpoint = Endpoint(channel.localAddress!)
        logger.info("metrics listening", metadata: [LogKeys.address: "\(endpoint)"])
        return endpoint
    }

    public func run() async throws {
        try await bind()
        try? await gracefulShutdown()
        await shutdown()
    }

    public func shutdown() async {
        try? await channelBox.channel?.close()
        channelBox.channel = nil
    }
}

final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let render: @Sendable () -> [UInt8]
    private var head: HTTPRequestHead?

    init(render: @escaping @Sendable () -> [UInt8]) {
        self.render = render
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            let (path, _) = URIQuery.split(head.uri)
            let status: HTTPResponseStatus
            let contentType: String
            let body: ByteBuffer
            switch (head.method, path) {
            case (.GET, "/metrics"):
                (status, contentType, body) = (.ok, "text/plain; version=0.0.4", ByteBuffer(bytes: render()))
            case (.GET, "/healthz"):
                (status, contentType, body) = (.ok, "application/json", ByteBuffer(string: #"{"status":"ok"}"#))
            default:
                (status, contentType, body) = (
                    .notFound, "application/json",
                    ByteBuffer(string: #"{"error":"not_found","message":"this port serves GET /metrics and /healthz"}"#)
                )
            }
            var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", "\(body.readableBytes)")])
            if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !head.isKeepAlive {
                let channel = context.channel
                done.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}
