import SluiceTransport

/// A batch bound for a buffer server, with the ingress frames it carries
/// parts of.
typealias LinkBatch = PendingBatch<IngressOrigin>

/// Who decides what becomes of a link's batches: the router of its zone's
/// ingress. Every call comes on the link's event loop.
protocol ServerLinkOwner: AnyObject, Sendable {
    /// The server answered on a new connection: its apps come back to it.
    func linkCameUp(_ link: ServerLink)
    /// The connection was lost, with these batches not acknowledged: they go
    /// to the servers standing in *before* new ingress may go there, so
    /// that an app's envelopes keep their order.
    /// `history` is what the server acknowledged lately (`AckedHistory`),
    /// oldest first: it goes to the servers standing in, to be stored
    /// for reads only, ahead of the rest. Returns whether it went (or
    /// there was none): false when no server was up to take it.
    func link(_ link: ServerLink, wentDownWith unacknowledged: [LinkBatch], history: [LinkBatch]) -> Bool
    /// Batches routed to the link after its connection was lost.
    func link(_ link: ServerLink, returned batches: [LinkBatch])
    /// The server is leaving gracefully: route its apps elsewhere from now
    /// on; what was sent to it still comes back acknowledged.
    func linkLeaving(_ link: ServerLink)
    /// Whether a server of the zone other than `link`'s is up, to take a
    /// leaving server's history.
    func anotherServerIsUp(than link: ServerLink) -> Bool
    /// The history of a server leaving gracefully (RECENT_RESPONSE frames,
    /// each one app's envelopes with ordinals): to the servers that now
    /// take each app, as history. Returns whether all of it went (false:
    /// no server was up to take it, or a frame was malformed).
    func link(_ link: ServerLink, handsOver frames: [Frame]) -> Bool
    /// The server took these batches in.
    func link(_ link: ServerLink, acknowledged batches: [LinkBatch])
    /// These batches were dropped: no server could take them and the
    /// link's backlog was full.
    func link(_ link: ServerLink, dropped batches: [LinkBatch])
}
