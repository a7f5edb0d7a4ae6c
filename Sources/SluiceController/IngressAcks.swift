import DequeModule

/// When to acknowledge an emitter's frames. A frame is acknowledged once
/// every buffer server that got part of it has acknowledged that part, and
/// acknowledgements go in order (an ACK covers every frame up to its
/// number), so a controller that dies owes the emitter nothing: the
/// emitter still holds what was not acknowledged and sends it again.
///
/// Each method returns the sequence number to acknowledge now, if any.
struct IngressAcks {
    /// Frames routed and not yet acknowledged, oldest first, with the
    /// number of server parts each still waits for.
    private var pending: Deque<(sequence: UInt64, outstanding: Int)> = []
    private(set) var acknowledged: UInt64 = 0

    /// Frames not yet acknowledged.
    var waiting: Int { pending.count }

    /// A frame went to `parts` servers (0: none of it could be routed, so
    /// nothing will come back for it).
    mutating func routed(sequence: UInt64, parts: Int) -> UInt64? {
        pending.append((sequence, parts))
        return parts == 0 ? advance() : nil
    }

    /// A server acknowledged its part of frame `sequence`.
    mutating func partDone(_ sequence: UInt64) -> UInt64? {
        adjust(sequence, by: -1)
    }

    /// A part of frame `sequence` was handed on to `servers` stand-in servers
    /// in place of the one that failed (so it waits for `servers - 1` more).
    mutating func partRerouted(_ sequence: UInt64, servers: Int) -> UInt64? {
        adjust(sequence, by: servers - 1)
    }

    private mutating func adjust(_ sequence: UInt64, by change: Int) -> UInt64? {
        guard change != 0,
            let index = pending.firstIndex(where: { $0.sequence == sequence && $0.outstanding > 0 })
        else { return nil }
        pending[index].outstanding += change
        return advance()
    }

    /// Drops the frames that no longer wait for anything from the front.
    private mutating func advance() -> UInt64? {
        var newest: UInt64? = nil
        while let first = pending.first, first.outstanding <= 0 {
            pending.removeFirst()
            newest = first.sequence
        }
        guard let newest, newest != acknowledged else { return nil }
        acknowledged = newest
        return newest
    }
}
