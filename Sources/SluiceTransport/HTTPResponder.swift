import NIOCore
import NIOHTTP1
import SluiceWire

/// The one way Sluice answers an HTTP request: status, `Content-Type` and
/// `Content-Length` (none for 204), any extra headers, the body; the
/// connection kept open when the request asked for it and `close` is
/// false, else closed once the answer is out. Errors are JSON,
/// `{"error":CODE,"message":TEXT}`.
public enum HTTPResponder {
    public static func respond(
        context: ChannelHandlerContext, request: HTTPRequestHead, status: HTTPResponseStatus,
        contentType: String = "application/json", body: ByteBuffer = ByteBuffer(),
        headers extra: [(String, String)] = [], close: Bool = false
    ) {
        var headers = HTTPHeaders(extra)
        if status != .noContent {
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        }
        let keepAlive = request.isKeepAlive && !close
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: request.version, status: status, headers: headers)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        if status != .noContent {
            context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(body))), promise: nil)
        }
        let done = context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// A JSON error answer.
    public static func error(
        context: ChannelHandlerContext, request: HTTPRequestHead, status: HTTPResponseStatus, code: String,
        message: String, headers: [(String, String)] = [], close: Bool = false
    ) {
        respond(
            context: context, request: request, status: status, body: ByteBuffer(string: errorJSON(code, message)),
            headers: headers, close: close)
    }

    public static func errorJSON(_ code: String, _ message: String) -> String {
        #"{"error":"\#(jsonEscape(code))","message":"\#(jsonEscape(message))"}"#
    }
}
