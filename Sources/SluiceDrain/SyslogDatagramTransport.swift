import NIOCore
import NIOPosix
import SluiceBindings
import SluiceWire

/// `syslog-udp://`: one RFC 5424 line per datagram, cut to 2048 bytes with
/// a marker (REFERENCE §4). UDP says nothing of delivery: a batch counts as
/// sent once the kernel took it.
final class SyslogDatagramTransport: DrainTransport {
    static let maxDatagram = 2048

    let maxBatchCount = 1000
    let maxBatchBytes = 256 * 1024
    let batchDelay = Duration.zero

    private let url: DrainURL
    private let group: any EventLoopGroup
    private let connection = DrainConnection()

    var isOpen: Bool { connection.isOpen }

    func abort() { connection.abort() }

    init(url: DrainURL, group: any EventLoopGroup) {
        self.url = url
        self.group = group
    }

    func send(_ batch: DrainBatch, batchID: UInt64) async throws {
        let channel = try await connected()
        var last: EventLoopFuture<Void>? = nil
        for line in batch.lines {
            let bytes = batch.framed.getSlice(at: line.lowerBound, length: line.count)!
            if bytes.readableBytes <= Self.maxDatagram {
                last = channel.write(bytes)
            } else {
                let cut = DrainLine.datagram(Array(bytes.readableBytesView), maxBytes: Self.maxDatagram)
                last = channel.write(channel.allocator.buffer(bytes: cut))
            }
        }
        channel.flush()
        do {
            try await last?.get()
        } catch {
            connection.drop(channel)
            throw DrainSendError(reason: "sending to \(url.redacted) failed: \(error)")
        }
    }

    private func connected() async throws -> any Channel {
        if let channel = connection.active { return channel }
        do {
            let channel = try await DatagramBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            DrainDatagramHandler())
                    }
                }
                .connect(host: url.host, port: url.port).get()
            try connection.adopt(channel)
            return channel
        } catch {
            throw DrainSendError(reason: "resolving \(url.redacted) failed: \(error)")
        }
    }

    func close() async {
        await connection.close()
    }
}

/// Ignores replies and ICMP errors reported on the socket (a port with no
/// listener yet): UDP drains send regardless, as syslog over UDP does.
final class DrainDatagramHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}
