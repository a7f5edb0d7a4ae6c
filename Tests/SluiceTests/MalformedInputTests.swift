import NIOCore
import NIOPosix
import SluiceCLI
import SluiceProto
import SluiceServer
import SluiceTransport
import SluiceShipping
import SluiceWire
import Testing

/// Bad frames close only the connection that sent them; every other
/// connection and the process go on.
@Suite(.serialized)
struct MalformedInputTests {
    enum Bad: CaseIterable, Sendable {
        case garbage, truncated, oversized, unknownType, badBatch, wrongVersion

        func bytes(maxPayload: Int) -> ByteBuffer {
            var buffer = ByteBuffer()
            switch self {
            case .garbage:
                buffer.writeString("GET / HTTP/1.1\r\nHost: nope\r\n\r\n this is not a frame at all..")
            case .truncated:
                // A valid header promising 100 bytes, then only 10 and EOF.
                buffer.writeFrameHeader(type: .envelopes, sequence: 1, length: 100)
                buffer.writeBytes([UInt8](repeating: 0x0A, count: 10))
            case .oversized:
                buffer.writeFrameHeader(type: .envelopes, sequence: 1, length: maxPayload + 1)
                buffer.writeBytes([UInt8](repeating: 0, count: 64))
            case .unknownType:
                buffer.writeInteger(UInt32(0))
                buffer.writeInteger(FrameHeader.currentVersion)
                buffer.writeInteger(UInt8(99))
                buffer.writeInteger(UInt16(0))
                buffer.writeInteger(UInt64(1))
            case .badBatch:
                // Field 1 claims 50 bytes but the payload ends after 3.
                let payload: [UInt8] = [0x0A, 50, 0x08]
                buffer.writeFrameHeader(type: .envelopes, sequence: 1, length: payload.count)
                buffer.writeBytes(payload)
            case .wrongVersion:
                buffer.writeInteger(UInt32(0))
                buffer.writeInteger(UInt8(7))
                buffer.writeInteger(FrameType.envelopes.rawValue)
                buffer.writeInteger(UInt16(0))
                buffer.writeInteger(UInt64(1))
            }
            return buffer
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Bad.allCases)
    func controllerIngressClosesOnlyTheBadConnection(_ bad: Bad) async throws {
        let maxPayload = 64 * 1024
        let cluster = try await TestCluster.start(servers: 1, maxFramePayload: maxPayload)
        defer { Task { await cluster.shutdown() } }

        let good = try await FrameConnection.connect(to: cluster.ingress)
        let evil = try await FrameConnection.connect(to: cluster.ingress)
        // A good frame that shares a read with the bad one must not be lost
        // if it came first.
        var builder = BatchFrameBuilder()
        "before".utf8.withContiguousStorageIfAvailable {
            builder.appendLog(.init(sourceID: "victim"), timestamp: 1, payload: UnsafeRawBufferPointer($0))
        }
        try await evil.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
        try await evil.sendRaw(bad.bytes(maxPayload: maxPayload))
        if bad == .truncated { try await evil.close() }
        // The controller closes the bad connection: wait for it.
        try await evil.closeFuture.get()

        // The good connection, opened before, still works.
        "after".utf8.withContiguousStorageIfAvailable {
            builder.appendLog(.init(sourceID: "victim"), timestamp: 2, payload: UnsafeRawBufferPointer($0))
        }
        try await good.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
        try await good.close()
        // And so does a new one; recent shows both good frames, nothing of the bad one.
        try await cluster.emit(app: "victim", lines: ["new connection"])
        let recent = try await cluster.recent(app: "victim")
        #expect(recent.map(\.text) == ["before", "after", "new connection"])
    }

    @Test(.timeLimit(.minutes(1)), arguments: [Bad.garbage, .oversized, .badBatch])
    func bufferServerClosesOnlyTheBadConnection(_ bad: Bad) async throws {
        let maxPayload = 64 * 1024
        let cluster = try await TestCluster.start(servers: 1, maxFramePayload: maxPayload)
        defer { Task { await cluster.shutdown() } }
        let serverEndpoint = try await cluster.servers[0].bind()
        let evil = try await FrameConnection.connect(to: serverEndpoint)
        // A server takes a frame's parts past the ingress limit (see docs/wire.md).
        try await evil.sendRaw(bad.bytes(maxPayload: maxPayload + BufferServer.partsAllowance))
        try await evil.closeFuture.get()
        // The controller's own link to the server is untouched.
        try await cluster.emit(app: "still-fine", lines: ["one", "two"])
        let recent = try await cluster.recent(app: "still-fine")
        #expect(recent.map(\.text) == ["one", "two"])
    }

    @Test func envelopesWithoutSourceIDAreCountedNotStored() async throws {
        let cluster = try await TestCluster.start(servers: 1)
        defer { Task { await cluster.shutdown() } }
        let client = try await FrameConnection.connect(to: cluster.ingress)
        var builder = BatchFrameBuilder()
        "no app".utf8.withContiguousStorageIfAvailable {
            builder.appendLog(.init(sourceID: ""), timestamp: 1, payload: UnsafeRawBufferPointer($0))
            builder.appendLog(.init(sourceID: "has-app"), timestamp: 2, payload: UnsafeRawBufferPointer($0))
        }
        try await client.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
        try await client.close()
        #expect(try await cluster.recent(app: "has-app").count == 1)
        #expect(cluster.metric(#"sluice_controller_envelopes_dropped_total{reason="no_source_id"}"#) == 1)
    }
}
