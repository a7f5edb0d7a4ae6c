import Logging
import NIOCore
import NIOHTTP1
import Prometheus
import SluiceProto
import SluiceTransport
import SluiceWire
import SwiftProtobuf

/// The controller's HTTP API: recent logs, health, metrics, and clear JSON
/// errors. Websocket streams are taken by the upgrader before this handler.
final class HTTPAPIHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let egress: Egress
    private let registry: PrometheusCollectorRegistry?
    private let logger: Logger
    private var request: HTTPRequestHead?

    init(egress: Egress, registry: PrometheusCollectorRegistry?, logger: Logger) {
        self.egress = egress
        self.registry = registry
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let head = request else { return }
            request = nil
            handle(head, context: context)
        }
    }

    private func handle(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        switch APIRoute.parse(method: head.method.rawValue, uri: head.uri) {
        case .failure(let failure):
            respondError(failure, head: head, context: context)
        case .success(.health):
            respond(status: .ok, contentType: "application/json", body: ByteBuffer(string: #"{"status":"ok"}"#),
                    head: head, context: context)
        case .success(.metrics):
            let text = registry?.emitToBuffer() ?? []
            respond(status: .ok, contentType: "text/plain; version=0.0.4", body: ByteBuffer(bytes: text),
                    head: head, context: context)
        case .success(.stream):
            respondError(
                .init(status: 400, error: "websocket_required",
                      message: "/stream is a websocket: send a GET with Upgrade: websocket"),
                head: head, context: context)
        case .success(.recentLogs(let app, let limit)):
            let wantsProtobuf = head.headers["Accept"].contains { $0.lowercased().contains("application/x-protobuf") }
            let loop = context.eventLoop
            let boundContext = NIOLoopBound(context, eventLoop: loop)
            let bound = NIOLoopBound(self, eventLoop: loop)
            egress.recent(app: app, limit: limit, on: loop).whenSuccess { recent in
                let context = boundContext.value
                let handler = bound.value
                var extra: [(String, String)] = []
                if !recent.partial.isEmpty { extra.append(("Sluice-Partial", recent.partial.joined(separator: ","))) }
                if wantsProtobuf {
                    var body = context.channel.allocator.buffer(
                        capacity: recent.envelopes.reduce(0) { $0 + $1.readableBytes + 6 })
                    for envelope in recent.envelopes { body.writeBatchEntry(envelope) }
                    handler.respond(
                        status: .ok, contentType: "application/x-protobuf", body: body, head: head, context: context,
                        extraHeaders: extra)
                } else {
                    handler.respond(
                        status: .ok, contentType: "application/json",
                        body: ByteBuffer(string: Self.json(recent.envelopes, partial: recent.partial)), head: head,
                        context: context, extraHeaders: extra)
                }
            }
        }
    }

    /// `{"envelopes":{"batch":[…]}}`, each envelope in protobuf's JSON mapping.
    static func json(_ envelopes: [ByteBuffer], partial: [String] = []) -> String {
        var out = #"{"envelopes":{"batch":["#
        var first = true
        for bytes in envelopes {
            guard let envelope = try? Loggregator_V2_Envelope(serializedBytes: Array(bytes.readableBytesView)),
                let json = try? envelope.jsonString()
            else { continue }
            if !first { out += "," }
            first = false
            out += json
        }
        out += "]}"
        if !partial.isEmpty {
            out += #","partial":["# + partial.map { "\"\(jsonEscape($0))\"" }.joined(separator: ",") + "]"
        }
        out += "}"
        return out
    }

    private func respondError(_ failure: APIRoute.Failure, head: HTTPRequestHead, context: ChannelHandlerContext) {
        let body = #"{"error":"\#(jsonEscape(failure.error))","message":"\#(jsonEscape(failure.message))"}"#
        respond(
            status: HTTPResponseStatus(statusCode: failure.status), contentType: "application/json",
            body: ByteBuffer(string: body), head: head, context: context)
    }

    private func respond(
        status: HTTPResponseStatus, contentType: String, body: ByteBuffer, head: HTTPRequestHead,
        context: ChannelHandlerContext, extraHeaders: [(String, String)] = []
    ) {
        var headers = HTTPHeaders(extraHeaders)
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
