import CoreMetrics
import Foundation
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import SluiceWire

/// Sits right after the TLS handler of a link. Until the handshake is done
/// it owns the connection's errors: a refused handshake is logged once,
/// with the peer and the reason, counted, and the connection closed. When
/// the handshake completes on a listener that names its allowed clients,
/// a client whose certificate carries none of those names is refused the
/// same way. After that it passes everything on.
final class TLSPeerCheck: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let server: Bool
    private let role: String
    private let allowedNames: [String]
    private let refused: Counter
    private let logger: Logger
    private var done = false
    /// Whether the peer has sent anything since the handshake: under TLS
    /// 1.3 a server refuses a client's certificate only after the client's
    /// handshake is done, so an alert before any data is still a refusal.
    private var heard = false
    private var handshake: EventLoopPromise<Void>?
    private var settled = false

    init(server: Bool, role: String, allowedNames: [String], refused: Counter, logger: Logger) {
        self.server = server
        self.role = role
        self.allowedNames = allowedNames
        self.refused = refused
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        handshake = context.eventLoop.makePromise()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        settle(.failure(ChannelError.ioOnClosedChannel))
    }

    func channelInactive(context: ChannelHandlerContext) {
        done = true
        settle(.failure(ChannelError.inputClosed))
        context.fireChannelInactive()
    }

    private func settle(_ result: Result<Void, any Error>) {
        guard !settled, let handshake else { return }
        settled = true
        handshake.completeWith(result)
    }

    /// Succeeds once the handshake is done and the peer let in; fails if
    /// the connection closes first.
    var handshakeDone: EventLoopFuture<Void>? { handshake?.futureResult }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls, !done {
            done = true
            if !allowedNames.isEmpty {
                let names = peerCertificate(context).map(PeerNames.of) ?? []
                if !names.contains(where: allowedNames.contains) {
                    refuse(
                        context,
                        TLSRefusal(
                            code: "",
                            reason:
                                "the client's certificate names \(names.isEmpty ? "nothing" : names.joined(separator: ", ")), none of the allowed \(allowedNames.joined(separator: ", "))"
                        ))
                    return
                }
            }
            settle(.success(()))
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        heard = true
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if done && !server && !heard, error is NIOSSLError || error is BoringSSLError {
            heard = true
            refuse(context, TLSRefusal(error, server: server))
            return
        }
        guard !done else {
            context.fireErrorCaught(error)
            return
        }
        done = true
        if let ssl = error as? NIOSSLError, ssl == .uncleanShutdown {
            // Connected and left without a word (a port probe): not a refusal.
            logger.debug(
                "connection closed before its TLS handshake",
                metadata: [LogKeys.remote: "\(remote(context))", LogKeys.role: "\(role)"])
            settle(.failure(TLSRefused(refusal: TLSRefusal(error, server: server))))
            context.close(promise: nil)
            return
        }
        var refusal = TLSRefusal(error, server: server)
        if let dates = validity(context) { refusal.reason += "; \(dates)" }
        refuse(context, refusal)
    }

    private func refuse(_ context: ChannelHandlerContext, _ refusal: TLSRefusal) {
        refused.increment()
        settle(.failure(TLSRefused(refusal: refusal)))
        logger.warning(
            server ? "TLS handshake refused" : "TLS handshake with server failed",
            metadata: [
                LogKeys.remote: "\(remote(context))", LogKeys.role: "\(role)", LogKeys.reason: "\(refusal)",
            ])
        context.close(promise: nil)
    }

    private func remote(_ context: ChannelHandlerContext) -> String {
        context.remoteAddress.map { "\($0)" } ?? "?"
    }

    private func peerCertificate(_ context: ChannelHandlerContext) -> NIOSSLCertificate? {
        try? context.pipeline.syncOperations.handler(type: NIOSSLHandler.self).peerCertificate
    }

    /// When the peer showed a certificate outside its dates, which.
    private func validity(_ context: ChannelHandlerContext) -> String? {
        guard let peer = peerCertificate(context) else { return nil }
        let now = time(nil)
        if peer.notValidAfter < now { return "its certificate expired at \(LinkTLS.date(peer.notValidAfter))" }
        if peer.notValidBefore > now { return "its certificate is not valid until \(LinkTLS.date(peer.notValidBefore))" }
        return nil
    }
}
