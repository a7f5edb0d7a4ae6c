import NIOConcurrencyHelpers
import NIOCore

/// The connections of this server's own zone's controllers, which route
/// ingest here and take its history when it leaves. A controller names its
/// zone in a HELLO when it connects (docs/wire.md); a server leaving waits
/// for each of them to take over and close.
final class ControllerRoster: Sendable {
    let zone: String
    private let channels = NIOLockedValueBox<Set<ObjectIdentifier>>([])

    init(zone: String) {
        self.zone = zone
    }

    /// A controller said hello on `channel` from `zone`.
    func hello(_ channel: any Channel, zone: String) {
        guard zone == self.zone else { return }
        let id = ObjectIdentifier(channel)
        channels.withLockedValue { _ = $0.insert(id) }
        channel.closeFuture.whenComplete { _ in
            self.channels.withLockedValue { _ = $0.remove(id) }
        }
    }

    /// Own-zone controllers connected now.
    var count: Int { channels.withLockedValue { $0.count } }
}
