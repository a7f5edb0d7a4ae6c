import NIOCore
import SluiceTransport

/// Each message of a syslog TCP connection (after `SyslogFrameDecoder`).
final class SyslogStreamHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private let intake: SyslogIntake

    init(intake: SyslogIntake) {
        self.intake = intake
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        intake.take(unwrapInboundIn(data), input: .syslogTCP)
    }
}

/// Each datagram of the syslog UDP socket is one message (RFC 5426).
final class SyslogDatagramHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let intake: SyslogIntake

    init(intake: SyslogIntake) {
        self.intake = intake
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        intake.take(unwrapInboundIn(data).data, input: .syslogUDP)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A bad datagram is not the socket's end: keep reading.
    }
}
