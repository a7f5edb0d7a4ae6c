import DequeModule

/// The acknowledged window of a Sluice sender: what it sent on a link and
/// keeps until the receiver's ACK covers it, so that it can send it again
/// after a failure. Both ends that send envelopes keep one: an emitter's
/// ingress client (which sends its window again to the next controller)
/// and a controller's link to a buffer server (whose owner sends the window
/// on to the servers standing in).
///
/// Items are numbered when they are sent, 1, 2, 3… for the window's whole
/// life, not per connection: an item sent again keeps its number. Every
/// method returns what to write; the window writes nothing itself.
public struct AckWindow<Item> {
    public struct Entry {
        public var sequence: UInt64
        public var item: Item
        public var bytes: Int
    }

    /// Bytes past which the window has no room (`hasRoom` is false); one
    /// item always fits, so an item larger than the bound still goes.
    public let maxBytes: Int
    /// Sent (or waiting for a connection) and not yet acknowledged, oldest first.
    public private(set) var entries: Deque<Entry> = []
    /// Bytes of `entries`.
    public private(set) var bytes = 0
    /// The newest sequence number acknowledged.
    public private(set) var acknowledged: UInt64 = 0
    /// Whether a connection is up to write on.
    public private(set) var isConnected = false
    /// The number the next item sent will have (for a sender that writes it
    /// into the item first).
    public private(set) var nextSequence: UInt64 = 1

    /// `firstSequence`: the number of the first item (a sender that
    /// numbered items in an earlier life, as the agent's spool, goes on).
    public init(maxBytes: Int, firstSequence: UInt64 = 1) {
        precondition(maxBytes > 0 && firstSequence > 0)
        self.maxBytes = maxBytes
        self.nextSequence = firstSequence
        self.acknowledged = firstSequence - 1
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }
    /// Whether the sender may add more: under the byte bound, or empty.
    public var hasRoom: Bool { bytes < maxBytes || entries.isEmpty }
    /// The oldest entry not yet acknowledged.
    public var oldest: Entry? { entries.first }

    /// Adds an item; returns its sequence number if it is to be written now
    /// (connected), nil if it waits for a connection.
    public mutating func send(_ item: Item, bytes size: Int) -> UInt64? {
        let sequence = nextSequence
        nextSequence &+= 1
        entries.append(Entry(sequence: sequence, item: item, bytes: size))
        bytes += size
        guard isConnected else { return nil }
        return sequence
    }

    /// The next item sent is numbered `sequence` (not below the next
    /// number): the numbers in between were given up.
    public mutating func skip(to sequence: UInt64) {
        precondition(sequence >= nextSequence, "sequence numbers only grow")
        nextSequence = sequence
    }

    /// The receiver took in everything up to `sequence`: returns the items
    /// released, oldest first. An acknowledgement of nothing new (a
    /// duplicate, or an older one arriving late) releases nothing.
    public mutating func acknowledge(upTo sequence: UInt64) -> [Item] {
        guard sequence > acknowledged else { return [] }
        var released: [Item] = []
        while let first = entries.first, first.sequence <= sequence {
            entries.removeFirst()
            bytes -= first.bytes
            released.append(first.item)
            acknowledged = first.sequence
        }
        return released
    }

    /// A connection is up: returns every entry to write on it, oldest first
    /// (each with its own sequence number).
    public mutating func connected() -> [Entry] {
        isConnected = true
        return Array(entries)
    }

    /// The connection was lost: everything not acknowledged stays, to be
    /// written again on the next connection or taken with `removeAll`.
    public mutating func connectionLost() {
        isConnected = false
    }

    /// Takes every item not acknowledged out of the window, oldest first
    /// (for a sender that hands them elsewhere instead of sending them again).
    public mutating func removeAll() -> [Item] {
        let items = entries.map(\.item)
        entries.removeAll()
        bytes = 0
        return items
    }
}
