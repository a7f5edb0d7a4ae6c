import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SluiceBindings
import SluiceWire

/// `syslog://` and `syslog-tls://`: RFC 5424 lines, octet-counted (RFC
/// 6587), on one long-lived TCP connection, over TLS for syslog-tls.
///
/// Syslog over TCP has no acknowledgements: a batch counts as sent once the
/// kernel took it. A connection the endpoint closed is noticed before the
/// next batch (the endpoint's FIN closes the channel), so lines are not
/// written into a connection known to be dead.
final class SyslogStreamTransport: DrainTransport {
    let maxBatchCount = 1000
    let maxBatchBytes = 256 * 1024
    let batchDelay = Duration.zero

    private let url: DrainURL
    private let group: any EventLoopGroup
    private let tls: NIOSSLContext?
    private let connectTimeout: TimeAmount
    private let writeTimeout: TimeAmount
    private let connection = DrainConnection()

    var isOpen: Bool { connection.isOpen }

    func abort() { connection.abort() }

    init(
        url: DrainURL, group: any EventLoopGroup, connectTimeout: TimeAmount = .seconds(10),
        writeTimeout: TimeAmount = .seconds(30)
    ) throws {
        self.url = url
        self.group = group
        self.connectTimeout = connectTimeout
        self.writeTimeout = writeTimeout
        self.tls = url.scheme == .syslogTLS ? try url.tlsContext() : nil
    }

    func send(_ batch: DrainBatch, batchID: UInt64) async throws {
        let channel = try await connected()
        let buffer = batch.framed
        // An endpoint that stops reading would hold the batch forever: past
        // the timeout the connection is dropped and the batch tried again.
        let timeout = channel.eventLoop.scheduleTask(in: writeTimeout) { channel.close(promise: nil) }
        defer { timeout.cancel() }
        do {
            try await channel.writeAndFlush(buffer)
        } catch {
            connection.drop(channel)
            throw DrainSendError(reason: "writing to \(url.redacted) failed: \(error)")
        }
    }

    private func connected() async throws -> any Channel {
        if let channel = connection.active { return channel }
        let tls = self.tls
        let serverName = url.serverNameIndication
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(
                                NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            DrainConnectionHandler(ready: channel.eventLoop.makePromise(), waitsForTLS: tls != nil))
                    }
                }
                .connect(host: url.host, port: url.port)
                .get()
            try connection.adopt(channel)
            // A certificate that does not verify fails here, with its reason,
            // rather than in a later write; a handshake that never ends is
            // cut off like a connect that never ends.
            let deadline = channel.eventLoop.scheduleTask(in: connectTimeout) { channel.close(promise: nil) }
            defer { deadline.cancel() }
            do {
                try await channel.pipeline.handler(type: DrainConnectionHandler.self).flatMap { $0.ready.futureResult }
                    .get()
            } catch {
                connection.drop(channel)
                throw error
            }
            return channel
        } catch {
            throw DrainSendError(reason: "connecting to \(url.redacted) failed: \(error)")
        }
    }

    func close() async {
        await connection.close()
    }
}

/// Reads and discards what an endpoint sends that no one asked for (a
/// syslog server sends nothing, normally); tells when the connection is
/// ready (the TLS handshake done); closes the connection on any error so
/// that the next batch reconnects.
final class DrainConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    let ready: EventLoopPromise<Void>
    private let waitsForTLS: Bool

    init(ready: EventLoopPromise<Void>, waitsForTLS: Bool) {
        self.ready = ready
        self.waitsForTLS = waitsForTLS
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if !waitsForTLS { ready.succeed() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent { ready.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        ready.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        ready.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    /// A connection that failed before it was ever active ends here.
    func handlerRemoved(context: ChannelHandlerContext) {
        ready.fail(ChannelError.ioOnClosedChannel)
    }
}
