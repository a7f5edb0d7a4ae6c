import Logging
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import SluiceGRPC
import SluiceTransport
import Testing

/// The gRPC framing, the ingress call's decisions and the server codec,
/// without sockets.
struct GRPCCodecTests {
    static func prefixed(_ bytes: [UInt8], flag: UInt8 = 0) -> [UInt8] {
        [flag] + withUnsafeBytes(of: UInt32(bytes.count).bigEndian, Array.init) + bytes
    }

    @Test func messagesAreCutWhereverTheDataEnds() throws {
        let messages: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 7, count: 300), [9]]
        let stream = messages.flatMap { Self.prefixed($0) }
        // Every way of cutting the stream in two (-1: one byte at a time).
        for cut in [-1] + Array(0...stream.count) {
            var reader = GRPCMessageReader(maxMessage: 1024)
            var got: [[UInt8]] = []
            let chunks: [ArraySlice<UInt8>] =
                cut == -1 ? stream.map { [$0][...] } : [stream[..<cut], stream[cut...]]
            for chunk in chunks {
                reader.append(ByteBuffer(bytes: chunk))
                while let message = try reader.next() { got.append(Array(message.readableBytesView)) }
            }
            #expect(got == messages, "cut at \(cut)")
            #expect(reader.pendingBytes == 0)
        }
    }

    @Test func compressedAndOversizedMessagesAreRefused() {
        var compressed = GRPCMessageReader(maxMessage: 1024)
        compressed.append(ByteBuffer(bytes: Self.prefixed([1, 2], flag: 1)))
        #expect(throws: GRPCStatus.self) { try compressed.next() }
        do {
            _ = try compressed.next()
        } catch {
            #expect(error.code == .unimplemented)
        }
        var large = GRPCMessageReader(maxMessage: 10)
        // Refused from its prefix alone, before its bytes arrive.
        large.append(ByteBuffer(bytes: Array(Self.prefixed(Array(repeating: 0, count: 11)).prefix(5))))
        do {
            _ = try large.next()
            Issue.record("an 11-byte message passed a 10-byte limit")
        } catch {
            #expect(error.code == .resourceExhausted)
        }
    }

    @Test func statusMessagesArePercentEncoded() {
        #expect(GRPCStatus(.internal, "a%b\nc é").encodedMessage == "a%25b%0Ac %C3%A9")
        #expect(GRPCStatus(.ok).encodedMessage == "")
    }

    static func batch(_ envelopes: [[UInt8]]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for envelope in envelopes { buffer.writeBatchEntry(ByteBuffer(bytes: envelope)) }
        return buffer
    }

    @Test func sendIsAnsweredOnceItsBatchIsAcknowledged() throws {
        var call = IngressCall(method: .send)
        let taken = try call.message(Self.batch([[1]]), allocator: .init())
        let batch = try #require(taken)
        #expect(batch.sequence == 1)
        let (last, answer) = try call.ended()
        #expect(last == nil && !answer)
        #expect(!call.answered)
        let answerNow = call.acknowledged(upTo: 1)
        #expect(answerNow && call.answered)
        // Once.
        let again = call.acknowledged(upTo: 1)
        #expect(!again)
        var twice = IngressCall(method: .send)
        _ = try twice.message(Self.batch([[1]]), allocator: .init())
        #expect(throws: GRPCStatus.self) { _ = try twice.message(Self.batch([[2]]), allocator: .init()) }
        var none = IngressCall(method: .send)
        #expect(throws: GRPCStatus.self) { _ = try none.ended() }
    }

    @Test func streamsAreAnsweredAtTheirEndOnceEverythingIsAcknowledged() throws {
        var call = IngressCall(method: .batchSender)
        for expected in 1...3 {
            let taken = try call.message(Self.batch([[UInt8(expected)]]), allocator: .init())
            let batch = try #require(taken)
            #expect(batch.sequence == UInt64(expected))
        }
        let early = call.acknowledged(upTo: 3)
        #expect(!early)  // acknowledged, but the client has not ended
        var waiting = IngressCall(method: .batchSender)
        for index in 0..<3 { _ = try waiting.message(Self.batch([[UInt8(index)]]), allocator: .init()) }
        let partly = waiting.acknowledged(upTo: 2)
        #expect(!partly)
        let (last, answer) = try waiting.ended()
        #expect(last == nil && !answer)
        let all = waiting.acknowledged(upTo: 3)
        #expect(all)
        let (_, answerNow) = try call.ended()
        #expect(answerNow)
    }

    /// A host stopping: a stream ends (UNAVAILABLE) once what it took is
    /// acknowledged, what `Sender` gathered going first; a `Send` and a
    /// stream its client ended are answered as ever.
    @Test func aStoppingHostEndsStreamsOnceTheirBatchesAreAcknowledged() throws {
        var stream = IngressCall(method: .batchSender)
        for index in 0..<2 { _ = try stream.message(Self.batch([[UInt8(index)]]), allocator: .init()) }
        let (none, endNow) = stream.stop()
        #expect(none == nil && !endNow && stream.stopping)
        let okAfterOne = stream.acknowledged(upTo: 1)
        let dueAfterOne = stream.stopDue()
        #expect(!okAfterOne && !dueAfterOne)
        let okAfterTwo = stream.acknowledged(upTo: 2)
        let dueAfterTwo = stream.stopDue()
        let dueAgain = stream.stopDue()
        #expect(!okAfterTwo && dueAfterTwo && !dueAgain)

        var sender = IngressCall(method: .sender, gather: 1000)
        _ = try sender.message(ByteBuffer(bytes: [0x10, 1]), allocator: .init())
        let (gathered, _) = sender.stop()
        #expect(try #require(gathered).sequence == 1)
        let dueEarly = sender.stopDue()
        _ = sender.acknowledged(upTo: 1)
        let dueNow = sender.stopDue()
        #expect(!dueEarly && dueNow)

        var idle = IngressCall(method: .sender)
        let idleEnds = idle.stop().end
        #expect(idleEnds)

        var send = IngressCall(method: .send)
        _ = try send.message(Self.batch([[1]]), allocator: .init())
        let (_, sendEnds) = send.stop()
        #expect(!sendEnds && !send.stopping)
        _ = try send.ended()
        let sendAnswered = send.acknowledged(upTo: 1)
        #expect(sendAnswered)

        var ended = IngressCall(method: .batchSender)
        _ = try ended.message(Self.batch([[1]]), allocator: .init())
        _ = try ended.ended()
        let endedEnds = ended.stop().end
        #expect(!endedEnds && !ended.stopping)
        let endedAnswered = ended.acknowledged(upTo: 1)
        #expect(endedAnswered)
    }

    @Test func senderGathersEachReadIntoOneBatch() throws {
        var call = IngressCall(method: .sender, gather: 1000)
        let envelopes: [[UInt8]] = [[0x10, 1], [0x10, 2], [0x10, 3]]
        for envelope in envelopes {
            let batch = try call.message(ByteBuffer(bytes: envelope), allocator: .init())
            #expect(batch == nil)
        }
        let gathered = call.readComplete()
        let batch = try #require(gathered)
        #expect(batch.bytes == Self.batch(envelopes))
        let nothing = call.readComplete()
        #expect(nothing == nil)
        // Past `gather` bytes a batch goes at once.
        var small = IngressCall(method: .sender, gather: 6)
        // An entry is 5 bytes here: the second would take the batch past 6,
        // so the first goes alone, and the second at the end.
        let first = try small.message(ByteBuffer(bytes: [1, 2, 3]), allocator: .init())
        let second = try small.message(ByteBuffer(bytes: [4, 5, 6]), allocator: .init())
        #expect(first == nil && second?.sequence == 1 && second?.bytes == Self.batch([[1, 2, 3]]))
        let (last, _) = try small.ended()
        #expect(last?.sequence == 2 && last?.bytes == Self.batch([[4, 5, 6]]))
        // An envelope that cannot fit in a batch the receiver takes.
        var bounded = IngressCall(method: .sender, maxBatch: 10)
        #expect(throws: GRPCStatus.self) { _ = try bounded.message(ByteBuffer(bytes: Array(repeating: 0, count: 9)), allocator: .init()) }
    }

    // MARK: the codec on an embedded stream

    final class Recorder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = GRPCRequestPart
        typealias OutboundOut = GRPCResponsePart
        var parts: [String] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): parts.append("head \(head.path)")
            case .message(let message): parts.append("message \(Array(message.readableBytesView))")
            case .end:
                parts.append("end")
                context.write(wrapOutboundOut(.message(ByteBuffer(bytes: [42]))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(GRPCStatus(.ok))), promise: nil)
            }
        }
    }

    static func channel(recorder: Recorder) throws -> EmbeddedChannel {
        var routes = GRPCRoutes()
        routes.add("/test.Service/Echo") { pipeline, _ in try pipeline.addHandler(recorder) }
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(GRPCServerCodec(routes: routes, maxMessage: 1024, logger: Logger(label: "test")))
        return channel
    }

    static func request(_ path: String, method: String = "POST", contentType: String = "application/grpc") -> HTTP2Frame.FramePayload {
        .headers(.init(headers: [":method": method, ":path": path, ":scheme": "http", "content-type": contentType, "te": "trailers"]))
    }

    static func outbound(_ channel: EmbeddedChannel) throws -> [HTTP2Frame.FramePayload] {
        var frames: [HTTP2Frame.FramePayload] = []
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { frames.append(frame) }
        return frames
    }

    @Test func aCallIsRoutedAndAnsweredWithHeadersMessageAndTrailers() throws {
        let recorder = Recorder()
        let channel = try Self.channel(recorder: recorder)
        try channel.writeInbound(Self.request("/test.Service/Echo"))
        try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(bytes: Self.prefixed([5, 6]))))))
        try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
        #expect(recorder.parts == ["head /test.Service/Echo", "message [5, 6]", "end"])
        let frames = try Self.outbound(channel)
        guard frames.count == 3, case .headers(let head) = frames[0], case .data(let data) = frames[1],
            case .headers(let trailers) = frames[2], case .byteBuffer(let body) = data.data
        else {
            Issue.record("not headers, data, trailers: \(frames)")
            return
        }
        #expect(head.headers.first(name: ":status") == "200" && head.headers.first(name: "content-type") == "application/grpc")
        #expect(Array(body.readableBytesView) == Self.prefixed([42]))
        #expect(trailers.endStream && trailers.headers.first(name: "grpc-status") == "0")
    }

    @Test func whatIsNotAKnownGRPCCallIsRefused() throws {
        for (request, status, grpcStatus) in [
            (Self.request("/test.Service/Nothing"), "200", "12"),
            (Self.request("/test.Service/Echo", method: "GET"), "405", nil),
            (Self.request("/test.Service/Echo", contentType: "application/json"), "415", nil),
            (Self.request("/test.Service/Echo", contentType: "application/grpc+json"), "200", "13"),
        ] as [(HTTP2Frame.FramePayload, String, String?)] {
            let recorder = Recorder()
            let channel = try Self.channel(recorder: recorder)
            try channel.writeInbound(request)
            #expect(recorder.parts.isEmpty)
            let frames = try Self.outbound(channel)
            guard case .headers(let head) = frames.first else {
                Issue.record("no headers: \(frames)")
                continue
            }
            #expect(head.headers.first(name: ":status") == status)
            #expect(head.headers.first(name: "grpc-status") == grpcStatus)
            if grpcStatus != nil {
                // Trailers only: one HEADERS frame that ends the stream,
                // then a reset (the client had not ended its side).
                #expect(head.endStream)
                guard frames.count == 2, case .rstStream(let code) = frames[1] else {
                    Issue.record("not trailers only and a reset: \(frames)")
                    continue
                }
                #expect(code == .noError)
            } else {
                guard frames.count == 2, case .data(let body) = frames[1] else {
                    Issue.record("not headers and a body: \(frames)")
                    continue
                }
                #expect(body.endStream)
            }
        }
        // A compressed message ends the call (trailers after the head).
        let recorder = Recorder()
        let channel = try Self.channel(recorder: recorder)
        try channel.writeInbound(Self.request("/test.Service/Echo"))
        try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(bytes: Self.prefixed([1], flag: 1))))))
        let frames = try Self.outbound(channel)
        guard frames.count == 2, case .headers(let trailers) = frames[0], case .rstStream(.noError) = frames[1] else {
            Issue.record("not trailers only and a reset: \(frames)")
            return
        }
        #expect(trailers.endStream && trailers.headers.first(name: "grpc-status") == "12")
        #expect(recorder.parts == ["head /test.Service/Echo"])
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }
}
