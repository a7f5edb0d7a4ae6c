import CoreMetrics
import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket
import SluiceProto
import SluiceTransport
import SluiceWire
import SwiftProtobuf
import Testing

@testable import SluiceController
@testable import SluiceServer

/// The thin handlers around the protocol state, on `EmbeddedChannel`s:
/// they only move bytes and carry out what the state decides.
@Suite struct WebSocketTailHandlerTests {
    struct Written {
        var opcode: UInt8
        var payload: [UInt8]
    }

    /// Every websocket frame written so far (server frames: unmasked).
    static func frames(_ channel: EmbeddedChannel) throws -> [Written] {
        var out: [Written] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            while buffer.readableBytes > 0 {
                let first: UInt8 = buffer.readInteger()!
                let second: UInt8 = buffer.readInteger()!
                var length = Int(second & 0x7F)
                if length == 126 { length = Int(buffer.readInteger(as: UInt16.self)!) }
                if length == 127 { length = Int(buffer.readInteger(as: UInt64.self)!) }
                out.append(Written(opcode: first & 0x0F, payload: buffer.readBytes(length: length)!))
            }
        }
        return out
    }

    static func start(queueLimit: Int = 100) throws -> (EmbeddedChannel, WebSocketTailHandler) {
        let channel = EmbeddedChannel()
        let feed = TailFeed(target: .app("a"), links: [], eventLoop: channel.eventLoop)
        let handler = WebSocketTailHandler(
            feed: feed, settings: .init(queueLimit: queueLimit, pingInterval: .hours(1), json: false),
            metrics: TailMetrics(factory: NOOPMetricsHandler.instance), logger: Logger(label: "test"))
        _ = handler.start(closeFuture: channel.closeFuture)
        try channel.pipeline.syncOperations.addHandler(handler)
        return (channel, handler)
    }

    func text(_ frame: Written) throws -> String {
        String(decoding: try Loggregator_V2_Envelope(serializedBytes: frame.payload).log.payload, as: UTF8.self)
    }

    @Test func eachEnvelopeIsOneBinaryMessageOfItsOwnBytes() throws {
        let (channel, handler) = try Self.start()
        let envelopes = [Make.log(app: "a", "1"), Make.log(app: "a", "2")]
        handler.feedDelivered(try Make.batch(envelopes), parts: [])
        let written = try Self.frames(channel)
        #expect(written.map(\.opcode) == [0x2, 0x2])
        #expect(try written.map(\.payload) == envelopes.map { try Make.bytes($0) })
        _ = try channel.finish()
    }

    /// While the socket takes nothing, lines wait; past the queue's bound
    /// the oldest go, and the reader is told once it has room again.
    @Test func aReaderThatStallsIsToldWhatItLost() throws {
        let (channel, handler) = try Self.start(queueLimit: 2)
        channel.isWritable = false
        handler.feedDelivered(try Make.batch((1...5).map { Make.log(app: "a", "\($0)") }), parts: [])
        #expect(try Self.frames(channel).isEmpty)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        let texts = try Self.frames(channel).map(text)
        #expect(texts.count == 3)
        #expect(texts[0].hasPrefix("Error L10 (output buffer overflow): 3 messages dropped since "))
        #expect(texts[1...] == ["4", "5"])
        _ = try channel.finish()
    }

    @Test func theReadersCloseIsAnsweredWithItsCodeAndTheConnectionEnds() throws {
        let (channel, _) = try Self.start()
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(string: "hi")))
        try channel.writeInbound(
            WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer(bytes: [0x03, 0xE8, 0x6F, 0x6B])))
        let written = try Self.frames(channel)
        #expect(written.map(\.opcode) == [0xA, 0x8])
        #expect(written[0].payload == Array("hi".utf8))
        #expect(written[1].payload == [0x03, 0xE8])
        #expect(!channel.isActive)
    }
}

@Suite struct ServerConnectionHandlerTests {
    static func frame(_ type: FrameType, sequence: UInt64, payload: ByteBuffer, flags: FrameFlags = []) -> Frame {
        Frame(
            header: FrameHeader(length: UInt32(payload.readableBytes), type: type, flags: flags, sequence: sequence),
            payload: payload)
    }

    static func outbound(_ channel: EmbeddedChannel) throws -> [(FrameHeader, ByteBuffer)] {
        var out: [(FrameHeader, ByteBuffer)] = []
        while var bytes = try channel.readOutbound(as: ByteBuffer.self) {
            while let (header, payload) = try ParsedFrame.next(&bytes, maxPayload: .max) { out.append((header, payload)) }
        }
        return out
    }

    /// Stored, handed to this connection's subscriber, then acknowledged:
    /// in that order, one ACK per read burst.
    @Test func aBatchIsStoredStreamedThenAcknowledged() throws {
        let store = EnvelopeStore()
        let channel = EmbeddedChannel(handler: ServerConnectionHandler(store: store, roster: ControllerRoster(zone: "z1"), logger: Logger(label: "test")))
        var request = Sluice_V1_StreamRequest()
        request.sourceID = "a"
        try channel.writeInbound(Self.frame(.subscribe, sequence: 9, payload: Make.buffer(try request.serializedBytes())))
        try channel.writeInbound(Self.frame(.envelopes, sequence: 4, payload: try Make.batch([Make.log(app: "a")])))
        let out = try Self.outbound(channel)
        #expect(out.map(\.0.type) == [.stream, .ack])
        #expect(out[0].0.sequence == 9)
        #expect(out[1].0.sequence == 4)
        #expect(store.totals.envelopes == 1)
        _ = try channel.finish()
    }
}

@Suite struct IngressHandlerTests {
    /// A frame none of whose envelopes can be routed waits for no server:
    /// it is acknowledged at once (its envelopes counted as dropped).
    /// An ingress connection in front of one link that is never started.
    static func ingress() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let link = ServerLink(
            endpoint: Endpoint(host: "127.0.0.1", port: 9), eventLoop: channel.eventLoop, logger: Logger(label: "test"))
        let router = IngressRouter(links: [link], metrics: NOOPMetricsHandler.instance)
        try channel.pipeline.syncOperations.addHandler(IngressHandler(router: router, logger: Logger(label: "test")))
        return channel
    }

    @Test func aFrameWithNothingRoutableIsAcknowledgedAtOnce() throws {
        let channel = try Self.ingress()
        var hello = ByteBuffer()
        hello.writeInteger(UInt64(77))
        try channel.writeInbound(ServerConnectionHandlerTests.frame(.hello, sequence: 0, payload: hello))
        try channel.writeInbound(
            ServerConnectionHandlerTests.frame(.envelopes, sequence: 3, payload: try Make.batch([Make.log(app: "")])))
        let out = try ServerConnectionHandlerTests.outbound(channel)
        #expect(out.map(\.0.type) == [.ack])
        #expect(out.first?.0.sequence == 3)
        _ = try channel.finish()
    }

    @Test func aFrameOfAnotherKindIsAnError() throws {
        let channel = try Self.ingress()
        #expect(throws: WireError.self) {
            try channel.writeInbound(ServerConnectionHandlerTests.frame(.subscribe, sequence: 1, payload: ByteBuffer()))
        }
    }
}
