import Logging
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import SluiceGRPC
import SluiceProto
import SluiceWire
import SwiftProtobuf
@testable import SluiceController

/// One gRPC call as `GRPCServerCodec` reads it from its HTTP/2 stream: a
/// head picked by the first byte (one of the ingress and egress methods,
/// or a call that is not gRPC), then the rest as DATA frames cut where
/// the fuzzer says. Ingress calls go through `IngressCall` and each batch
/// is checked whole (as the controller's router does); egress requests
/// are read into an `EgressQuery`. What the codec writes must be one
/// well-formed answer: headers first; an HTTP refusal is headers and one
/// DATA frame; otherwise messages each with its 5-byte prefix, and the
/// stream ended once with a `grpc-status` in 0...16, followed by nothing
/// but (for a call the client had not ended) one RST_STREAM(NO_ERROR).
enum GRPCTarget: FuzzTarget {
    static let name = "grpc"

    final class Ingress: ChannelInboundHandler {
        typealias InboundIn = GRPCRequestPart
        typealias OutboundOut = GRPCResponsePart
        var call: IngressCall

        init(_ method: IngressCall.Method) {
            call = IngressCall(method: method, gather: 4096)
        }

        func take(_ batch: IngressCall.Batch, context: ChannelHandlerContext) throws {
            _ = try batch.bytes.withUnsafeReadableBytes { try EnvelopeBatchScanner.validate($0) }
            if call.acknowledged(upTo: batch.sequence) { answer(context) }
        }

        func answer(_ context: ChannelHandlerContext) {
            context.write(wrapOutboundOut(.message(ByteBuffer())), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(.ok)), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            do {
                switch unwrapInboundIn(data) {
                case .head: break
                case .message(let message):
                    if let batch = try call.message(message, allocator: context.channel.allocator) { try take(batch, context: context) }
                case .end:
                    let (last, answer) = try call.ended()
                    if let last { try take(last, context: context) }
                    if answer { self.answer(context) }
                }
            } catch {
                context.fireErrorCaught(error)
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            if let batch = call.readComplete() {
                do { try take(batch, context: context) } catch { context.fireErrorCaught(error) }
            }
        }
    }

    final class Egress: ChannelInboundHandler {
        typealias InboundIn = GRPCRequestPart
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .message(let message) = unwrapInboundIn(data) else { return }
            guard let request = try? Loggregator_V2_EgressBatchRequest(serializedBytes: Array(message.readableBytesView)) else {
                context.fireErrorCaught(GRPCStatus(.invalidArgument, "not an EgressRequest"))
                return
            }
            if case .failure(let status) = EgressQuery.parse(request) { context.fireErrorCaught(status) }
        }
    }

    static let paths = [
        IngressCall.Method.batchSender.rawValue, IngressCall.Method.send.rawValue, IngressCall.Method.sender.rawValue,
        "/loggregator.v2.Egress/BatchedReceiver",
    ]

    static let routes: GRPCRoutes = {
        var routes = GRPCRoutes()
        for method in IngressCall.Method.allCases {
            routes.add(method.rawValue) { pipeline, _ in try pipeline.addHandler(Ingress(method)) }
        }
        routes.add("/loggregator.v2.Egress/BatchedReceiver") { pipeline, _ in try pipeline.addHandler(Egress()) }
        return routes
    }()

    static func run(_ input: UnsafeRawBufferPointer) {
        guard let first = input.first else { return }
        let channel = EmbeddedChannel()
        try! channel.pipeline.syncOperations.addHandler(
            GRPCServerCodec(routes: routes, maxMessage: 64 * 1024, logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })))
        defer {
            // A call the codec ended early closed the channel; its handlers
            // are removed by a task on the loop.
            channel.embeddedEventLoop.run()
            _ = try? channel.finish()
        }
        let headers: HPACKHeaders = [
            ":method": first & 0x08 == 0 ? "POST" : "GET", ":path": paths[Int(first & 0x03)], ":scheme": "http",
            "content-type": first & 0x04 == 0 ? "application/grpc" : "text/plain", "te": "trailers",
        ]
        _ = try? channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: first & 0x10 != 0)))
        let chunks = FuzzTargets.chunks(UnsafeRawBufferPointer(rebasing: input.dropFirst()))
        for (index, chunk) in chunks.enumerated() {
            let end = first & 0x80 != 0 && index == chunks.count - 1
            _ = try? channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(bytes: chunk)), endStream: end)))
            channel.pipeline.fireChannelReadComplete()
        }
        check(channel)
    }

    static func check(_ channel: EmbeddedChannel) {
        var frames: [HTTP2Frame.FramePayload] = []
        while let frame = try? channel.readOutbound(as: HTTP2Frame.FramePayload.self) { frames.append(frame) }
        guard case .headers(let head)? = frames.first else {
            if frames.isEmpty { return }
            fatalError("the answer does not start with headers: \(frames)")
        }
        let status = head.headers.first(name: ":status")
        if status != "200" {
            guard frames.count == 2, case .data(let body) = frames[1], body.endStream else {
                fatalError("an HTTP refusal (\(status ?? "no status")) is not headers and one last DATA frame: \(frames)")
            }
            return
        }
        var ended = head.endStream
        var reset = false
        for frame in frames.dropFirst() {
            // After the trailers, only the reset of a call the client had
            // not ended, with NO_ERROR, once.
            if case .rstStream(let code) = frame, ended, !reset {
                guard code == .noError else { fatalError("reset with \(code) after the trailers") }
                reset = true
                continue
            }
            if ended { fatalError("a frame after the stream ended: \(frames)") }
            switch frame {
            case .data(let data):
                guard case .byteBuffer(let bytes) = data.data, bytes.readableBytes >= 5,
                    bytes.getInteger(at: bytes.readerIndex + 1, as: UInt32.self).map({ Int($0) + 5 }) == bytes.readableBytes
                else { fatalError("a message without its prefix: \(data)") }
                if data.endStream { fatalError("a call ended by a DATA frame") }
            case .headers(let trailers):
                guard trailers.endStream else { fatalError("headers twice, not as trailers") }
                ended = true
            default:
                fatalError("the codec wrote \(frame)")
            }
        }
        guard ended else { return }  // still open: waiting for more of the call
        let trailers =
            frames.last { if case .headers = $0 { true } else { false } }
            .flatMap { if case .headers(let h) = $0 { h.headers } else { nil } } ?? head.headers
        guard let code = trailers.first(name: "grpc-status").flatMap(Int.init), (0...16).contains(code) else {
            fatalError("no grpc-status in 0...16 in the trailers: \(trailers)")
        }
    }
}
