import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SluiceWire

/// A small HTTP listener for a process that has no HTTP API of its own (a
/// buffer server): `GET /metrics` (Prometheus text, from `render`),
/// `GET /healthz` and `GET /readyz` (from `readiness`).
public final class MetricsHTTPServer: Service, Sendable {
    private let listen: Endpoint
    private let render: @Sendable () -> [UInt8]
    private let readiness: @Sendable () -> Readiness
    private let group: any EventLoopGroup
    private let logger: Logger
    private let channelBox = ChannelBox()

    public init(
        listen: Endpoint, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger,
        readiness: @escaping @Sendable () -> Readiness = { .ready }, render: @escaping @Sendable () -> [UInt8]
    ) {
        self.listen = listen
        self.group = group
        self.logger = logger
        self.readiness = readiness
        self.render = render
    }

    @discardableResult
    public func bind() async throws -> Endpoint {
        if let bound = channelBox.channel?.localAddress { return Endpoint(bound) }
        let render = self.render
        let readiness = self.readiness
        let channel = try await Listener.bind(listen, group: group) { channel in
            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
            try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(render: render, readiness: readiness))
        }
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
    private let readiness: @Sendable () -> Readiness
    private var head: HTTPRequestHead?

    init(render: @escaping @Sendable () -> [UInt8], readiness: @escaping @Sendable () -> Readiness) {
        self.render = render
        self.readiness = readiness
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
            switch (head.method, path) {
            case (.GET, "/metrics"):
                HTTPResponder.respond(
                    context: context, request: head, status: .ok, contentType: "text/plain; version=0.0.4",
                    body: ByteBuffer(bytes: render()))
            case (.GET, "/healthz"):
                HTTPResponder.respond(
                    context: context, request: head, status: .ok, body: ByteBuffer(string: #"{"status":"ok"}"#))
            case (.GET, "/readyz"):
                let answer = readiness()
                HTTPResponder.respond(
                    context: context, request: head, status: HTTPResponseStatus(statusCode: answer.status),
                    body: ByteBuffer(string: answer.json))
            default:
                HTTPResponder.error(
                    context: context, request: head, status: .notFound, code: "not_found",
                    message: "this port serves GET /metrics, /healthz and /readyz")
            }
        }
    }
}
