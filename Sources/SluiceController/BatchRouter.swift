import SluiceTransport
import SluiceWire

/// Which buffer servers of a zone are up: bit i for server i.
struct LiveServers: Hashable, Sendable {
    var mask: UInt64

    static let none = LiveServers(mask: 0)

    static func all(_ count: Int) -> LiveServers {
        LiveServers(mask: count >= 64 ? .max : (1 << UInt64(count)) - 1)
    }

    var isEmpty: Bool { mask == 0 }

    func contains(_ index: Int) -> Bool { mask & (1 << UInt64(index)) != 0 }

    mutating func set(_ index: Int, up: Bool) {
        if up { mask |= 1 << UInt64(index) } else { mask &= ~(1 << UInt64(index)) }
    }
}

/// A run of envelopes from one sender frame, and who waits for them.
struct RoutedPart<Origin> {
    var sender: UInt64
    var sequence: UInt64
    /// Envelopes in the run; `.max` for "all the rest" (an ingress frame,
    /// whose envelopes are all one part).
    var count: UInt32
    var origin: Origin
}

/// Routing as a value: which buffer server of a zone takes each envelope.
/// Each app goes to its owner by rendezvous hashing among the servers that
/// are up, so its envelopes move to the server ranked next while the owner
/// is down and back when it returns. The same function routes an ingress
/// frame the first time and the batches a failed server left behind.
struct BatchRouter: Sendable {
    let hash: RendezvousHash
    let serverCount: Int
    /// The slots that hold a server (all, unless the zone's servers are
    /// found by DNS): a free slot's name is in the hash but owns nothing
    /// while any slot is held.
    let assigned: LiveServers

    init(servers: [String], assigned: LiveServers? = nil) {
        precondition(!servers.isEmpty && servers.count <= 64, "a zone has 1 to 64 buffer servers")
        self.hash = RendezvousHash(nodes: servers)
        self.serverCount = servers.count
        self.assigned = assigned ?? .all(servers.count)
    }

    /// The server for an app: its owner among the live servers, or its
    /// owner outright when none is up (the envelopes then wait for it).
    func owner(of key: UnsafeRawBufferPointer, live: LiveServers) -> Int? {
        if !live.isEmpty, let index = hash.owner(of: key, isLive: { live.contains($0) }) { return index }
        if !assigned.isEmpty, let index = hash.owner(of: key, isLive: { assigned.contains($0) }) { return index }
        return hash.owner(of: key)
    }

    struct Outcome: Equatable {
        /// Envelopes routed.
        var routed = 0
        /// Envelopes without a `source_id`: they cannot be routed.
        var unroutable = 0
    }

    /// Routes every envelope of `batch` (checked whole first: a malformed
    /// batch routes nothing) into `builders[server]`. The envelopes of one
    /// part bound for one server stay one part there; `partDone` is called
    /// once per part, in order, with how many servers its envelopes went to.
    func route<Origin, Parts: RandomAccessCollection<RoutedPart<Origin>>>(
        _ batch: UnsafeRawBufferPointer, parts: Parts, live: LiveServers,
        into builders: inout [PendingBatchBuilder<Origin>],
        partDone: (_ index: Parts.Index, _ servers: Int) -> Void
    ) throws(WireError) -> Outcome {
        precondition(builders.count == serverCount && !parts.isEmpty)
        var outcome = Outcome()
        var partIndex = parts.startIndex
        var left = parts[partIndex].count
        var touched: UInt64 = 0
        try EnvelopeBatchScanner.forEach(in: batch) { range, fields in
            while left == 0 {
                partDone(partIndex, touched.nonzeroBitCount)
                touched = 0
                partIndex = parts.index(after: partIndex)
                precondition(partIndex != parts.endIndex, "a batch's parts count fewer envelopes than it holds")
                left = parts[partIndex].count
            }
            if left != .max { left -= 1 }
            let envelope = UnsafeRawBufferPointer(rebasing: batch[range])
            guard !fields.sourceID.isEmpty,
                let server = owner(of: UnsafeRawBufferPointer(rebasing: envelope[fields.sourceID]), live: live)
            else {
                outcome.unroutable += 1
                return
            }
            if touched & (1 << UInt64(server)) == 0 {
                touched |= 1 << UInt64(server)
                let part = parts[partIndex]
                builders[server].beginPart(sender: part.sender, sequence: part.sequence, origin: part.origin)
            }
            builders[server].append(envelope)
            outcome.routed += 1
        }
        // The last part, and any (empty) parts after it.
        while partIndex != parts.endIndex {
            partDone(partIndex, touched.nonzeroBitCount)
            touched = 0
            partIndex = parts.index(after: partIndex)
        }
        return outcome
    }

    /// Routes batches a server did not acknowledge to the servers that now
    /// own their apps. Returns, for each part of each batch in order, how
    /// many servers it now waits for (at least 1: every envelope of a
    /// pending batch has an app, and `live` must not be empty).
    func reroute<Origin>(
        _ batches: [PendingBatch<Origin>], live: LiveServers, into builders: inout [PendingBatchBuilder<Origin>]
    ) -> [(origin: Origin, servers: Int)] {
        precondition(!live.isEmpty, "rerouting needs a live server")
        var fanout: [(origin: Origin, servers: Int)] = []
        for pending in batches {
            let parts = zip(pending.parts, pending.origins).map {
                RoutedPart(sender: $0.sender, sequence: $0.sequence, count: $0.count, origin: $1)
            }
            _ = try? pending.batch.withUnsafeReadableBytesTyped { bytes throws(WireError) in
                try route(bytes, parts: parts, live: live, into: &builders) { index, servers in
                    fanout.append((parts[index].origin, servers))
                }
            }
        }
        return fanout
    }
}
