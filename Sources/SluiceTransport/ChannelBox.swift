import NIOConcurrencyHelpers
import NIOCore
import SluiceWire

/// A channel that is set once a socket is bound, read from any thread.
public final class ChannelBox: Sendable {
    private let box = NIOLockedValueBox<(any Channel)?>(nil)

    public init() {}

    public var channel: (any Channel)? {
        get { box.withLockedValue { $0 } }
        set { box.withLockedValue { $0 = newValue } }
    }
}

extension Endpoint {
    /// The endpoint of a bound socket address.
    public init(_ address: SocketAddress) {
        self.init(host: address.ipAddress ?? "127.0.0.1", port: address.port ?? 0)
    }
}
