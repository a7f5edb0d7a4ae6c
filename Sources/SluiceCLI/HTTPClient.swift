import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SluiceTLS

/// A one-request HTTP/1.1 client: enough for `sluice logs --recent` and tests.
public enum HTTPClient {
    public struct Response: Sendable {
        public var status: HTTPResponseStatus
        public var headers: HTTPHeaders
        public var body: ByteBuffer
    }

    public static func get(
        _ url: HTTPURL, headers extra: [(String, String)] = [], trustRoots: String? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> Response {
        try await request(.GET, url, headers: extra, trustRoots: trustRoots, group: group)
    }

    /// A client TLS context for `https://`: the system's roots, or the PEM
    /// CA certificates in `trustRoots`.
    static func tlsContext(trustRoots: String?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let trustRoots { configuration.trustRoots = .file(trustRoots) }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw CommandFailure("cannot use the CA file \(trustRoots ?? "(the system's)"): \(error)")
        }
    }

    /// The name to send and check for `host`: nil for an address (its IP
    /// SAN is checked against the address connected to).
    static func serverName(_ host: String) -> String? {
        PeerNames.isAddress(host) ? nil : host
    }

    /// `Authorization: Bearer TOKEN`, or no header without a token.
    public static func bearer(_ token: String?) -> [(String, String)] {
        token.map { [("Authorization", "Bearer \($0)")] } ?? []
    }

    /// With `timeout`, an answer that has not come in time fails the request.
    /// An `https://` URL's certificate is checked against the system's
    /// roots, or `trustRoots` (PEM) when given.
    public static func request(
        _ method: HTTPMethod, _ url: HTTPURL, headers extra: [(String, String)] = [], body: ByteBuffer? = nil,
        timeout: TimeAmount? = nil, trustRoots: String? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> Response {
        let promise = group.next().makePromise(of: Response.self)
        let tls: NIOSSLContext? = url.tls ? try tlsContext(trustRoots: trustRoots) : nil
        let serverName = serverName(url.host)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(5))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(
                                try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        }
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                    }
                }
                .connect(host: url.host, port: url.port)
                .get()
        } catch {
            // No connection: the answer will never come.
            promise.fail(error)
            throw CommandFailure(ErrorText.cannotReach("\(url.host):\(url.port)", error))
        }
        var headers = HTTPHeaders([("Host", url.hostHeader), ("Connection", "close")])
        for (name, value) in extra { headers.add(name: name, value: value) }
        if let body { headers.add(name: "Content-Length", value: "\(body.readableBytes)") }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: url.path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
        defer { channel.close(promise: nil) }
        let timer = timeout.map { limit in
            channel.eventLoop.scheduleTask(in: limit) {
                promise.fail(ChannelError.connectTimeout(limit))
                channel.close(promise: nil)
            }
        }
        defer { timer?.cancel() }
        do {
            try await channel.writeAndFlush(HTTPClientRequestPart.end(nil))
            return try await promise.futureResult.get()
        } catch {
            throw CommandFailure("\(url.host):\(url.port) did not answer \(method) \(url.path): \(ErrorText.describe(error))")
        }
    }
}

private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<HTTPClient.Response>
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()

    init(promise: EventLoopPromise<HTTPClient.Response>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            if let head {
                promise.succeed(.init(status: head.status, headers: head.headers, body: body))
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.inputClosed)
    }
}
