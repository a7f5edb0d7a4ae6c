import NIOCore
import NIOEmbedded
@testable import SluiceController
import SluiceProto
import SluiceServer
import SluiceTransport
import SluiceWire
import SwiftProtobuf

/// The framed protocol as a controller's ingress and a buffer server read
/// it: `FrameDecoder` over a stream cut into chunks, then each ENVELOPES
/// frame routed as the ingress routes it and taken by an `EnvelopeStore`
/// as a server takes it (IDENTIFIED parts included). Where SwiftProtobuf
/// also takes a batch the router took, it finds as many envelopes.
enum FrameTarget: FuzzTarget {
    static let name = "frame"
    static let router = BatchRouter(servers: ["s0", "s1", "s2"])

    static func run(_ input: UnsafeRawBufferPointer) {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxPayload: 64 * 1024)))
        let store = EnvelopeStore(limits: .init(recentPerApp: 16, memoryLimit: 1 << 20, maxFramePayload: 64 * 1024))
        defer { _ = try? channel.finish() }
        FuzzTargets.stream(input, into: channel) {
            while let frame = try? channel.readInbound(as: Frame.self) {
                take(frame, store: store)
            }
        }
    }

    static func take(_ frame: Frame, store: EnvelopeStore) {
        guard frame.header.type == .envelopes else { return }
        // The controller's ingress: one part, every envelope of the frame.
        var builders = (0..<router.serverCount).map { _ in PendingBatchBuilder<Int>() }
        let part = RoutedPart(sender: 1, sequence: frame.header.sequence, count: .max, origin: 0)
        let routed = try? frame.payload.withUnsafeReadableBytesTyped { bytes throws(WireError) in
            try router.route(bytes, parts: CollectionOfOne(part), live: .all(3), into: &builders) { _, _ in }
        }
        // What the router took as a batch, SwiftProtobuf (where it takes
        // the bytes too) finds as many envelopes in.
        if let routed, let decoded = try? Loggregator_V2_EnvelopeBatch(serializedBytes: Array(frame.payload.readableBytesView)),
            routed.routed + routed.unroutable != decoded.batch.count
        {
            fatalError("the router saw \(routed.routed + routed.unroutable) envelopes, SwiftProtobuf \(decoded.batch.count)")
        }
        for index in builders.indices {
            _ = builders[index].finish()
        }
        // The server's side of the link.
        guard let (batch, parts) = try? frame.batchAndParts() else { return }
        _ = try? store.ingest(batch, parts: parts)
    }
}
