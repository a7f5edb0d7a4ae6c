import DequeModule
import NIOCore
import SluiceTransport
import SluiceWire

/// The egress core: what one live reader of an app is sent, and when,
/// whatever carries it (a websocket today; server-sent events or a gRPC
/// stream the same way). Plain state, no I/O: its inputs are envelopes the
/// servers delivered (with the sender frames they came from), a zone going
/// down or coming back, the transport having room, a ping falling due, and
/// what the reader sends; its outputs are what to write and actions.
///
/// - Envelopes wait in a queue of at most `queueLimit`; when a reader does
///   not keep up the oldest are dropped, counted, and the reader is told
///   how many in one L10 notice before the next lines it gets.
/// - A part the reader was already sent (sent again after a failure,
///   through another server or zone) is skipped.
/// - When every server of a zone that holds the app stops answering the
///   reader is told, and again when the zone is back.
/// - The close handshake: the reader's close is answered once, then the
///   connection ends; nothing is written after.
struct TailStateMachine {
    enum ZoneState: Equatable, Sendable {
        case up, partial, down
    }

    /// What the transport writes, in order.
    enum Item {
        /// An envelope's bytes, as stored.
        case envelope(ByteBuffer)
        /// A notice envelope Sluice wrote (serialized).
        case notice([UInt8])
    }

    enum Action: Equatable {
        case none
        /// Write what waits (`take`) while the transport has room.
        case write
        case sendPing
        case sendPong(ByteBuffer)
        /// Answer the reader's close with this payload, then close.
        case sendCloseThenClose(ByteBuffer)
        case close
    }

    enum State: Equatable {
        case open
        /// The close handshake is done or under way: nothing more is written.
        case closing
        case closed
    }

    let app: String
    let queueLimit: Int
    private(set) var state = State.open
    private var queue: Deque<Item> = []
    /// Envelopes dropped since the reader was last told, and since when.
    private(set) var dropped = 0
    private var droppedSince: Int64 = 0
    /// Sender frames this reader has been sent.
    private var seen = SeenFrames()
    private var zones: [String: ZoneState]
    /// Zones the reader was told are not answering, and not yet that they are back.
    private var toldDown: Set<String> = []

    init(app: String, queueLimit: Int, zones: [String: ZoneState]) {
        precondition(queueLimit > 0)
        self.app = app
        self.queueLimit = queueLimit
        self.zones = zones
    }

    /// Whether anything waits to be written.
    var hasPending: Bool { state == .open && (!queue.isEmpty || dropped > 0) }
    var queued: Int { queue.count }

    /// Envelopes arrived from a server. Returns how many were dropped to
    /// make room (for the metrics) and whether to write; throws for a
    /// malformed batch, of which nothing is taken.
    mutating func delivered(_ batch: ByteBuffer, parts: [BatchPart], now: Int64) throws(WireError) -> (
        dropped: Int, action: Action
    ) {
        guard state == .open else { return (0, .none) }
        var overflow = 0
        var cursor = PartCursor(parts)
        var keep = true
        try batch.forEachEnvelope { envelope, _ in
            if !parts.isEmpty {
                if cursor.advance() {
                    keep = seen.insert(sender: cursor.current.sender, sequence: cursor.current.sequence)
                }
                guard keep else { return }
            }
            queue.append(.envelope(envelope))
            if queue.count > queueLimit {
                dropOldestEnvelope()
                overflow += 1
            }
        }
        if overflow > 0 {
            if dropped == 0 { droppedSince = now }
            dropped += overflow
        }
        return (overflow, queue.isEmpty && dropped == 0 ? .none : .write)
    }

    /// Makes room: the oldest envelope goes, a zone notice before it stays.
    private mutating func dropOldestEnvelope() {
        if case .envelope = queue.first {
            queue.removeFirst()
        } else if let index = queue.firstIndex(where: { if case .envelope = $0 { true } else { false } }) {
            queue.remove(at: index)
        }
    }

    /// A zone's servers for this app changed state (`lost`: the server
    /// whose loss it was). The reader is told when a zone goes down (no
    /// server of it answers) and when it is all back.
    mutating func zoneChanged(_ zone: String, to newState: ZoneState, lost: String, now: Int64) -> Action {
        let before = zones[zone]
        zones[zone] = newState
        guard state == .open else { return .none }
        let text: String
        switch (before, newState) {
        case (_, .up) where toldDown.contains(zone):
            toldDown.remove(zone)
            text = "Sluice: zone \(zone) is back; its live lines resume"
        case (.up?, .down), (.partial?, .down):
            toldDown.insert(zone)
            text = "Sluice: zone \(zone) is not answering (lost \(lost)); its lines are missing until it is back"
        default:
            return .none
        }
        queue.append(.notice(Notice.envelope(app: app, text: text, timestampNanos: now, kind: "zone")))
        return .write
    }

    /// The next items to write, at most about `maxBytes` of envelopes
    /// (`body` writes one and returns its size): a drop notice first if
    /// there is one to give. Returns the envelopes given (notices apart).
    mutating func take(maxBytes: Int, now: Int64, _ body: (Item) -> Int) -> Int {
        guard state == .open else { return 0 }
        var written = 0
        if dropped > 0 {
            let text = Notice.dropText(
                count: dropped, sinceNanos: droppedSince,
                reason: "this reader did not keep up; the oldest lines waiting for it were dropped")
            written += body(.notice(Notice.envelope(app: app, text: text, timestampNanos: now, kind: "dropped")))
            dropped = 0
        }
        var envelopes = 0
        while written < maxBytes, let item = queue.popFirst() {
            written += body(item)
            if case .envelope = item { envelopes += 1 }
        }
        return envelopes
    }

    /// The ping interval passed.
    func pingDue() -> Action {
        state == .open ? .sendPing : .none
    }

    /// The reader pinged.
    func pingReceived(_ data: ByteBuffer) -> Action {
        state == .open ? .sendPong(data) : .none
    }

    /// The reader sent a close frame: it is answered with the same status
    /// code, once; a second close just ends the connection.
    mutating func closeReceived(_ payload: ByteBuffer) -> Action {
        switch state {
        case .open:
            state = .closing
            queue.removeAll()
            var payload = payload
            return .sendCloseThenClose(payload.readSlice(length: min(2, payload.readableBytes)) ?? ByteBuffer())
        case .closing:
            return .close
        case .closed:
            return .none
        }
    }

    /// The connection is gone: nothing more is kept or written.
    mutating func closed() {
        state = .closed
        queue.removeAll()
        dropped = 0
    }
}
