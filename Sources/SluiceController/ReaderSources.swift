import CoreMetrics
import Logging
import NIOCore
import SluiceWire

/// The sources of a live reader that selects envelopes (the RLP gateway's
/// `/v2/read`, gRPC egress): one `TailFeed` and `TailStateMachine` per
/// source read, or one for every source (the firehose, shared by
/// `shard_id`). The machines queue, drop the oldest with an L10 notice and
/// tell zone changes, as for a websocket tail; the reader writes what they
/// give, in its own form, when `pending` is called. On the reader's loop.
final class ReaderSources {
    /// One source's (or the firehose's) feed and state machine.
    final class Source: TailFeedSink {
        let feed: TailFeed
        var machine: TailStateMachine
        unowned let owner: ReaderSources

        init(feed: TailFeed, queueLimit: Int, owner: ReaderSources) {
            self.feed = feed
            self.owner = owner
            machine = TailStateMachine(
                app: feed.target.noticeSource, queueLimit: queueLimit,
                zones: feed.zoneStates.mapValues { _ in TailStateMachine.ZoneState.up })
        }

        func feedDelivered(_ batch: ByteBuffer, parts: [BatchPart]) {
            do {
                let (dropped, action) = try machine.delivered(batch, parts: parts, now: WallClock.nowNanos())
                if dropped > 0 { owner.metrics.dropped.increment(by: dropped) }
                if action == .write { owner.pending() }
            } catch {
                owner.logger.warning(
                    "dropping a malformed batch from a buffer server", metadata: [LogKeys.reason: "\(error)"])
            }
        }

        func feedZoneChanged(_ zone: String, to state: TailStateMachine.ZoneState, lost: String) {
            if machine.zoneChanged(zone, to: state, lost: lost, now: WallClock.nowNanos()) == .write {
                owner.pending()
            }
        }
    }

    let metrics: TailMetrics
    let logger: Logger
    private(set) var sources: [Source] = []
    /// Called when a source has something to write.
    var pending: () -> Void = {}
    private var stopped = false

    init(
        targets: [StreamTarget], egress: Egress, queueLimit: Int, eventLoop: any EventLoop, metrics: TailMetrics,
        logger: Logger
    ) {
        self.metrics = metrics
        self.logger = logger
        sources = targets.map { target in
            Source(
                feed: TailFeed(target: target, links: egress.links(for: target), eventLoop: eventLoop),
                queueLimit: queueLimit, owner: self)
        }
    }

    /// Subscribes every source; succeeds once every subscription is queued
    /// on its links (a reader that answers then misses nothing taken in
    /// after).
    func start(on loop: any EventLoop) -> EventLoopFuture<Void> {
        EventLoopFuture.andAllComplete(sources.map { $0.feed.start(sink: $0) }, on: loop)
    }

    /// Ends every subscription; once.
    func stop() {
        guard !stopped else { return }
        stopped = true
        pending = {}
        for source in sources {
            source.feed.stop()
            source.machine.closed()
        }
    }
}
