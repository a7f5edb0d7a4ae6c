import Logging
import NIOCore
import NIOHTTP1
import Prometheus
import SluiceTransport
import SluiceShipping
import SluiceSyslog
import SluiceWire

/// The agent's HTTP side: `POST /logs` takes a logplex-1 body (octet-counted
/// RFC 5424 frames, as log-shuttle sends them), `GET /healthz` and
/// `GET /metrics`. A body is checked whole (`LogplexBody`) before any of it
/// is taken.
final class AgentHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let intake: SyslogIntake
    private let registry: PrometheusCollectorRegistry?
    private let maxBodyBytes: Int
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var tooLarge = false

    init(intake: SyslogIntake, registry: PrometheusCollectorRegistry?, maxBodyBytes: Int) {
        self.intake = intake
        self.registry = registry
        self.maxBodyBytes = maxBodyBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = nil
            tooLarge = false
        case .body(var chunk):
            guard !tooLarge else { return }
            if (body?.readableBytes ?? 0) + chunk.readableBytes > maxBodyBytes {
                tooLarge = true
                body = nil
            } else if body == nil {
                body = chunk
            } else {
                body!.writeBuffer(&chunk)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            if head.method == .GET, URIQuery.split(head.uri).0 == "/readyz" {
                answerReadiness(head: head, context: context)
                return
            }
            let (status, text) = respond(to: head)
            body = nil
            guard status == .noContent, intake.shipper.spool != nil else {
                write(status: status, body: text, head: head, context: context)
                return
            }
            // With a spool, the lines are acknowledged once written to it.
            let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
            intake.shipper.whenSpooled(on: context.eventLoop).whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case .success:
                    handler.write(status: status, body: text, head: head, context: context)
                case .failure:
                    handler.write(
                        status: .serviceUnavailable,
                        body: handler.error("stopping", "the agent stopped before the lines were written to its spool"),
                        head: head, context: context)
                }
            }
        }
    }

    /// `GET /readyz`: ready while a controller is connected, so that what
    /// the agent takes in goes on (it buffers, and spools with `--spool`,
    /// while none is; a probe that fails moves sources to another agent).
    private func answerReadiness(head: HTTPRequestHead, context: ChannelHandlerContext) {
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        intake.shipper.client.connectedNow().hop(to: context.eventLoop).whenComplete { result in
            let (handler, context) = bound.value
            let answer: Readiness = (try? result.get()) == true ? .ready : .notReady("no controller is connected")
            handler.write(
                status: HTTPResponseStatus(statusCode: answer.status), body: answer.json, head: head, context: context)
        }
    }

    /// The answer to a whole request: status and body.
    private func respond(to head: HTTPRequestHead) -> (HTTPResponseStatus, String) {
        let (path, query) = URIQuery.split(head.uri)
        switch (head.method, path) {
        case (.GET, "/healthz"):
            return (.ok, #"{"status":"ok"}"#)
        case (.GET, "/metrics"):
            return (.ok, String(decoding: registry?.emitToBuffer() ?? [], as: UTF8.self))
        case (.POST, "/logs"):
            return takeLogs(head: head, query: query)
        case (_, "/logs"):
            return (.methodNotAllowed, error("method_not_allowed", "/logs takes POST"))
        case (_, "/healthz"), (_, "/metrics"), (_, "/readyz"):
            return (.methodNotAllowed, error("method_not_allowed", "\(path) takes GET"))
        default:
            return (.notFound, error("not_found", "no such endpoint: \(path)"))
        }
    }

    private func takeLogs(head: HTTPRequestHead, query: [String: String]) -> (HTTPResponseStatus, String) {
        guard !tooLarge else {
            return (.payloadTooLarge, error("body_too_large", "the body is over \(maxBodyBytes) bytes"))
        }
        let type = head.headers.first(name: "Content-Type")?.split(separator: ";").first?.trimmingSpaces ?? ""
        guard type.lowercased() == LogplexBody.contentType else {
            return (
                .badRequest,
                error("bad_content_type", "Content-Type must be \(LogplexBody.contentType), not '\(type)'")
            )
        }
        if let app = query["app"], app.isEmpty {
            return (.badRequest, error("bad_app", "the app query parameter is empty"))
        }
        let body = self.body ?? ByteBuffer()
        let frames: [Range<Int>]
        do {
            frames = try body.withUnsafeReadableBytes { bytes throws(LogplexBody.Refusal) in
                try LogplexBody.messages(
                    in: bytes, declaredCount: head.headers.first(name: "Logplex-Msg-Count"), maxMessageBytes: maxBodyBytes)
            }
        } catch {
            return (.badRequest, self.error(error.code, error.message))
        }
        body.withUnsafeReadableBytes { bytes in
            for frame in frames {
                intake.take(UnsafeRawBufferPointer(rebasing: bytes[frame]), input: .http, app: query["app"])
            }
        }
        return (.noContent, "")
    }

    private func error(_ code: String, _ message: String) -> String {
        HTTPResponder.errorJSON(code, message)
    }

    private func write(status: HTTPResponseStatus, body: String, head: HTTPRequestHead, context: ChannelHandlerContext) {
        let metrics = status == .ok && head.uri.hasPrefix("/metrics")
        HTTPResponder.respond(
            context: context, request: head, status: status,
            contentType: metrics ? "text/plain; version=0.0.4" : "application/json", body: ByteBuffer(string: body),
            close: tooLarge)
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
