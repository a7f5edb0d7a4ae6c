/// A run of envelopes in a batch that came from one frame of one sender:
/// the identity by which a receiver recognises a batch it has already taken
/// in when it is sent again after a failure.
///
/// An IDENTIFIED frame's payload is the `EnvelopeBatch`, then each part as
/// 20 bytes (sender u64, sequence u64, envelopes u32), then the number of
/// parts as a u32; all big-endian. The parts' envelope counts add up to the
/// batch's envelopes, in order. With `FrameFlags.ordinals` (a recent
/// answer) each part is 24 bytes: sender, sequence, `first` (u32), count.
public struct BatchPart: Hashable, Sendable {
    public static let size = 20
    /// The size of a part with its first ordinal.
    public static let sizeWithOrdinal = 24

    /// The sender's id from its HELLO; 0 for a sender that gave none (its
    /// frames are never taken for duplicates).
    public var sender: UInt64
    /// The sequence number of the sender's frame.
    public var sequence: UInt64
    public var count: UInt32
    /// The ordinal of the part's first envelope among the envelopes of its
    /// app that came in that sender frame (0, 1, 2…); in a recent answer
    /// a part may start past 0 where older envelopes were let go.
    public var first: UInt32

    public init(sender: UInt64, sequence: UInt64, count: UInt32, first: UInt32 = 0) {
        self.sender = sender
        self.sequence = sequence
        self.count = count
        self.first = first
    }

    /// The identity of the part's envelope at `offset` (0-based).
    public func identity(at offset: UInt32) -> EnvelopeIdentity {
        EnvelopeIdentity(sender: sender, sequence: sequence, ordinal: first + offset)
    }
}

/// Which envelope of which sender frame a stored envelope is: the same at
/// an owner and at the stand-in that also took it in, so that a merged
/// answer holds it once; and different for identical lines, which are
/// real lines. Sender 0 (a sender without HELLO) has no identity.
public struct EnvelopeIdentity: Hashable, Sendable {
    public var sender: UInt64
    public var sequence: UInt64
    /// Its place among its app's envelopes in that sender frame.
    public var ordinal: UInt32

    public init(sender: UInt64, sequence: UInt64, ordinal: UInt32) {
        self.sender = sender
        self.sequence = sequence
        self.ordinal = ordinal
    }

    /// Whether this identifies anything: sender 0 never does.
    public var isKnown: Bool { sender != 0 }
}

/// Which frames of which sources a receiver has taken in: the newest
/// sequence per source and a window of 65,536 before it (8 KiB a source).
/// A source is a sender, or (at a buffer server) a sender and an app. At
/// most `maxSources` are remembered; past that the source heard from least
/// recently is forgotten (so `sluice emit` run once a second for years
/// costs bounded memory). A forgotten source's frames are taken as new if
/// it ever resends them.
public struct FrameWindows<Source: Hashable & Sendable>: Sendable {
    public static var window: UInt64 { 1 << 16 }
    public let maxSources: Int
    private var sources: [Source: Window] = [:]
    /// Bumped on every insert; each window keeps the value of its last use.
    private var clock: UInt64 = 0

    private struct Window: Sendable {
        static var words: Int { Int(FrameWindows.window / 64) }
        var highest: UInt64
        var lastUse: UInt64 = 0
        var bits: [UInt64] = Array(repeating: 0, count: Window.words)

        func contains(_ sequence: UInt64) -> Bool {
            if sequence > highest { return false }
            if highest - sequence >= FrameWindows.window { return true }
            let slot = Int(sequence % FrameWindows.window)
            return bits[slot / 64] & (1 << UInt64(slot % 64)) != 0
        }

        /// Records `sequence`; false if it was there already.
        mutating func take(_ sequence: UInt64, now: UInt64) -> Bool {
            lastUse = now
            if contains(sequence) { return false }
            insert(sequence)
            return true
        }

        mutating func insert(_ sequence: UInt64) {
            if sequence > highest {
                // Clear the slots that now fall out of the window: bit by
                // bit up to the next word, then whole words.
                let advance = sequence - highest
                if advance >= FrameWindows.window {
                    for index in bits.indices { bits[index] = 0 }
                } else {
                    var step: UInt64 = 1
                    while step <= advance {
                        let slot = Int((highest &+ step) % FrameWindows.window)
                        if slot % 64 == 0 && advance - step >= 63 {
                            bits[slot / 64] = 0
                            step += 64
                        } else {
                            bits[slot / 64] &= ~(1 << UInt64(slot % 64))
                            step += 1
                        }
                    }
                }
                highest = sequence
            }
            let slot = Int(sequence % FrameWindows.window)
            bits[slot / 64] |= 1 << UInt64(slot % 64)
        }
    }

    public init(maxSources: Int = 1024) {
        precondition(maxSources > 0)
        self.maxSources = maxSources
    }

    /// Records the frame; returns false if it was already taken in (or is
    /// older than the window).
    public mutating func insert(_ source: Source, sequence: UInt64) -> Bool {
        clock += 1
        // One lookup for a source already known (the usual case).
        if let index = sources.index(forKey: source) {
            return sources.values[index].take(sequence, now: clock)
        }
        if sources.count >= maxSources, let oldest = sources.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            sources.removeValue(forKey: oldest.key)
        }
        var window = Window(highest: sequence, lastUse: clock)
        window.insert(sequence)
        sources[source] = window
        return true
    }

    public var sourceCount: Int { sources.count }
}

/// The frames each sender sent that a reader has taken in.
public typealias SeenFrames = FrameWindows<UInt64>

extension FrameWindows where Source == UInt64 {
    public init(maxSenders: Int) { self.init(maxSources: maxSenders) }

    /// Records the pair; returns false if it was already taken in (or is
    /// older than the window). Sender 0 is never a duplicate.
    public mutating func insert(sender: UInt64, sequence: UInt64) -> Bool {
        guard sender != 0 else { return true }
        return insert(sender, sequence: sequence)
    }

    public var senderCount: Int { sourceCount }
}

/// Walks a batch's envelopes together with its parts: call `advance` once
/// per envelope, in order.
public struct PartCursor: Sendable {
    public let parts: [BatchPart]
    /// The part of the envelope just advanced to.
    public private(set) var index = -1
    private var left = 0
    /// The envelope's offset within its part.
    public private(set) var offset: UInt32 = 0

    public init(_ parts: [BatchPart]) {
        self.parts = parts
    }

    /// Moves to the next envelope; true when it begins a new part.
    public mutating func advance() -> Bool {
        var began = false
        while left == 0 && index + 1 < parts.count {
            index += 1
            left = Int(parts[index].count)
            began = true
            offset = 0
        }
        if !began { offset += 1 }
        left -= 1
        return began
    }

    public var current: BatchPart { parts[index] }

    /// The identity of the envelope just advanced to.
    public var identity: EnvelopeIdentity { parts[index].identity(at: offset) }
}
