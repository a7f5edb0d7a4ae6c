import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceTransport
import SluiceShipping
import SluiceWire

/// A plain framed connection: frames out, nothing read back, no resends.
/// For tests that send malformed input; emitters use `IngressClient`.
public final class FrameConnection: Sendable {
    private let channel: any Channel
    private let sequence = SequenceCounter()

    private init(channel: any Channel) {
        self.channel = channel
    }

    public static func connect(
        to endpoint: Endpoint, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> FrameConnection {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .connect(host: endpoint.host, port: endpoint.port)
            .get()
        return FrameConnection(channel: channel)
    }

    /// Sends a frame built with `BatchFrameBuilder` (its sequence is set here).
    public func send(frame: ByteBuffer) async throws {
        var frame = frame
        frame.setFrameSequence(sequence.next())
        try await channel.writeAndFlush(frame)
    }

    /// Sends raw bytes as they are: for tests of malformed input.
    public func sendRaw(_ bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(bytes)
    }

    public var isActive: Bool { channel.isActive }
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// Closes after everything written has gone out.
    public func close() async throws {
        try await channel.close(mode: .output)
        try? await channel.closeFuture.get()
    }
}

final class SequenceCounter: Sendable {
    private let value = NIOLockedValueBox<UInt64>(0)
    func next() -> UInt64 { value.withLockedValue { $0 += 1; return $0 } }
}
