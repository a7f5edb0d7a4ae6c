import DequeModule

/// When a buffer server acknowledges a controller's frames: once a read
/// burst's envelopes are stored *and* the frames that carry them to other
/// controllers' live readers are written, so that a server killed right
/// after acknowledging has already handed its readers what it acknowledged.
/// One ACK per burst, in order: a burst's ACK waits for the bursts before it.
///
/// Each method returns the sequence number to acknowledge now, if any.
struct AckGate {
    /// Bursts whose ACK waits, oldest first: the newest frame each took in
    /// and the writes to other connections it still waits for.
    private var waiting: Deque<(id: Int, sequence: UInt64, writes: Int)> = []
    private var nextBurst = 0
    private(set) var acknowledged: UInt64 = 0

    /// A read burst ended, having taken in frames up to `taken` and started
    /// `writes` writes to other connections. Returns the burst's id (for
    /// `writeFinished`) and what to acknowledge now.
    mutating func burstEnded(taken: UInt64, writes: Int) -> (burst: Int, ack: UInt64?) {
        let id = nextBurst
        nextBurst += 1
        guard taken > max(acknowledged, waiting.last?.sequence ?? 0) else { return (id, nil) }
        waiting.append((id, taken, writes))
        return (id, release())
    }

    /// One of burst `id`'s writes finished (written, or failed: a reader
    /// whose connection closed does not hold the acknowledgement back).
    mutating func writeFinished(burst id: Int) -> UInt64? {
        guard let index = waiting.firstIndex(where: { $0.id == id }) else { return nil }
        waiting[index].writes -= 1
        return release()
    }

    /// Burst `id` waited long enough: a controller that does not read what
    /// it is sent holds no one else's acknowledgements up for longer.
    mutating func expire(burst id: Int) -> UInt64? {
        guard let index = waiting.firstIndex(where: { $0.id == id }) else { return nil }
        waiting[index].writes = 0
        return release()
    }

    /// Acknowledges every burst at the front that waits for nothing.
    private mutating func release() -> UInt64? {
        var newest: UInt64? = nil
        while let first = waiting.first, first.writes <= 0 {
            waiting.removeFirst()
            if first.sequence > acknowledged { newest = first.sequence }
        }
        guard let newest else { return nil }
        acknowledged = newest
        return newest
    }
}
