import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A stand-in for the Cloud Controller's log access endpoint, on
/// 127.0.0.1: `GET /internal/v4/log_access/{app}` answers 200 for the apps
/// it allows and 404 for others; it records each request's path and token.
final class AccessServer: Sendable {
    struct Request: Sendable, Equatable {
        var path: String
        var authorization: String?
    }

    let port: Int
    private let channel: any Channel
    private let requests: NIOLockedValueBox<[Request]>

    private init(port: Int, channel: any Channel, requests: NIOLockedValueBox<[Request]>) {
        self.port = port
        self.channel = channel
        self.requests = requests
    }

    var urlTemplate: String { "http://127.0.0.1:\(port)/internal/v4/log_access/{app}" }
    var received: [Request] { requests.withLockedValue { $0 } }

    static func start(allowing allowed: Set<String>) async throws -> AccessServer {
        let requests = NIOLockedValueBox<[Request]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(allowed: allowed, requests: requests))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return AccessServer(port: channel.localAddress!.port!, channel: channel, requests: requests)
    }

    func stop() async {
        try? await channel.close()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let allowed: Set<String>
        let requests: NIOLockedValueBox<[Request]>

        init(allowed: Set<String>, requests: NIOLockedValueBox<[Request]>) {
            self.allowed = allowed
            self.requests = requests
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = unwrapInboundIn(data) else { return }
            requests.withLockedValue {
                $0.append(Request(path: head.uri, authorization: head.headers.first(name: "Authorization")))
            }
            let app = head.uri.split(separator: "/").last.map(String.init) ?? ""
            let status: HTTPResponseStatus = allowed.contains(app) ? .ok : .notFound
            let headers = HTTPHeaders([("Content-Length", "0"), ("Connection", "close")])
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
