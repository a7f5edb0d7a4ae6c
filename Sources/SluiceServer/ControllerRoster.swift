import NIOConcurrencyHelpers
import NIOCore

/// The connections of this server's own zone's controllers, which route
/// ingest here and take its history when it leaves. A controller names its
/// zone in a HELLO when it connects (docs/wire.md); a server leaving waits
/// for each of them to take over and close.
final class ControllerRoster: Sendable {
    let zone: String
    private let channels = NIOLockedValueBox<Set<ObjectIdentifier>>([])
    private let state = NIOLockedValueBox<(leaving: Bool, handedOver: Set<ObjectIdentifier>)>((false, []))

    init(zone: String) {
        self.zone = zone
    }

    /// A controller said hello on `channel` from `zone`.
    func hello(_ channel: any Channel, zone: String) {
        guard zone == self.zone else { return }
        let id = ObjectIdentifier(channel)
        guard channels.withLockedValue({ $0.insert(id).inserted }) else { return }
        channel.closeFuture.whenComplete { _ in
            self.channels.withLockedValue { _ = $0.remove(id) }
            self.state.withLockedValue { _ = $0.handedOver.remove(id) }
        }
    }

    /// The server is leaving: its zone's controllers may ask for its history.
    func startLeaving() {
        state.withLockedValue { $0.leaving = true }
    }

    var isLeaving: Bool { state.withLockedValue { $0.leaving } }

    /// Whether `channel` may have the history now: the server is leaving,
    /// the channel is a controller of the zone, and it has not had it.
    func mayHandOver(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        guard channels.withLockedValue({ $0.contains(id) }) else { return false }
        return state.withLockedValue { state in state.leaving && state.handedOver.insert(id).inserted }
    }

    /// Own-zone controllers connected now.
    var count: Int { channels.withLockedValue { $0.count } }
}
