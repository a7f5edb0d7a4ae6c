import NIOCore
import SluiceTransport
import SluiceWire

/// One envelope of a recent answer: its bytes, its time, and which sender
/// frame it came from (nil when the server could not say).
struct RecentEnvelope {
    var timestamp: Int64
    var bytes: ByteBuffer
    var identity: EnvelopeIdentity?
}

/// Recent answers from several servers (each zone's owner of an app and
/// the server standing in for it), merged into one list.
enum RecentMerge {
    /// The envelopes of one server's answer, oldest first. A malformed
    /// frame gives none of its envelopes.
    static func envelopes(of frames: [Frame]) -> [RecentEnvelope] {
        var out: [RecentEnvelope] = []
        for frame in frames {
            guard let (batch, parts) = try? frame.batchAndParts() else { continue }
            var cursor = PartCursor(parts)
            var taken: [RecentEnvelope] = []
            do {
                try batch.forEachEnvelope { bytes, fields in
                    var identity: EnvelopeIdentity? = nil
                    if !parts.isEmpty {
                        _ = cursor.advance()
                        identity = cursor.identity.isKnown ? cursor.identity : nil
                    }
                    taken.append(RecentEnvelope(timestamp: fields.timestamp, bytes: bytes, identity: identity))
                }
            } catch {
                continue
            }
            out += taken
        }
        return out
    }

    /// A k-way merge by timestamp of the lists; ties keep list order. A
    /// server keeps an app's envelopes in the order they arrived, which is
    /// time order but for a frame that came late (sent again after a
    /// server left, or held by a controller that stalled): a list out of
    /// order is put in time order first (stably), so the answer is in time
    /// order, as `cf logs --recent` shows it. An envelope whose identity
    /// was already taken (held by both an owner and its stand-in) is taken
    /// once. Envelopes are never told apart by their bytes: identical
    /// lines are real lines.
    static func merge(_ unordered: [[RecentEnvelope]]) -> [RecentEnvelope] {
        let lists = unordered.map(inTimeOrder)
        var heads = Array(repeating: 0, count: lists.count)
        var out: [RecentEnvelope] = []
        out.reserveCapacity(lists.reduce(0) { $0 + $1.count })
        var taken = Set<EnvelopeIdentity>()
        let needsDedupe = lists.filter { !$0.isEmpty }.count > 1
        while true {
            var pick: Int? = nil
            for index in lists.indices where heads[index] < lists[index].count {
                if pick == nil || lists[index][heads[index]].timestamp < lists[pick!][heads[pick!]].timestamp {
                    pick = index
                }
            }
            guard let pick else { break }
            let next = lists[pick][heads[pick]]
            heads[pick] += 1
            if needsDedupe, let identity = next.identity, !taken.insert(identity).inserted { continue }
            out.append(next)
        }
        return out
    }

    /// `list` as it is when it is in time order, else sorted by time,
    /// keeping list order on ties.
    static func inTimeOrder(_ list: [RecentEnvelope]) -> [RecentEnvelope] {
        guard list.indices.dropFirst().contains(where: { list[$0 - 1].timestamp > list[$0].timestamp }) else {
            return list
        }
        return list.indices.sorted { (list[$0].timestamp, $0) < (list[$1].timestamp, $1) }.map { list[$0] }
    }
}
