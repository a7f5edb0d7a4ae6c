import CoreMetrics
import Logging
import NIOCore
import SluiceAuth
import SluiceGRPC
import SluiceProto
import SluiceTransport
import SluiceWire
import SwiftProtobuf

/// The gRPC adapter of the egress core: one `loggregator.v2.Egress` call
/// (`--grpc-egress`). `Receiver` sends each envelope as a message,
/// `BatchedReceiver` each round's as one `EnvelopeBatch`. Envelopes go as
/// the bytes the buffer servers hold (no decoding, unless a selector names
/// a counter or gauge metrics, or the client asks for tags where v1 put
/// them: `use_preferred_tags` false moves `tags` into `deprecated_tags`).
/// Sluice's own notices (L10 drops, zones lost and back) always go.
///
/// The request's token (`authorization` metadata) is checked as the RLP
/// gateway's is: every source id must be readable, an empty one (every
/// source) needs an admin; every refusal is `NOT_FOUND`, as the gateway's
/// 404 (`UNAVAILABLE` when the access check itself cannot be made). With
/// `byCertificate` no token is asked. Readers count toward `--max-readers` (past it:
/// `RESOURCE_EXHAUSTED`). Everything happens on the call's event loop.
final class GRPCEgressReader: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = GRPCRequestPart
    typealias OutboundOut = GRPCResponsePart

    enum Method: String, CaseIterable {
        case receiver = "/loggregator.v2.Egress/Receiver"
        case batchedReceiver = "/loggregator.v2.Egress/BatchedReceiver"
    }

    struct Setup: Sendable {
        var egress: Egress
        var authorizer: Authorizer?
        var readers: ReaderAdmission
        var metrics: TailMetrics
        var queueLimit: Int
        var logger: Logger
        /// `--grpc-egress-by-certificate`: no token asked (the listener's
        /// mutual TLS is the check, as Loggregator's reverse log proxy's).
        var byCertificate = false
    }

    /// gRPC clients' default limit on a message they receive: a batch is
    /// cut before it, and an envelope larger is dropped and counted.
    static let maxMessage = 4 * 1024 * 1024 - 64

    private let method: Method
    private let setup: Setup
    private var head: GRPCRequestHead?
    private var requested = false
    private var query: EgressQuery?
    private var sources: ReaderSources?
    private var context: ChannelHandlerContext?
    private var answering = false
    private var ended = false

    init(method: Method, setup: Setup) {
        self.method = method
        self.setup = setup
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .message(let message):
            guard !requested else {
                context.fireErrorCaught(GRPCStatus(.internal, "\(method.rawValue) takes one request, and a second came"))
                return
            }
            requested = true
            let request: Loggregator_V2_EgressBatchRequest
            do {
                request = try Loggregator_V2_EgressBatchRequest(serializedBytes: Array(message.readableBytesView))
            } catch {
                context.fireErrorCaught(GRPCStatus(.invalidArgument, "the request is not an EgressRequest: \(error)"))
                return
            }
            switch EgressQuery.parse(request) {
            case .failure(let status):
                context.fireErrorCaught(status)
            case .success(let query):
                authorize(query, context: context)
            }
        case .end:
            if !requested { context.fireErrorCaught(GRPCStatus(.internal, "\(method.rawValue) takes one request, and none came")) }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writePending()
        context.fireChannelWritabilityChanged()
    }

    private func authorize(_ query: EgressQuery, context: ChannelHandlerContext) {
        guard let authorizer = setup.authorizer, !setup.byCertificate else {
            start(query, context: context)
            return
        }
        let resource = APIRoute.rlpRead(
            RLPQuery(selectors: query.selectors, shardID: query.shardID, deterministicName: "")
        ).resource
        let token = APIRoute.token(
            authorization: head?.authorization.map { [$0] } ?? [], uri: "", takesQueryToken: false)
        let loop = context.eventLoop
        let promise = loop.makePromise(of: AccessOutcome.self)
        promise.completeWithTask { await authorizer.authorize(token: token, resource: resource) }
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        promise.futureResult.whenSuccess { outcome in
            let (reader, context) = bound.value
            guard !reader.ended, context.channel.isActive else { return }
            switch outcome {
            case .allowed:
                reader.start(query, context: context)
            case .unavailable(let why):
                context.fireErrorCaught(GRPCStatus(.unavailable, why))
            default:
                // As the RLP gateway and log-cache: no access looks like no such thing.
                context.fireErrorCaught(GRPCStatus(.notFound, "resource not found"))
            }
        }
    }

    private func start(_ query: EgressQuery, context: ChannelHandlerContext) {
        let targets: [StreamTarget] =
            query.sourceIDs.isEmpty
            ? [.firehose(subscription: query.shardID.isEmpty ? "grpc-\(UInt64.random(in: 1...UInt64.max))" : query.shardID)]
            : query.sourceIDs.map(StreamTarget.app)
        let remote = context.channel.parent?.remoteAddress.map { "\($0)" } ?? "?"
        if let failure = setup.readers.admit(targets, remote: remote) {
            context.fireErrorCaught(GRPCStatus(.resourceExhausted, failure.message))
            return
        }
        let readers = setup.readers
        context.channel.closeFuture.whenComplete { _ in readers.release(targets) }
        self.query = query
        let sources = ReaderSources(
            targets: targets, egress: setup.egress, queueLimit: setup.queueLimit, eventLoop: context.eventLoop,
            metrics: setup.metrics, logger: setup.logger)
        sources.pending = { [weak self] in self?.writePending() }
        self.sources = sources
        sources.start(on: context.eventLoop).whenComplete { [weak self] _ in
            guard let self, !self.ended else { return }
            self.answering = true
            self.setup.metrics.readers.increment()
            self.writePending()
        }
    }

    private func stop() {
        guard !ended else { return }
        ended = true
        if answering { setup.metrics.readers.decrement() }
        sources?.stop()
    }

    /// Writes what waits while the stream takes it.
    private func writePending() {
        guard !ended, answering, let context, let sources, let query else { return }
        let selectors = query.selectors
        let preferred = query.usePreferredTags
        let metrics = setup.metrics
        var wrote = false
        for source in sources.sources {
            while context.channel.isWritable && source.machine.hasPending {
                var batch: ByteBuffer? = method == .batchedReceiver ? context.channel.allocator.buffer(capacity: 64 * 1024) : nil
                let sent = source.machine.take(maxBytes: 256 * 1024, now: WallClock.nowNanos()) { item in
                    switch item {
                    case .envelope(let envelope):
                        let taken = envelope.withUnsafeReadableBytes { EnvelopeSelector.any(selectors, takeBytes: $0) }
                        if taken {
                            let out = preferred ? envelope : Self.withDeprecatedTags(envelope)
                            guard out.readableBytes + 8 <= Self.maxMessage else {
                                metrics.dropped.increment()
                                return envelope.readableBytes
                            }
                            emit(out, into: &batch, context: context)
                            wrote = true
                        }
                        return envelope.readableBytes
                    case .notice(let bytes):
                        emit(ByteBuffer(bytes: bytes), into: &batch, context: context)
                        wrote = true
                        return bytes.count
                    }
                }
                metrics.sent.increment(by: sent)
                if let batch, batch.readableBytes > 0 {
                    context.write(NIOAny(GRPCResponsePart.message(batch)), promise: nil)
                }
            }
        }
        if wrote { context.flush() }
    }

    private func emit(_ envelope: ByteBuffer, into batch: inout ByteBuffer?, context: ChannelHandlerContext) {
        if batch != nil {
            // A batch goes before this envelope would take it past what a
            // client takes in one message.
            if batch!.readableBytes + envelope.readableBytes + 8 > Self.maxMessage {
                context.write(NIOAny(GRPCResponsePart.message(batch!)), promise: nil)
                batch = context.channel.allocator.buffer(capacity: 64 * 1024)
            }
            batch!.writeBatchEntry(envelope)
        } else {
            context.write(NIOAny(GRPCResponsePart.message(envelope)), promise: nil)
        }
    }

    /// The envelope with its `tags` moved into `deprecated_tags` as text
    /// values, for clients that ask for tags where v1 kept them.
    static func withDeprecatedTags(_ envelope: ByteBuffer) -> ByteBuffer {
        guard var decoded = try? Loggregator_V2_Envelope(serializedBytes: Array(envelope.readableBytesView)),
            !decoded.tags.isEmpty
        else { return envelope }
        for (name, value) in decoded.tags {
            var text = Loggregator_V2_Value()
            text.text = value
            decoded.deprecatedTags[name] = text
        }
        decoded.tags = [:]
        guard let bytes: [UInt8] = try? decoded.serializedBytes() else { return envelope }
        return ByteBuffer(bytes: bytes)
    }
}
