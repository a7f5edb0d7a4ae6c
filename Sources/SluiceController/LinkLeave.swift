/// A buffer server's graceful stop as one controller's link to it sees it
/// (docs/wire.md, LEAVING). For a server of the controller's own zone:
/// hold what is routed to it from now on, wait until it has acknowledged
/// everything sent to it, ask for its history (HANDOVER_REQUEST), hand that
/// to the servers that take its apps, and only then route its apps there,
/// starting with what was held: so each app's history reaches its new
/// server before its newer lines, and stays in time order there. Then
/// close. For another zone's server: only remember that it left on
/// purpose, so that its going is not told as a loss (that zone's
/// controllers take its history).
struct LinkLeave: Equatable {
    enum State: Equatable {
        case serving
        /// Routed past; waiting for outstanding acknowledgements.
        case draining
        /// The history was asked for.
        case handingOver
        /// Handed over; the link closes.
        case handedOver
        /// Another zone's server leaving.
        case elsewhere
    }

    enum Action: Equatable {
        case requestHandover
        /// Route the server's apps elsewhere, starting with what was held.
        case stopRouting
        case close
    }

    private(set) var state = State.serving

    /// A new connection: the server is serving (again).
    mutating func connected() {
        state = .serving
    }

    /// The server said LEAVING.
    mutating func serverLeaving(ownZone: Bool, windowEmpty: Bool) -> [Action] {
        guard state == .serving else { return [] }
        guard ownZone else {
            state = .elsewhere
            return []
        }
        state = .draining
        return windowEmpty ? windowEmptied() : []
    }

    /// Everything sent to the server is acknowledged (or was already).
    mutating func windowEmptied() -> [Action] {
        guard state == .draining else { return [] }
        state = .handingOver
        return [.requestHandover]
    }

    /// The history was handed on.
    mutating func handedOver() -> [Action] {
        guard state == .handingOver else { return [] }
        state = .handedOver
        return [.stopRouting, .close]
    }

    /// Whether this zone's server is leaving: nothing new is sent to it;
    /// what is routed to it is held until its history has gone on.
    var isLeaving: Bool { state == .draining || state == .handingOver || state == .handedOver }

    /// Whether a connection lost now was closed on purpose, with nothing
    /// left to hand over or tell.
    var leftGracefully: Bool { state == .handedOver || state == .elsewhere }
}
