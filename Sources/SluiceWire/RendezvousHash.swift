/// Highest-random-weight (rendezvous) hashing of application ids over a set
/// of nodes. Each (key, node) pair gets a pseudo-random weight; a key belongs
/// to the node with the highest weight. Adding a node moves only the keys
/// that the new node now wins; removing one moves only its own keys.
public struct RendezvousHash: Sendable {
    /// The nodes' names, e.g. "127.0.0.1:9001". Weights depend on names only,
    /// so every controller given the same servers agrees on every owner.
    public let nodes: [String]
    private let seeds: [UInt64]

    public init(nodes: [String]) {
        self.nodes = nodes
        self.seeds = nodes.map { name in
            var utf8 = name.utf8.map { $0 }
            return utf8.withUnsafeMutableBytes { Self.mix(Self.fnv1a(UnsafeRawBufferPointer($0))) }
        }
    }

    /// The index of the node that owns `key`, or nil if there are no nodes.
    public func owner(of key: UnsafeRawBufferPointer) -> Int? {
        owner(ofKeyHash: Self.fnv1a(key)) { _ in true }
    }

    /// The owner among the nodes `isLive` accepts: where a key goes while
    /// its owner is down. Every other key stays where it was.
    public func owner(of key: UnsafeRawBufferPointer, isLive: (Int) -> Bool) -> Int? {
        owner(ofKeyHash: Self.fnv1a(key), isLive: isLive)
    }

    public func owner(of key: String) -> Int? {
        var key = key
        return key.withUTF8 { owner(of: UnsafeRawBufferPointer($0)) }
    }

    func owner(ofKeyHash keyHash: UInt64, isLive: (Int) -> Bool) -> Int? {
        var best: Int? = nil
        var bestWeight: UInt64 = 0
        for (index, seed) in seeds.enumerated() where isLive(index) {
            let weight = Self.mix(keyHash ^ seed)
            if best == nil || weight > bestWeight {
                best = index
                bestWeight = weight
            }
        }
        return best
    }

    /// All node indexes, best first: the owner, then the node that would own
    /// the key if the owner were gone, and so on.
    public func ranking(of key: String) -> [Int] {
        var key = key
        let keyHash = key.withUTF8 { Self.fnv1a(UnsafeRawBufferPointer($0)) }
        return seeds.indices.sorted { Self.mix(keyHash ^ seeds[$0]) > Self.mix(keyHash ^ seeds[$1]) }
    }

    /// FNV-1a, 64 bits.
    @inlinable
    public static func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// MurmurHash3's 64-bit finalizer: a bijection whose every output bit
    /// depends on every input bit.
    @inlinable
    public static func mix(_ value: UInt64) -> UInt64 {
        var k = value
        k ^= k >> 33
        k &*= 0xff51_afd7_ed55_8ccd
        k ^= k >> 33
        k &*= 0xc4ce_b9fe_1a85_ec53
        k ^= k >> 33
        return k
    }
}
