import NIOCore
import SluiceTransport
import SluiceWire

/// A link's recent-log requests waiting for their answers. Request ids are
/// numbered apart from the link's frames and subscriptions. An answer may
/// come in several RECENT_RESPONSE frames; the one flagged FINAL ends it.
struct RecentRequests {
    private var pending: [UInt64: (frames: [Frame], promise: EventLoopPromise<[Frame]>)] = [:]
    private var nextID: UInt64 = 1

    var count: Int { pending.count }

    /// Registers a request; returns the id to send it with.
    mutating func begin(_ promise: EventLoopPromise<[Frame]>) -> UInt64 {
        let id = nextID
        nextID &+= 1
        pending[id] = ([], promise)
        return id
    }

    /// A RECENT_RESPONSE frame arrived. Returns the whole answer and its
    /// promise once its last frame is in; nil before, or for an id no
    /// request waits for (one given up on).
    mutating func received(_ frame: Frame) -> (frames: [Frame], promise: EventLoopPromise<[Frame]>)? {
        let id = frame.header.sequence
        guard pending[id] != nil else { return nil }
        pending[id]!.frames.append(frame)
        guard frame.header.flags.contains(.final) else { return nil }
        return pending.removeValue(forKey: id)
    }

    /// Every request waiting, removed (the connection is gone).
    mutating func removeAll() -> [EventLoopPromise<[Frame]>] {
        defer { pending = [:] }
        return pending.values.map(\.promise)
    }
}

/// A request to a server whose link is down, or went down before it answered.
public struct LinkUnavailable: Error, CustomStringConvertible {
    public var server: String
    public var description: String { "buffer server \(server) is not reachable" }
}
