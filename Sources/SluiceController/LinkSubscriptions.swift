import NIOCore
import SluiceWire

/// What a live subscription at a buffer server feeds: a reader of an app.
public protocol LinkSubscriber: AnyObject, Sendable {
    /// A STREAM frame's batch arrived, with the sender frames its envelopes
    /// came from (empty if the server did not say). Called on the link's
    /// event loop.
    func deliver(batch: ByteBuffer, parts: [BatchPart])
    /// The link to a server went down or came back.
    func linkChanged(_ link: ServerLink)
}

/// A link's live subscriptions at its server: one per app, shared by every
/// local reader of that app, so the server sends each envelope to this
/// controller once however many read it; and one per firehose reader, never
/// shared, since the server splits a firehose subscription id's stream
/// among its readers. Subscription ids and reader ids are numbered apart
/// from each other and from the link's frames.
struct LinkSubscriptions {
    private struct Subscription {
        var target: StreamTarget
        var readers: [UInt64: any LinkSubscriber] = [:]
    }

    private var subscriptions: [UInt64: Subscription] = [:]
    private var byApp: [String: UInt64] = [:]
    /// Firehose subscriptions whose reader left, by server subscription id:
    /// until the server has taken the UNSUBSCRIBE it goes on sending that
    /// reader's share, which another local reader of the same firehose
    /// subscription takes instead. Forgotten on a new connection.
    private var departed: [UInt64: String] = [:]
    static let maxDeparted = 1024
    private var readerSubscription: [UInt64: UInt64] = [:]
    private var nextSubscription: UInt64 = 1
    private var nextReader: UInt64 = 1

    /// Adds a reader. Returns its id, and the id of a new server
    /// subscription to request when it is its app's first reader, or reads
    /// the firehose.
    mutating func add(_ target: StreamTarget, reader: any LinkSubscriber) -> (reader: UInt64, newSubscription: UInt64?) {
        let readerID = nextReader
        nextReader &+= 1
        var created: UInt64? = nil
        let id: UInt64
        if case .app(let app) = target, let existing = byApp[app] {
            id = existing
        } else {
            id = nextSubscription
            nextSubscription &+= 1
            subscriptions[id] = Subscription(target: target)
            if case .app(let app) = target { byApp[app] = id }
            created = id
        }
        subscriptions[id]!.readers[readerID] = reader
        readerSubscription[readerID] = id
        return (readerID, created)
    }

    /// Removes a reader. Returns the server subscription to end when it was
    /// the subscription's last reader.
    mutating func remove(reader readerID: UInt64) -> (id: UInt64, target: StreamTarget)? {
        guard let id = readerSubscription.removeValue(forKey: readerID) else { return nil }
        subscriptions[id]?.readers[readerID] = nil
        guard let subscription = subscriptions[id], subscription.readers.isEmpty else { return nil }
        subscriptions[id] = nil
        switch subscription.target {
        case .app(let app):
            byApp[app] = nil
        case .firehose(let name):
            if departed.count >= Self.maxDeparted { departed.removeAll() }
            departed[id] = name
        }
        return (id, subscription.target)
    }

    /// Who takes a STREAM frame for a firehose subscription whose reader
    /// left: another reader of the same firehose subscription id on this
    /// link, if there is one.
    func heir(of id: UInt64) -> (any LinkSubscriber)? {
        guard let name = departed[id] else { return nil }
        return subscriptions.values.first { $0.target == .firehose(subscription: name) }?.readers.values.first
    }

    /// A new connection: the old one's subscription ids are over.
    mutating func connected() {
        departed.removeAll()
    }

    /// The readers fed by server subscription `id` (none if it ended).
    func readers(of id: UInt64) -> Dictionary<UInt64, any LinkSubscriber>.Values? {
        subscriptions[id]?.readers.values
    }

    /// Every server subscription, to request again on a new connection.
    var all: [(id: UInt64, target: StreamTarget)] {
        subscriptions.map { ($0.key, $0.value.target) }
    }

    /// Every reader of every app.
    var allReaders: [any LinkSubscriber] {
        subscriptions.values.flatMap(\.readers.values)
    }
}
