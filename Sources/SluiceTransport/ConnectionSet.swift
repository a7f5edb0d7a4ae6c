import NIOConcurrencyHelpers
import NIOCore

/// The open connections of a listener, so that shutting it down closes them too.
public final class ConnectionSet: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    public init() {}

    /// Tracks `channel` until it closes.
    public func insert(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in
            self.channels.withLockedValue { _ = $0.removeValue(forKey: id) }
        }
    }

    /// The connections open now.
    public var all: [any Channel] { channels.withLockedValue { Array($0.values) } }

    public func closeAll() async {
        for channel in all { try? await channel.close() }
    }
}
