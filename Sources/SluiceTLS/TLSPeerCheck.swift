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
/// the handshake completes, a listener that names its allowed clients
/// refuses a client whose certificate carries none of those names, and a
/// dialler given a server name refuses a server whose certificate does not
/// carry it (the TLS library checks only the address when an address was
/// dialled). Nothing a refused peer sent goes further. A handshake that
/// has not finished within `handshakeTimeout` is refused too.
final class TLSPeerCheck: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    static let handshakeTimeout = TimeAmount.seconds(10)

    private let server: Bool
    private let role: String
    private let expectedNames: [String]
    private let refused: Counter
    private let logger: Logger
    private var done = false
    /// Set once the peer is refused: from then on what it sends is dropped.
    private var refusedPeer = false
    /// Why, once refused.
    private(set) var refusal: TLSRefusal?
    /// Whether the peer has sent anything since the handshake: under TLS
    /// 1.3 a server refuses a client's certificate only after the client's
    /// handshake is done, so an alert before any data is still a refusal.
    private var heard = false
    private var handshake: EventLoopPromise<Void>?
    private var settled = false
    private var deadline: Scheduled<Void>?

    /// `expectedNames`: on a listener, the client names allowed in (empty:
    /// any); on a dialler, the server name required (empty: the library's
    /// own check of the host dialled).
    init(server: Bool, role: String, expectedNames: [String], refused: Counter, logger: Logger) {
        self.server = server
        self.role = role
        self.expectedNames = expectedNames
        self.refused = refused
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        handshake = context.eventLoop.makePromise()
        if context.channel.isActive { startDeadline(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startDeadline(context)
        context.fireChannelActive()
    }

    private func startDeadline(_ context: ChannelHandlerContext) {
        guard deadline == nil, !done else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: Self.handshakeTimeout) {
            let (check, context) = loopBound.value
            guard !check.done else { return }
            check.done = true
            check.refuse(
                context,
                TLSRefusal(code: "", reason: "the TLS handshake did not finish within \(Self.handshakeTimeout.seconds) s"))
        }
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
        deadline?.cancel()
        deadline = nil
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
            if !expectedNames.isEmpty {
                let names = peerCertificate(context).map(PeerNames.of) ?? []
                if !names.contains(where: { PeerNames.matches($0, expectedNames) }) {
                    let shown = names.isEmpty ? "nothing" : names.joined(separator: ", ")
                    let wanted = expectedNames.joined(separator: ", ")
                    refuse(
                        context,
                        TLSRefusal(
                            code: "",
                            reason: server
                                ? "the client's certificate names \(shown), none of the allowed \(wanted)"
                                : "the server's certificate names \(shown), not \(wanted)"))
                    return
                }
            }
            settle(.success(()))
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A refused peer's data, or data before the names were checked,
        // goes no further.
        guard done, !refusedPeer else { return }
        heard = true
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if refusedPeer { return }
        if done && !server && !heard, Self.isAlert(error) {
            // Under TLS 1.3: the server refused us after our handshake.
            heard = true
            refuse(context, TLSRefusal(error, server: server))
            return
        }
        guard !done else {
            context.fireErrorCaught(error)
            return
        }
        done = true
        if Self.isQuietEnd(error) {
            // Connected and left, or reset, without a word (a port probe):
            // not a refusal.
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

    /// An error from the TLS library that a peer's alert causes (not a
    /// crash or a reset of the peer).
    static func isAlert(_ error: any Error) -> Bool {
        if error is BoringSSLError { return true }
        if let ssl = error as? NIOSSLError, case .handshakeFailed = ssl { return true }
        return false
    }

    static func isQuietEnd(_ error: any Error) -> Bool {
        if let ssl = error as? NIOSSLError, ssl == .uncleanShutdown { return true }
        return error is IOError
    }

    private func refuse(_ context: ChannelHandlerContext, _ refusal: TLSRefusal) {
        refusedPeer = true
        self.refusal = refusal
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

extension TimeAmount {
    var seconds: Int64 { nanoseconds / 1_000_000_000 }
}
