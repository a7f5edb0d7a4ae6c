import Logging
import NIOCore
import NIOHTTP2
import SluiceTLS
import SluiceTransport
import SluiceWire

/// A gRPC listener: the one `Listener` bootstrap (connection limit, TLS
/// with ALPN `h2`), HTTP/2 on each connection, and a `GRPCServerCodec` on
/// each stream routing its call to `routes`.
///
/// Flow control is HTTP/2's: a call's handlers that stop reading (its
/// channel's `autoRead` off, as the controller's ingress does while a
/// buffer server's link is full) stop its window from opening again, and
/// the client waits; other calls on the connection go on.
public enum GRPCServer {
    public struct Settings: Sendable {
        /// The largest message a call takes (gRPC's default is 4 MiB).
        public var maxMessage: Int
        /// Each stream's receive window: how much a client may send before
        /// the call's handlers have read it.
        public var streamWindow: Int
        public var maxConcurrentStreams: Int
        /// A PING after this long without reading from the peer; closed
        /// if it is not answered within `pingTimeout`.
        public var pingInterval: TimeAmount = .seconds(30)
        public var pingTimeout: TimeAmount = .seconds(20)
        /// A connection without a call for this long is sent GOAWAY.
        public var maxIdle: TimeAmount? = .minutes(5)

        public init(
            maxMessage: Int = FrameHeader.defaultMaxPayload, streamWindow: Int = 1024 * 1024, maxConcurrentStreams: Int = 100
        ) {
            self.maxMessage = maxMessage
            self.streamWindow = streamWindow
            self.maxConcurrentStreams = maxConcurrentStreams
        }
    }

    public static func bind(
        _ endpoint: Endpoint,
        group: any EventLoopGroup,
        routes: GRPCRoutes,
        settings: Settings = Settings(),
        connections: ConnectionSet? = nil,
        tls: TLSLayer? = nil,
        guard connectionGuard: ConnectionGuard? = nil,
        logger: Logger
    ) async throws -> any Channel {
        let tls = tls?.speaking(["h2"])
        return try await Listener.bind(
            endpoint, group: group, connections: connections, tls: tls, guard: connectionGuard
        ) { channel in
            var connection = NIOHTTP2Handler.ConnectionConfiguration()
            connection.initialSettings = [
                HTTP2Setting(parameter: .maxConcurrentStreams, value: settings.maxConcurrentStreams),
                HTTP2Setting(parameter: .maxHeaderListSize, value: HPACKDecoderDefaults.maxHeaderListSize),
                HTTP2Setting(parameter: .initialWindowSize, value: settings.streamWindow),
            ]
            var stream = NIOHTTP2Handler.StreamConfiguration()
            stream.targetWindowSize = settings.streamWindow
            // Keepalive PINGs find a peer that went away without closing
            // (a quiet nozzle's host died); a connection with no call for
            // `maxIdle` is sent GOAWAY.
            let manager = NIOHTTP2ServerConnectionManagementHandler(
                eventLoop: channel.eventLoop,
                configuration: .init(
                    maxIdleTime: settings.maxIdle, maxAge: nil, maxGraceTime: .seconds(10),
                    keepalive: .init(pingInterval: settings.pingInterval, ackTimeout: settings.pingTimeout)))
            let http2 = NIOHTTP2Handler(
                mode: .server, eventLoop: channel.eventLoop, connectionConfiguration: connection,
                streamConfiguration: stream, streamDelegate: manager.http2StreamDelegate
            ) { streamChannel in
                streamChannel.eventLoop.makeCompletedFuture {
                    // A connection with a call open may be quiet for hours
                    // (a reader waiting for logs): the stall watch is for
                    // connections that never start one; idle and dead ones
                    // are the manager's.
                    if let parent = streamChannel.parent { ConnectionGuard.upgraded(parent.pipeline.syncOperations) }
                    try streamChannel.pipeline.syncOperations.addHandler(
                        GRPCServerCodec(routes: routes, maxMessage: settings.maxMessage, logger: logger))
                }
            }
            try channel.pipeline.syncOperations.addHandlers([http2, manager, GRPCConnectionErrors(logger: logger)])
        }
    }
}

/// Last on a gRPC connection: a connection error (a protocol error, or
/// one of swift-nio-http2's limits on resets and other abuse, after which
/// it has sent GOAWAY) closes the connection; its calls end with it.
final class GRPCConnectionErrors: ChannelInboundHandler {
    typealias InboundIn = Any
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug(
            "closing a gRPC connection",
            metadata: [LogKeys.error: "\(error)", LogKeys.remote: "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
        context.close(promise: nil)
    }
}

/// The default largest header list, as NIOHTTP2 gives it.
enum HPACKDecoderDefaults {
    static let maxHeaderListSize = 16 * 1024
}
