import NIOCore
import SluiceTransport
import SluiceWire

/// The read side of a controller: which buffer server holds an app, and its
/// recent envelopes.
final class Egress: Sendable {
    let router: IngressRouter

    init(router: IngressRouter) {
        self.router = router
    }

    /// The links whose servers hold `app`'s live envelopes.
    func links(for app: String) -> [ServerLink] {
        router.link(for: app).map { [$0] } ?? []
    }

    /// The newest `limit` envelopes of `app`, oldest first, as slices.
    func recent(app: String, limit: Int) -> EventLoopFuture<[ByteBuffer]> {
        let link = router.link(for: app)!  // a controller has at least one server
        return link.recent(app: app, limit: limit).flatMapThrowing { parts in
            var envelopes: [ByteBuffer] = []
            for part in parts {
                try part.forEachEnvelope { envelope, _ in envelopes.append(envelope) }
            }
            return Array(envelopes.suffix(limit))
        }
    }
}
