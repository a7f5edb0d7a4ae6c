import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import SluiceWire

/// What a method's handlers read from a call: its head, each message (the
/// bytes as they came, without the 5-byte prefix), and the end of the
/// client's side.
public enum GRPCRequestPart: Sendable {
    case head(GRPCRequestHead)
    case message(ByteBuffer)
    case end
}

/// What a method's handlers write: messages (the codec adds each prefix and
/// the response headers before the first) and, last, the status.
public enum GRPCResponsePart: Sendable {
    case message(ByteBuffer)
    case end(GRPCStatus)
}

/// The methods a gRPC listener serves: for each `/package.Service/Method`,
/// what to add to the call's stream after the codec. The codec answers
/// `UNIMPLEMENTED` for any other.
public struct GRPCRoutes: Sendable {
    public typealias Install = @Sendable (ChannelPipeline.SynchronousOperations, GRPCRequestHead) throws -> Void
    var methods: [String: Install] = [:]

    public init() {}

    public mutating func add(_ path: String, _ install: @escaping Install) {
        methods[path] = install
    }

    public var paths: [String] { methods.keys.sorted() }
}

/// One gRPC call on one HTTP/2 stream: HTTP/2 frames in, request parts
/// out; response parts in, HTTP/2 frames out. It checks the head (405 or
/// 415 for what is not gRPC; `UNIMPLEMENTED` for an unknown method or an
/// encoding it cannot read), installs the method's handlers, cuts the DATA
/// into messages (`GRPCMessageReader`), and ends the call with trailers, or
/// with trailers only when no message went out. A call that ends early
/// (an error status before the client's end) is reset after its trailers.
public final class GRPCServerCodec: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTP2Frame.FramePayload
    public typealias InboundOut = GRPCRequestPart
    public typealias OutboundIn = GRPCResponsePart
    public typealias OutboundOut = HTTP2Frame.FramePayload

    private enum State {
        case awaitingHead
        case open(GRPCMessageReader)
        /// The client's side is done; answers may still go out.
        case inputClosed
        /// The status went out (or the call was refused): nothing more.
        case done
    }

    private let routes: GRPCRoutes
    private let maxMessage: Int
    private let logger: Logger
    private var state = State.awaitingHead
    private var context: ChannelHandlerContext?
    private var headersSent = false
    private var inputEnded = false

    public init(routes: GRPCRoutes, maxMessage: Int, logger: Logger) {
        self.routes = routes
        self.maxMessage = maxMessage
        self.logger = logger
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Ends the call with `status` now, whatever the handlers behind the
    /// codec write (`GRPCCallErrors` calls it; their outbound types are
    /// their own).
    func end(_ status: GRPCStatus) {
        guard let context else { return }
        finish(status, context: context)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            received(headers: headers.headers, endStream: headers.endStream, context: context)
        case .data(let data):
            guard case .byteBuffer(let bytes) = data.data else { return }
            received(data: bytes, endStream: data.endStream, context: context)
        default:
            break
        }
    }

    private func received(headers: HPACKHeaders, endStream: Bool, context: ChannelHandlerContext) {
        switch state {
        case .awaitingHead:
            let head: GRPCRequestHead
            switch GRPCRequestHead.parse(headers) {
            case .failure(.http(let status, let reason)):
                refuseHTTP(status: status, reason: reason, context: context)
                return
            case .failure(.grpc(let status)):
                finish(status, context: context)
                return
            case .success(let parsed):
                head = parsed
            }
            guard let install = routes.methods[head.path] else {
                finish(GRPCStatus(.unimplemented, "no method \(head.path) here"), context: context)
                return
            }
            do {
                try install(context.pipeline.syncOperations, head)
                try context.pipeline.syncOperations.addHandler(GRPCCallErrors(logger: logger))
            } catch {
                logger.error("could not set up a gRPC call", metadata: [LogKeys.error: "\(error)"])
                finish(GRPCStatus(.internal, "the call could not be set up"), context: context)
                return
            }
            state = .open(GRPCMessageReader(maxMessage: maxMessage))
            context.fireChannelRead(wrapInboundOut(.head(head)))
            if endStream { endInput(context: context) }
        case .open(let reader):
            // Trailers from the client: its side is done.
            guard reader.pendingBytes == 0 else {
                finish(GRPCStatus(.internal, "the request ended inside a message"), context: context)
                return
            }
            endInput(context: context)
        case .inputClosed, .done:
            break
        }
    }

    private func received(data: ByteBuffer, endStream: Bool, context: ChannelHandlerContext) {
        guard case .open(var reader) = state else { return }
        reader.append(data)
        do {
            while let message = try reader.next() {
                state = .open(reader)
                context.fireChannelRead(wrapInboundOut(.message(message)))
                // A handler may have ended the call.
                guard case .open = state else { return }
            }
        } catch {
            state = .open(reader)
            finish(error, context: context)
            return
        }
        state = .open(reader)
        if endStream {
            guard reader.pendingBytes == 0 else {
                finish(GRPCStatus(.internal, "the request ended inside a message"), context: context)
                return
            }
            endInput(context: context)
        }
    }

    private func endInput(context: ChannelHandlerContext) {
        inputEnded = true
        state = .inputClosed
        context.fireChannelRead(wrapInboundOut(.end))
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .message(let message):
            if case .done = state {
                promise?.fail(ChannelError.ioOnClosedChannel)
                return
            }
            sendHeadersIfNeeded(context: context)
            let framed = GRPCMessageReader.framed(message, allocator: context.channel.allocator)
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(framed)))), promise: promise)
        case .end(let status):
            finish(status, context: context, promise: promise)
        }
    }

    private func sendHeadersIfNeeded(context: ChannelHandlerContext) {
        guard !headersSent else { return }
        headersSent = true
        let headers: HPACKHeaders = [":status": "200", "content-type": "application/grpc", "grpc-accept-encoding": "identity"]
        context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
    }

    /// Ends the call with `status`: trailers (or trailers only), then a
    /// reset if the client has not finished its side.
    private func finish(_ status: GRPCStatus, context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil) {
        if case .done = state {
            promise?.succeed()
            return
        }
        state = .done
        var trailers: HPACKHeaders =
            headersSent ? [:] : [":status": "200", "content-type": "application/grpc", "grpc-accept-encoding": "identity"]
        headersSent = true
        trailers.add(name: "grpc-status", value: "\(status.code.rawValue)")
        if !status.message.isEmpty { trailers.add(name: "grpc-message", value: status.encodedMessage) }
        let written = context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))))
        written.cascade(to: promise)
        if !inputEnded {
            // The answer is whole; the client's side is not: the stream is
            // reset with NO_ERROR (RFC 9113 §8.1), which also tells the
            // client to stop sending.
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.rstStream(.noError))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func refuseHTTP(status: Int, reason: String, context: ChannelHandlerContext) {
        state = .done
        headersSent = true
        let headers: HPACKHeaders = [":status": "\(status)", "content-type": "text/plain; charset=utf-8"]
        context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
        var body = context.channel.allocator.buffer(capacity: reason.utf8.count + 1)
        body.writeString(reason + "\n")
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(body), endStream: true)))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// An error on the stream itself (the client reset it, a protocol
    /// error): the call ends; other calls and the connection go on.
    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("gRPC stream error", metadata: [LogKeys.error: "\(error)"])
        finish(GRPCStatus(.internal, "\(error)"), context: context)
    }
}

/// Last on a call's stream: an error a method's handlers raised (a
/// malformed batch, say) is logged with its reason and ends that call with
/// a status (`INVALID_ARGUMENT` unless it is one); other calls and the
/// connection go on.
final class GRPCCallErrors: ChannelInboundHandler {
    typealias InboundIn = Any
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let status = error as? GRPCStatus ?? GRPCStatus(.invalidArgument, "\(error)")
        let metadata: Logger.Metadata = [
            LogKeys.reason: "\(status)",
            LogKeys.remote: "\(context.channel.parent?.remoteAddress.map { "\($0)" } ?? "?")",
        ]
        switch status.code {
        case .notFound, .resourceExhausted, .unavailable, .unauthenticated, .permissionDenied:
            // Refusals a client is told of; the listener counts them.
            logger.debug("refusing a gRPC call", metadata: metadata)
        default:
            // A client sending what is not a good call: at most one warning
            // every 10 s in the process, whatever it sends.
            if Self.warnings.admit() { logger.warning("ending a gRPC call", metadata: metadata) }
        }
        (try? context.pipeline.syncOperations.handler(type: GRPCServerCodec.self))?.end(status)
    }

    static let warnings = WarningLimit(every: .seconds(10))
}

/// At most one warning per period: `admit` says whether this one goes.
final class WarningLimit: Sendable {
    private let period: TimeAmount
    private let last = NIOLockedValueBox<NIODeadline?>(nil)

    init(every period: TimeAmount) {
        self.period = period
    }

    func admit(now: NIODeadline = .now()) -> Bool {
        last.withLockedValue { last in
            if let previous = last, now - previous < period { return false }
            last = now
            return true
        }
    }
}
