import NIOCore
import SluiceProto
import SluiceTransport
import SluiceWire
import Testing

@testable import SluiceController

/// `BatchRouter`: which server takes each envelope, the first time and after
/// a server fails. No sockets: builders are inspected directly.
@Suite struct BatchRouterTests {
    static let servers = ["10.0.0.1:9001", "10.0.0.2:9001", "10.0.0.3:9001"]
    let router = BatchRouter(servers: Self.servers)

    /// An app whose owner (rank 0) is `owner` and stand-in (rank 1) is `standIn`.
    func app(owner: Int, standIn: Int) -> String {
        let hash = RendezvousHash(nodes: Self.servers)
        for index in 0..<10_000 {
            let name = "app-\(index)"
            let ranking = hash.ranking(of: name)
            if ranking[0] == owner && ranking[1] == standIn { return name }
        }
        fatalError("no such app")
    }

    /// Routes an ingress frame of one sender frame; returns the builders'
    /// batches and into how many servers the frame went.
    func route(
        _ envelopes: [Loggregator_V2_Envelope], live: LiveServers, sender: UInt64 = 7, sequence: UInt64 = 1
    ) throws -> (batches: [PendingBatch<UInt64>?], servers: Int, outcome: BatchRouter.Outcome) {
        var builders = Array(repeating: PendingBatchBuilder<UInt64>(), count: Self.servers.count)
        var servers = -1
        let batch = try Make.batch(envelopes)
        let part = RoutedPart(sender: sender, sequence: sequence, count: .max, origin: sequence)
        let outcome = try batch.withUnsafeReadableBytesTyped { bytes throws(WireError) in
            try router.route(bytes, parts: CollectionOfOne(part), live: live, into: &builders) { _, count in servers = count }
        }
        return (builders.indices.map { builders[$0].finish() }, servers, outcome)
    }

    func apps(in batch: PendingBatch<UInt64>?) throws -> [String] {
        guard let batch else { return [] }
        return try decodeBatch(batch.batch).map(\.sourceID)
    }

    @Test func eachAppGoesToItsOwnerAndAFramesPartStaysOnePart() throws {
        let a = app(owner: 0, standIn: 1)
        let b = app(owner: 2, standIn: 0)
        let (batches, servers, outcome) = try route(
            [Make.log(app: a, "1"), Make.log(app: b, "2"), Make.log(app: a, "3")], live: .all(3))
        #expect(servers == 2)
        #expect(outcome == .init(routed: 3, unroutable: 0))
        #expect(try apps(in: batches[0]) == [a, a])
        #expect(try apps(in: batches[2]) == [b])
        #expect(batches[1] == nil)
        #expect(batches[0]?.parts == [BatchPart(sender: 7, sequence: 1, count: 2)])
        #expect(batches[0]?.origins == [1])
        #expect(batches[2]?.parts == [BatchPart(sender: 7, sequence: 1, count: 1)])
    }

    @Test func appsMoveToTheirStandInWhileTheOwnerIsDownAndBackWhenItReturns() throws {
        let a = app(owner: 1, standIn: 2)
        var live = LiveServers.all(3)
        #expect(try apps(in: route([Make.log(app: a)], live: live).batches[1]) == [a])
        live.set(1, up: false)
        let during = try route([Make.log(app: a)], live: live).batches
        #expect(during[1] == nil)
        #expect(try apps(in: during[2]) == [a])
        live.set(1, up: true)
        #expect(try apps(in: route([Make.log(app: a)], live: live).batches[1]) == [a])
    }

    @Test func withNoServerUpEnvelopesWaitForTheirOwner() throws {
        let a = app(owner: 2, standIn: 0)
        #expect(try apps(in: route([Make.log(app: a)], live: .none).batches[2]) == [a])
    }

    @Test func envelopesWithoutAnAppAreCountedAndNotRouted() throws {
        let a = app(owner: 0, standIn: 1)
        let (batches, servers, outcome) = try route([Make.log(app: ""), Make.log(app: a)], live: .all(3))
        #expect(outcome == .init(routed: 1, unroutable: 1))
        #expect(servers == 1)
        #expect(try apps(in: batches[0]) == [a])
    }

    @Test func aMalformedBatchRoutesNothing() throws {
        var builders = Array(repeating: PendingBatchBuilder<UInt64>(), count: Self.servers.count)
        var batch = try Make.batch([Make.log(app: app(owner: 0, standIn: 1))])
        batch.writeBytes([0x0A, 0x50])  // a field whose length runs past the end
        let part = RoutedPart(sender: 1, sequence: 1, count: .max, origin: UInt64(1))
        #expect(throws: WireError.self) {
            try batch.withUnsafeReadableBytesTyped { bytes throws(WireError) in
                try router.route(bytes, parts: CollectionOfOne(part), live: .all(3), into: &builders) { _, _ in }
            }
        }
        #expect(builders.allSatisfy { $0.isEmpty })
    }

    /// A batch a server that just died had not acknowledged goes to the
    /// stand-ins of its apps, each part keeping its sender identity and
    /// its origin, split where its apps now have different servers.
    @Test func aBatchForAServerThatDiedGoesToItsStandIns() throws {
        let a = app(owner: 0, standIn: 1)
        let b = app(owner: 0, standIn: 2)
        var builders = Array(repeating: PendingBatchBuilder<UInt64>(), count: Self.servers.count)
        // What server 0 held: two sender frames, from two ingress frames.
        builders[0].beginPart(sender: 7, sequence: 10, origin: 100)
        for envelope in [Make.log(app: a, "a1"), Make.log(app: b, "b1")] {
            try Make.bytes(envelope).withUnsafeBytes { builders[0].append($0) }
        }
        builders[0].beginPart(sender: 8, sequence: 3, origin: 200)
        try Make.bytes(Make.log(app: a, "a2")).withUnsafeBytes { builders[0].append($0) }
        let finished = builders[0].finish()
        let held = try #require(finished)

        var live = LiveServers.all(3)
        live.set(0, up: false)
        var rerouted = Array(repeating: PendingBatchBuilder<UInt64>(), count: Self.servers.count)
        let fanout = router.reroute([held], live: live, into: &rerouted)
        #expect(fanout.map(\.origin) == [100, 200])
        #expect(fanout.map(\.servers) == [2, 1])
        let batches = rerouted.indices.map { rerouted[$0].finish() }
        #expect(batches[0] == nil)
        #expect(try decodeBatch(#require(batches[1]).batch).map { String(decoding: $0.log.payload, as: UTF8.self) } == ["a1", "a2"])
        #expect(batches[1]?.parts == [BatchPart(sender: 7, sequence: 10, count: 1), BatchPart(sender: 8, sequence: 3, count: 1)])
        #expect(batches[1]?.origins == [100, 200])
        #expect(try decodeBatch(#require(batches[2]).batch).map { String(decoding: $0.log.payload, as: UTF8.self) } == ["b1"])
        #expect(batches[2]?.parts == [BatchPart(sender: 7, sequence: 10, count: 1)])
        #expect(batches[2]?.origins == [100])
    }

    /// The frame a link writes: header, batch, parts trailer; read back as
    /// any receiver reads it.
    @Test func aPendingBatchIsFramedWhenWritten() throws {
        var builder = PendingBatchBuilder<UInt64>()
        builder.beginPart(sender: 9, sequence: 4, origin: 1)
        try Make.bytes(Make.log(app: "x", "hello")).withUnsafeBytes { builder.append($0) }
        let finished = builder.finish()
        let batch = try #require(finished)
        var bytes = batch.header(sequence: 42, allocator: ByteBufferAllocator())
        bytes.writeImmutableBuffer(batch.batch)
        bytes.writeImmutableBuffer(try #require(batch.trailer(allocator: ByteBufferAllocator())))
        #expect(bytes.readableBytes == batch.frameBytes)
        let frame = try ParsedFrame(bytes)
        #expect(frame.header.type == .envelopes && frame.header.sequence == 42)
        let (payload, parts) = try Frame(header: frame.header, payload: frame.payload).batchAndParts()
        #expect(parts == [BatchPart(sender: 9, sequence: 4, count: 1)])
        #expect(try decodeBatch(payload).map(\.sourceID) == ["x"])
    }
}

extension PendingBatch: Equatable where Origin: Equatable {
    public static func == (lhs: PendingBatch, rhs: PendingBatch) -> Bool {
        lhs.batch == rhs.batch && lhs.parts == rhs.parts && lhs.origins == rhs.origins && lhs.envelopes == rhs.envelopes
    }
}
