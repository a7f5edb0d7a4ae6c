import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// An HTTPS server on 127.0.0.1 that records every request and answers each
/// with the next scripted status (200 once the script runs out), keeping
/// connections alive unless the client asks otherwise.
final class HTTPSReceiver: Sendable {
    struct Request: Sendable {
        let method: HTTPMethod
        let uri: String
        let headers: HTTPHeaders
        let body: [UInt8]

        func header(_ name: String) -> String? { headers.first(name: name) }
    }

    fileprivate struct State: Sendable {
        var requests: [Request] = []
        var responses: [Int] = []
        var connections: [any Channel] = []
    }

    let port: Int
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    private init(port: Int, channel: any Channel, state: NIOLockedValueBox<State>) {
        self.port = port
        self.channel = channel
        self.state = state
    }

    static func start(certificates: TestCertificates) async throws -> HTTPSReceiver {
        let chain = try NIOSSLCertificate.fromPEMFile(certificates.certPath).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: certificates.keyPath, format: .pem)
        let context = try NIOSSLContext(
            configuration: TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
        let state = NIOLockedValueBox(State())
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                state.withLockedValue { $0.connections.append(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(RecordingHandler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        guard let port = channel.localAddress?.port else {
            try? await channel.close()
            throw DrainPeerError("the HTTPS receiver has no local port")
        }
        return HTTPSReceiver(port: port, channel: channel, state: state)
    }

    /// The statuses to answer the next requests with, one each, in order.
    func setResponses(_ statuses: [Int]) {
        state.withLockedValue { $0.responses = statuses }
    }

    var requests: [Request] { state.withLockedValue { $0.requests } }

    /// How many TCP connections were accepted (to see whether a client reuses one).
    var connectionsAccepted: Int { state.withLockedValue { $0.connections.count } }

    /// All requests, once there are at least `count`.
    func waitForRequests(_ count: Int, timeout: Duration) async throws -> [Request] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let requests = self.requests
            if requests.count >= count { return requests }
            guard ContinuousClock.now < deadline else {
                throw DrainPeerError("the HTTPS receiver got \(requests.count) of \(count) requests within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Stops listening and closes every connection.
    func stop() async throws {
        do {
            try await channel.close()
        } catch ChannelError.alreadyClosed {}
        for connection in state.withLockedValue({ $0.connections }) { try? await connection.close() }
    }

    deinit {
        channel.close(promise: nil)
        for connection in state.withLockedValue({ $0.connections }) { connection.close(promise: nil) }
    }

    /// The messages of an application/logplex-1 body: octet-counted frames
    /// (RFC 6587: NONZERO-DIGIT *DIGIT SP MSG), back to back, nothing between.
    static func logplexFrames(_ body: [UInt8]) throws -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var start = 0
        while start < body.count {
            guard let space = body[start...].prefix(10).firstIndex(of: UInt8(ascii: " ")) else {
                throw DrainPeerError("frame \(frames.count) at byte \(start): no length of 1 to 9 digits and a space")
            }
            let digits = body[start..<space]
            guard let first = digits.first, first != UInt8(ascii: "0"),
                  digits.allSatisfy({ UInt8(ascii: "0")...UInt8(ascii: "9") ~= $0 }),
                  let length = Int(String(decoding: digits, as: UTF8.self))
            else {
                throw DrainPeerError(
                    "frame \(frames.count) at byte \(start): bad length '\(String(decoding: digits, as: UTF8.self))'")
            }
            let end = space + 1 + length
            guard end <= body.count else {
                throw DrainPeerError(
                    "frame \(frames.count) at byte \(start): length \(length) runs past the end of the body "
                        + "(\(body.count - space - 1) bytes left)")
            }
            frames.append(Array(body[(space + 1)..<end]))
            start = end
        }
        return frames
    }
}

/// Records each whole request and answers it with the next scripted status.
private final class RecordingHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let state: NIOLockedValueBox<HTTPSReceiver.State>
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(state: NIOLockedValueBox<HTTPSReceiver.State>) {
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(let chunk):
            body += chunk.readableBytesView
        case .end:
            guard let head else { return }
            self.head = nil
            let request = HTTPSReceiver.Request(method: head.method, uri: head.uri, headers: head.headers, body: body)
            let status = state.withLockedValue { state in
                state.requests.append(request)
                return state.responses.isEmpty ? 200 : state.responses.removeFirst()
            }
            var headers = HTTPHeaders()
            // 204 and 304 must not carry a body, nor so a length.
            if status != 204 && status != 304 { headers.add(name: "Content-Length", value: "0") }
            if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
            let response = HTTPResponseHead(
                version: head.version, status: HTTPResponseStatus(statusCode: status), headers: headers)
            context.write(wrapOutboundOut(.head(response)), promise: nil)
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !head.isKeepAlive {
                let channel = context.channel
                done.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
