import NIOCore
import SluiceTransport
import SluiceWire

/// Envelopes on their way to one buffer server, kept unframed: the batch's
/// entries, the sender frames they came from (`parts`), and who waits for
/// each part's acknowledgement (`origins`, one per part). A link frames it
/// only when it writes it, so a batch handed on to a stand-in server is
/// never parsed back out of a frame.
struct PendingBatch<Origin> {
    /// `EnvelopeBatch` entries (field 1 of the batch), nothing else.
    var batch: ByteBuffer
    var parts: [BatchPart]
    var origins: [Origin]
    var envelopes: Int
    /// Envelopes a stopped server held, handed to a server standing in
    /// for it (`AckedHistory`): stored for reads, not streamed or drained
    /// again. Their origins were told long ago and are not told again.
    var history = false
    /// The parts carry their first envelope's ordinal (`FrameFlags.ordinals`):
    /// a leaving server's history, whose older envelopes of a frame may
    /// have been let go. Such a batch holds one app's envelopes.
    var ordinals = false
    /// With `history`: a leaving server's drain lines (`FrameFlags.drain`),
    /// each part's sender naming the drain they go to.
    var drain = false
    /// When a link first took it to send (`NIODeadline` uptime
    /// nanoseconds; 0: not yet), for the acknowledgement's latency: a wait
    /// for a connection, and sending it again after one failed, count in it.
    var sentAt: UInt64 = 0

    /// Bytes of the frame as written: header, batch, parts trailer.
    var frameBytes: Int { FrameHeader.size + batch.readableBytes + trailerBytes }

    private var trailerBytes: Int {
        parts.isEmpty ? 0 : parts.count * (ordinals ? BatchPart.sizeWithOrdinal : BatchPart.size) + 4
    }

    /// The frame's header, for the frame numbered `sequence`.
    func header(sequence: UInt64, allocator: ByteBufferAllocator) -> ByteBuffer {
        var header = allocator.buffer(capacity: FrameHeader.size)
        header.writeFrameHeader(
            type: .envelopes,
            flags: (parts.isEmpty ? FrameFlags() : .identified).union(history ? .history : [])
                .union(ordinals && !parts.isEmpty ? .ordinals : [])
                .union(drain && history ? .drain : []),
            sequence: sequence,
            length: batch.readableBytes + trailerBytes)
        return header
    }

    /// The parts trailer that ends an IDENTIFIED frame (nil without parts).
    func trailer(allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard !parts.isEmpty else { return nil }
        var trailer = allocator.buffer(capacity: trailerBytes)
        for part in parts {
            trailer.writeInteger(part.sender)
            trailer.writeInteger(part.sequence)
            if ordinals { trailer.writeInteger(part.first) }
            trailer.writeInteger(part.count)
        }
        trailer.writeInteger(UInt32(parts.count))
        return trailer
    }

    /// An empty batch: what a link sends first on a new connection, so that
    /// the server's acknowledgement confirms the connection.
    static var probe: PendingBatch {
        PendingBatch(batch: ByteBuffer(), parts: [], origins: [], envelopes: 0)
    }
}

/// Gathers the envelopes bound for one server into a `PendingBatch`. One
/// sender frame's envelopes for one server make one part.
struct PendingBatchBuilder<Origin> {
    private var batch: ByteBuffer?
    private var parts: [BatchPart] = []
    private var origins: [Origin] = []
    private(set) var envelopes = 0
    private let capacity: Int

    init(capacity: Int = 64 * 1024) {
        self.capacity = capacity
    }

    var isEmpty: Bool { envelopes == 0 }

    /// Bytes of the frame so far.
    var frameBytes: Int {
        FrameHeader.size + (batch?.readableBytes ?? 0) + (parts.isEmpty ? 0 : parts.count * BatchPart.size + 4)
    }

    /// Envelopes appended from now on belong to this sender frame.
    mutating func beginPart(sender: UInt64, sequence: UInt64, origin: Origin) {
        parts.append(BatchPart(sender: sender, sequence: sequence, count: 0))
        origins.append(origin)
    }

    mutating func append(_ envelope: UnsafeRawBufferPointer) {
        if batch == nil {
            batch = ByteBufferAllocator().buffer(capacity: Swift.max(capacity, envelope.count + 16))
        }
        batch!.writeBatchEntry(envelope)
        envelopes += 1
        parts[parts.count - 1].count += 1
    }

    /// The batch gathered (nil if empty); the builder starts over.
    mutating func finish() -> PendingBatch<Origin>? {
        guard let batch, envelopes > 0 else { return nil }
        let finished = PendingBatch(batch: batch, parts: parts, origins: origins, envelopes: envelopes)
        self.batch = nil
        parts.removeAll(keepingCapacity: true)
        origins.removeAll(keepingCapacity: true)
        envelopes = 0
        return finished
    }
}

extension PendingBatch: Sendable where Origin: Sendable {}
