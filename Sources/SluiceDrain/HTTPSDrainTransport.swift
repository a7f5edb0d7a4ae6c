import FoundationEssentials
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SluiceBindings
import SluiceWire

/// `https://`: batched POSTs of octet-counted RFC 5424 lines, as Logplex
/// sends to HTTPS drains (`application/logplex-1`, `Logplex-Msg-Count`,
/// `Logplex-Frame-Id`), on one kept-alive connection. A 2xx is delivered;
/// 5xx, 429, timeouts and connection failures are tried again; any other
/// status drops the batch.
final class HTTPSDrainTransport: DrainTransport {
    let maxBatchCount = 1000
    let maxBatchBytes = 512 * 1024
    let batchDelay = Duration.seconds(1)

    private let url: DrainURL
    private let group: any EventLoopGroup
    private let tls: NIOSSLContext
    private let connectTimeout: TimeAmount
    private let requestTimeout: TimeAmount
    private let connection = DrainConnection()

    var isOpen: Bool { connection.isOpen }

    func abort() { connection.abort() }

    init(
        url: DrainURL, group: any EventLoopGroup, connectTimeout: TimeAmount = .seconds(10),
        requestTimeout: TimeAmount = .seconds(30)
    ) throws {
        self.url = url
        self.group = group
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.tls = try url.tlsContext()
    }

    func send(_ batch: DrainBatch, batchID: UInt64) async throws {
        let channel = try await connected()
        let body = batch.framed
        var headers = HTTPHeaders()
        let host = url.host.contains(":") ? "[\(url.host)]" : url.host
        headers.add(name: "Host", value: url.port == 443 ? host : "\(host):\(url.port)")
        headers.add(name: "User-Agent", value: "sluice")
        headers.add(name: "Content-Type", value: "application/logplex-1")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Logplex-Msg-Count", value: String(batch.count))
        headers.add(name: "Logplex-Frame-Id", value: String(batchID, radix: 16))
        if let credentials = basicCredentials {
            headers.add(name: "Authorization", value: "Basic " + Data(credentials.utf8).base64EncodedString())
        }
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: url.requestTarget, headers: headers)
        let promise = channel.eventLoop.makePromise(of: HTTPResponseHead.self)
        let timeout = channel.eventLoop.scheduleTask(in: requestTimeout) {
            promise.fail(DrainSendError(reason: "no answer within \(self.requestTimeout)"))
            channel.close(promise: nil)
        }
        channel.writeAndFlush(DrainHTTPRequest(head: head, body: body, response: promise)).whenFailure { error in
            promise.fail(error)
        }
        let response: HTTPResponseHead
        do {
            response = try await promise.futureResult.get()
            timeout.cancel()
        } catch {
            timeout.cancel()
            connection.drop(channel)
            throw DrainSendError(reason: "POST to \(url.redacted) failed: \(error)")
        }
        if !response.isKeepAlive {
            connection.drop(channel)
        }
        switch response.status.code {
        case 200..<300:
            return
        case 400..<429, 430..<500:
            throw DrainSendError(
                reason: "\(url.redacted) refused the batch: \(response.status.code) \(response.status.reasonPhrase)",
                permanent: true)
        default:
            // 5xx, 429, and anything else a collector should not answer.
            throw DrainSendError(reason: "\(url.redacted) answered \(response.status.code) \(response.status.reasonPhrase)")
        }
    }

    /// `user:password` for Basic auth, each part percent-decoded as URLs
    /// carry them.
    private var basicCredentials: String? {
        guard let userInfo = url.userInfo else { return nil }
        let parts = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let user = URIQuery.percentDecode(parts[0]) ?? String(parts[0])
        let password = parts.count > 1 ? (URIQuery.percentDecode(parts[1]) ?? String(parts[1])) : ""
        return "\(user):\(password)"
    }

    private func connected() async throws -> any Channel {
        if let channel = connection.active { return channel }
        let tls = self.tls
        let serverName = url.serverNameIndication
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        try sync.addHTTPClientHandlers()
                        try sync.addHandler(DrainHTTPHandler())
                    }
                }
                .connect(host: url.host, port: url.port)
                .get()
            try connection.adopt(channel)
            return channel
        } catch {
            throw DrainSendError(reason: "connecting to \(url.redacted) failed: \(error)")
        }
    }

    func close() async {
        await connection.close()
    }
}

/// One POST and the promise of its answer.
struct DrainHTTPRequest {
    var head: HTTPRequestHead
    var body: ByteBuffer
    var response: EventLoopPromise<HTTPResponseHead>
}

/// Writes a request and completes its promise with the answer's head once
/// the answer's body has been read. One request at a time.
final class DrainHTTPHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = DrainHTTPRequest
    typealias OutboundOut = HTTPClientRequestPart

    private var pending: EventLoopPromise<HTTPResponseHead>?
    private var head: HTTPResponseHead?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        pending = request.response
        head = nil
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            if let head, let pending {
                self.pending = nil
                pending.succeed(head)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        pending?.fail(error)
        pending = nil
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        pending?.fail(ChannelError.inputClosed)
        pending = nil
        context.fireChannelInactive()
    }
}
