import Logging
import NIOCore
import SluiceWire

/// The last inbound handler of every connection: an error closes this one
/// connection, with the reason logged. Nothing else is affected.
public final class ConnectionErrorHandler: ChannelInboundHandler, Sendable {
    public typealias InboundIn = NIOAny

    private let logger: Logger
    private let role: String

    public init(role: String, logger: Logger) {
        self.role = role
        self.logger = logger
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let remote = context.remoteAddress.map { "\($0)" } ?? "?"
        if let wire = error as? WireError {
            logger.warning(
                "closing connection: bad frame",
                metadata: [LogKeys.remote: "\(remote)", LogKeys.reason: "\(wire)", LogKeys.role: "\(role)"])
        } else if error as? ChannelError == .ioOnClosedChannel {
            // Expected during shutdown: nothing to report.
        } else {
            logger.info(
                "closing connection after error",
                metadata: [LogKeys.remote: "\(remote)", LogKeys.reason: "\(error)", LogKeys.role: "\(role)"])
        }
        context.close(promise: nil)
    }
}
