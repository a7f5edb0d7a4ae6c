import NIOCore
import NIOPosix
import SluiceTLS
import SluiceWire

/// The one way a Sluice process listens on TCP: a server socket with a
/// backlog of 256 and SO_REUSEADDR, TCP_NODELAY on each connection, every
/// connection tracked in `connections` (so that shutting down closes it),
/// and the pipeline `initialize` builds, behind TLS when `tls` is given,
/// within the limits of `guard` when one is given.
public enum Listener {
    public static func bind(
        _ endpoint: Endpoint,
        group: any EventLoopGroup,
        connections: ConnectionSet? = nil,
        writeBufferWaterMark: ChannelOptions.Types.WriteBufferWaterMark? = nil,
        tls: TLSLayer? = nil,
        guard connectionGuard: ConnectionGuard? = nil,
        initialize: @escaping @Sendable (any Channel) throws -> Void
    ) async throws -> any Channel {
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        if let writeBufferWaterMark {
            bootstrap = bootstrap.childChannelOption(.writeBufferWaterMark, value: writeBufferWaterMark)
        }
        return try await bootstrap
            .childChannelInitializer { channel in
                connections?.insert(channel)
                return channel.eventLoop.makeCompletedFuture {
                    if let connectionGuard, try !connectionGuard.admit(channel) { return }
                    try tls?.add(to: channel)
                    try initialize(channel)
                }
            }
            .bind(host: endpoint.host, port: endpoint.port)
            .get()
    }
}
