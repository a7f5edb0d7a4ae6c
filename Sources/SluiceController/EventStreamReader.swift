import CoreMetrics
import FoundationEssentials
import Logging
import NIOCore
import NIOHTTP1
import SluiceProto
import SluiceWire
import SwiftProtobuf

/// The server-sent-events adapter of the egress core: the RLP gateway's
/// `GET /v2/read` (REFERENCE §8). One `TailStateMachine` per source read
/// (or one for every source: the firehose, shared by `shard_id`) does the
/// queueing, drop-oldest with an L10 notice and zone notices, as for a
/// websocket tail; this adapter writes what they give as events:
///
/// - `data: {"batch":[…]}` per write, envelopes in log-cache's JSON, only
///   those a selector takes (Sluice's own notices always);
/// - `event: heartbeat` with the Unix time after `heartbeat` without data;
/// - `event: closing` after `streamTimeout`, then the response ends and
///   the connection closes: clients reconnect, as the gateway's do.
///
/// It writes through the HTTP handler's context, on its event loop.
final class EventStreamReader: @unchecked Sendable {
    struct Settings: Sendable {
        var queueLimit: Int
        var heartbeat: TimeAmount = .seconds(15)
        var streamTimeout: TimeAmount = .minutes(14)
    }

    let selectors: [EnvelopeSelector]
    let settings: Settings
    let metrics: TailMetrics
    let logger: Logger
    private let context: ChannelHandlerContext
    private let sources: ReaderSources
    private var heartbeatTask: Scheduled<Void>?
    private var timeoutTask: Scheduled<Void>?
    private var closeTask: Scheduled<Void>?
    /// The head is out and the reader counted in `metrics.readers`.
    private var answering = false
    private var ended = false

    init(
        targets: [StreamTarget], egress: Egress, selectors: [EnvelopeSelector], settings: Settings, metrics: TailMetrics,
        logger: Logger, context: ChannelHandlerContext
    ) {
        self.selectors = selectors
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        self.context = context
        sources = ReaderSources(
            targets: targets, egress: egress, queueLimit: settings.queueLimit, eventLoop: context.eventLoop,
            metrics: metrics, logger: logger)
        sources.pending = { [weak self] in self?.writePending() }
    }

    /// Subscribes, and answers the request's head once every subscription
    /// is queued on its links: a client that has the head gets every
    /// envelope taken in after. Events follow as they come.
    func start(request: HTTPRequestHead) {
        context.eventLoop.preconditionInEventLoop()
        sources.start(on: context.eventLoop).whenComplete { [weak self] _ in
            guard let self, !self.ended else { return }
            self.answering = true
            self.metrics.readers.increment()
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/event-stream")
            headers.add(name: "Cache-Control", value: "no-cache")
            headers.add(name: "Connection", value: "keep-alive")
            self.context.writeAndFlush(
                NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: request.version, status: .ok, headers: headers))),
                promise: nil)
            self.scheduleHeartbeat()
            self.timeoutTask = self.context.eventLoop.scheduleTask(in: self.settings.streamTimeout) { [weak self] in
                self?.closeForTimeout()
            }
            self.writePending()
        }
    }

    /// The connection is gone, or the stream ended: subscriptions end; once.
    func stop() {
        guard !ended else { return }
        ended = true
        heartbeatTask?.cancel()
        timeoutTask?.cancel()
        if answering { metrics.readers.decrement() }
        sources.stop()
    }

    /// Writes what waits while the socket takes it: one `data:` event per
    /// round of each source.
    func writePending() {
        // Nothing before the head is out (the subscriptions are queued).
        guard !ended, answering else { return }
        var wrote = false
        for source in sources.sources {
            while context.channel.isWritable && source.machine.hasPending {
                var batch = #"{"batch":["#
                var first = true
                let sent = source.machine.take(maxBytes: 256 * 1024, now: WallClock.nowNanos()) { item in
                    let bytes: [UInt8]
                    let notice: Bool
                    switch item {
                    case .envelope(let envelope):
                        bytes = Array(envelope.readableBytesView)
                        notice = false
                    case .notice(let text):
                        bytes = text
                        notice = true
                    }
                    guard let decoded = try? Loggregator_V2_Envelope(serializedBytes: bytes) else {
                        metrics.undecodable.increment()
                        return bytes.count
                    }
                    guard notice || EnvelopeSelector.any(selectors, take: decoded) else { return bytes.count }
                    if !first { batch += "," }
                    first = false
                    EnvelopeJSON.write(decoded, into: &batch)
                    return bytes.count
                }
                metrics.sent.increment(by: sent)
                guard !first else { continue }
                batch += "]}"
                write(event: nil, data: batch)
                wrote = true
            }
        }
        if wrote { context.flush() }
    }

    func writabilityChanged() {
        writePending()
    }

    private func write(event: String?, data: String) {
        var out = context.channel.allocator.buffer(capacity: data.utf8.count + 32)
        if let event { out.writeString("event: \(event)\n") }
        out.writeString("data: ")
        out.writeString(data)
        out.writeString("\n\n")
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(out))), promise: nil)
        scheduleHeartbeat()
    }

    /// A heartbeat `heartbeat` after the last event, unless another comes.
    private func scheduleHeartbeat() {
        heartbeatTask?.cancel()
        heartbeatTask = context.eventLoop.scheduleTask(in: settings.heartbeat) { [weak self] in
            guard let self, !self.ended else { return }
            self.write(event: "heartbeat", data: "\(WallClock.nowNanos() / 1_000_000_000)")
            self.context.flush()
        }
    }

    private func closeForTimeout() {
        guard !ended else { return }
        write(event: "closing", data: "closing due to stream timeout")
        stop()
        let channel = context.channel
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        // A client that has stopped reading does not keep its place.
        closeTask = context.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
    }
}
