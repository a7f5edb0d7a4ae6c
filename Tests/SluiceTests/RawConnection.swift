import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import SluiceAgent
import SluiceCLI
import SluiceController
import SluiceProto
import SluiceServer
import SluiceTransport
import SluiceShipping
import SluiceWire
import Testing

/// A plain TCP connection for writing raw bytes at a listener.
final class RawConnection: Sendable {
    let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    static func connect(to endpoint: Endpoint) async throws -> RawConnection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: endpoint.host, port: endpoint.port).get()
        return RawConnection(channel: channel)
    }

    func write(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// Whether the peer closed the connection within 10 s.
    func waitForClose() async -> Bool {
        let closed = channel.eventLoop.makePromise(of: Bool.self)
        channel.closeFuture.whenComplete { _ in closed.succeed(true) }
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(10)) { closed.succeed(false) }
        let result = (try? await closed.futureResult.get()) ?? false
        timeout.cancel()
        return result
    }

    func close() {
        channel.close(promise: nil)
    }
}
