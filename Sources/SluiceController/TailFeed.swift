import NIOConcurrencyHelpers
import NIOCore
import SluiceWire

/// Where a `TailFeed` hands what the servers send: a reader's transport
/// adapter. Called on the reader's event loop.
protocol TailFeedSink: AnyObject {
    func feedDelivered(_ batch: ByteBuffer, parts: [BatchPart])
    func feedZoneChanged(_ zone: String, to state: TailStateMachine.ZoneState, lost: String)
}

/// Subscribes one reader at every server that may hold its live envelopes
/// (for an app, each zone's owner and the server ranked next; for the
/// firehose, every server) and hands what they send, and their zones'
/// comings and goings, to the reader's event loop. The same for every kind
/// of reader.
final class TailFeed: LinkSubscriber, @unchecked Sendable {
    let target: StreamTarget
    let links: [ServerLink]
    let eventLoop: any EventLoop
    /// Set once, before `start`; cleared by `stop`. On `eventLoop`.
    private var sink: (any TailFeedSink)?
    private var subscriptions: [(link: ServerLink, id: EventLoopFuture<UInt64>)] = []
    private var stopped = false

    init(target: StreamTarget, links: [ServerLink], eventLoop: any EventLoop) {
        self.target = target
        self.links = links
        self.eventLoop = eventLoop
    }

    /// Each zone's state now.
    var zoneStates: [String: TailStateMachine.ZoneState] {
        Dictionary(uniqueKeysWithValues: Set(links.map(\.zone)).map { ($0, state(of: $0)) })
    }

    /// Subscribes at every server. The future completes once the
    /// subscriptions are queued on the links, before anything ingested
    /// later: a reader answered only then sees every line emitted after.
    func start(sink: any TailFeedSink) -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        self.sink = sink
        subscriptions = links.map { ($0, $0.subscribe(target, subscriber: self)) }
        return EventLoopFuture.andAllSucceed(subscriptions.map { $0.id.map { _ in } }, on: eventLoop).map {
            // How each zone is now, which links that change later tell: a
            // zone already down is said to a reader that has just come.
            for (zone, state) in self.zoneStates {
                let lost =
                    self.links.first { $0.zone == zone && $0.isAssigned && $0.answers == .down }.map { "\($0.endpoint)" } ?? ""
                self.sink?.feedZoneChanged(zone, to: state, lost: lost)
            }
        }
    }

    /// Ends the subscriptions; once.
    func stop() {
        eventLoop.preconditionInEventLoop()
        guard !stopped else { return }
        stopped = true
        sink = nil
        for (link, id) in subscriptions { id.whenSuccess { link.unsubscribe(id: $0) } }
        subscriptions = []
    }

    func deliver(batch: ByteBuffer, parts: [BatchPart]) {
        onLoop { $0.sink?.feedDelivered(batch, parts: parts) }
    }

    func linkChanged(_ link: ServerLink) {
        onLoop { feed in
            feed.sink?.feedZoneChanged(link.zone, to: feed.state(of: link.zone), lost: "\(link.endpoint)")
        }
    }

    private func onLoop(_ body: @escaping @Sendable (TailFeed) -> Void) {
        if eventLoop.inEventLoop {
            body(self)
        } else {
            eventLoop.execute { body(self) }
        }
    }

    /// Up when every server of the zone that holds this app answers (or
    /// is still being tried for the first time: a controller that has just
    /// started tells no one its servers are gone), down when none does.
    private func state(of zone: String) -> TailStateMachine.ZoneState {
        // A free slot (DNS) is no server: neither up nor down.
        let answers = links.filter { $0.zone == zone && $0.isAssigned }.map(\.answers)
        // A zone found by DNS with no server: none answers.
        if answers.isEmpty { return .down }
        if !answers.contains(.down) { return .up }
        return answers.contains(where: { $0 != .down }) ? .partial : .down
    }
}
