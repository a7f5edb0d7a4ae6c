import Testing

@testable import SluiceWire

enum KeySet: String, CaseIterable, Sendable {
    case sequential
    case uuids

    /// 10,000 application ids.
    var keys: [String] {
        switch self {
        case .sequential:
            return (0..<10_000).map { "app-\($0)" }
        case .uuids:
            var rng = SeededGenerator(seed: 0xC0FFEE)
            return (0..<10_000).map { _ in Self.uuid(rng.next(), rng.next()) }
        }
    }

    /// A lowercase version-4 GUID, as Cloud Foundry app ids are.
    static func uuid(_ high: UInt64, _ low: UInt64) -> String {
        let high = (high & ~0xF000) | 0x4000
        let low = (low & ~(UInt64(0xC) << 60)) | (UInt64(0x8) << 60)
        func hex(_ value: UInt64, _ digits: Int) -> String {
            let text = String(value, radix: 16)
            return String(repeating: "0", count: digits - text.count) + text
        }
        return "\(hex(high >> 32, 8))-\(hex((high >> 16) & 0xFFFF, 4))-\(hex(high & 0xFFFF, 4))-"
            + "\(hex(low >> 48, 4))-\(hex(low & 0xFFFF_FFFF_FFFF, 12))"
    }
}

@Suite struct RendezvousHashTests {
    static let four = (9001...9004).map { "127.0.0.1:\($0)" }
    static let five = (9001...9005).map { "127.0.0.1:\($0)" }

    /// The owning node's name for each key.
    static func owners(_ keys: [String], _ nodes: [String]) throws -> [String] {
        let hash = RendezvousHash(nodes: nodes)
        return try keys.map { nodes[try #require(hash.owner(of: $0))] }
    }

    @Test func keysLookLikeGuids() {
        let keys = KeySet.uuids.keys
        #expect(Set(keys).count == keys.count)
        #expect(keys.allSatisfy { $0.count == 36 && $0.split(separator: "-").map(\.count) == [8, 4, 4, 4, 12] })
    }

    @Test(arguments: KeySet.allCases)
    func evenSpreadOverFourNodes(_ set: KeySet) throws {
        let keys = set.keys
        let owners = try Self.owners(keys, Self.four)
        for node in Self.four {
            let share = Double(owners.count { $0 == node }) / Double(keys.count)
            #expect(abs(share - 0.25) <= 0.03, "\(node) owns \(share)")
        }
    }

    @Test(arguments: KeySet.allCases)
    func addingANodeMovesKeysOnlyToIt(_ set: KeySet) throws {
        let keys = set.keys
        let before = try Self.owners(keys, Self.four)
        let after = try Self.owners(keys, Self.five)
        var moved = 0
        for (old, new) in zip(before, after) where old != new {
            #expect(new == "127.0.0.1:9005", "moved from \(old) to \(new)")
            moved += 1
        }
        let share = Double(moved) / Double(keys.count)
        #expect(abs(share - 0.20) <= 0.03, "moved \(share)")
        for node in Self.five {
            let share = Double(after.count { $0 == node }) / Double(keys.count)
            #expect(abs(share - 0.20) <= 0.03, "\(node) owns \(share)")
        }
    }

    @Test(arguments: KeySet.allCases)
    func removingANodeMovesOnlyItsKeys(_ set: KeySet) throws {
        let keys = set.keys
        let removed = "127.0.0.1:9002"
        let remaining = Self.four.filter { $0 != removed }
        let before = try Self.owners(keys, Self.four)
        let after = try Self.owners(keys, remaining)
        let full = RendezvousHash(nodes: Self.four)
        var received: [String: Int] = [:]
        for (index, key) in keys.enumerated() {
            if before[index] == removed {
                #expect(after[index] != removed)
                received[after[index], default: 0] += 1
                // The new owner is the one ranked second before.
                #expect(Self.four[full.ranking(of: key)[1]] == after[index])
            } else {
                #expect(after[index] == before[index], "\(key) moved from \(before[index]) to \(after[index])")
            }
        }
        // The removed node's keys are shared by all the others.
        let orphaned = before.count { $0 == removed }
        for node in remaining {
            let share = Double(received[node, default: 0]) / Double(orphaned)
            #expect(abs(share - 1.0 / 3.0) <= 0.08, "\(node) took \(share) of the orphaned keys")
        }
    }

    @Test func ownerDependsOnNamesNotOrder() throws {
        let keys = KeySet.sequential.keys.prefix(2000).map { $0 }
        let forward = try Self.owners(keys, Self.five)
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<5 {
            let shuffled = Self.five.shuffled(using: &rng)
            #expect(try Self.owners(keys, shuffled) == forward)
        }
        // Two separately built instances agree.
        #expect(try Self.owners(keys, Self.five) == forward)
    }

    @Test func stringAndBytesAgree() {
        let hash = RendezvousHash(nodes: Self.five)
        var keys = KeySet.uuids.keys.prefix(2000).map { $0 }
        keys += ["", "a", "ünïcødé-äpp", "emoji-🚀-app", String(repeating: "x", count: 1000)]
        for key in keys {
            let bytes = Array(key.utf8)
            let fromBytes = bytes.withUnsafeBytes { hash.owner(of: $0) }
            #expect(hash.owner(of: key) == fromBytes, "\(key)")
            #expect(fromBytes != nil)
        }
        // A key inside a larger buffer, as the scanner finds source_id.
        let envelope: [UInt8] = [0x12, 0x05] + Array("app-7".utf8) + [0x08, 0x01]
        let sliced = envelope.withUnsafeBytes { hash.owner(of: UnsafeRawBufferPointer(rebasing: $0[2..<7])) }
        #expect(sliced == hash.owner(of: "app-7"))
    }

    @Test func rankingStartsWithOwnerAndIsAPermutation() {
        let hash = RendezvousHash(nodes: Self.five)
        var firsts = Set<Int>()
        var seconds = Set<Int>()
        for key in KeySet.sequential.keys.prefix(2000) {
            let ranking = hash.ranking(of: key)
            #expect(ranking.first == hash.owner(of: key))
            #expect(ranking.sorted() == Array(0..<5))
            firsts.insert(ranking[0])
            seconds.insert(ranking[1])
        }
        #expect(firsts.count == 5)
        #expect(seconds.count == 5)
    }

    @Test func rankingIsTheOwnerAsNodesAreRemoved() {
        // Dropping the owner each time, the next in the ranking takes over.
        for key in KeySet.uuids.keys.prefix(300) {
            let ranking = RendezvousHash(nodes: Self.five).ranking(of: key)
            var nodes = Self.five
            for expected in ranking.map({ Self.five[$0] }) {
                let hash = RendezvousHash(nodes: nodes)
                let owner = hash.owner(of: key).map { nodes[$0] }
                #expect(owner == expected)
                nodes.removeAll { $0 == expected }
            }
            #expect(nodes.isEmpty)
        }
    }

    @Test func ownerAmongLiveNodes() throws {
        let hash = RendezvousHash(nodes: Self.four)
        let down = 2
        let without = Self.four.filter { $0 != Self.four[down] }
        let keys = KeySet.uuids.keys.prefix(3000).map { $0 }
        let expected = try Self.owners(keys, without)
        let before = try Self.owners(keys, Self.four)
        for (index, key) in keys.enumerated() {
            let bytes = Array(key.utf8)
            bytes.withUnsafeBytes { buffer in
                let all = hash.owner(of: buffer, isLive: { _ in true })
                #expect(all == hash.owner(of: key))
                // With one node down, keys go where a ring without it would send them.
                let live = hash.owner(of: buffer, isLive: { $0 != down })
                #expect(live.map { Self.four[$0] } == expected[index])
                if before[index] != Self.four[down] {
                    #expect(live.map { Self.four[$0] } == before[index])
                }
                #expect(hash.owner(of: buffer, isLive: { _ in false }) == nil)
            }
        }
    }

    @Test func noNodesNoOwner() {
        let hash = RendezvousHash(nodes: [])
        #expect(hash.owner(of: "app-1") == nil)
        #expect(hash.owner(of: "") == nil)
        let bytes = Array("app-1".utf8)
        #expect(bytes.withUnsafeBytes { hash.owner(of: $0) } == nil)
        #expect(hash.ranking(of: "app-1").isEmpty)
    }

    @Test func oneNodeOwnsEverything() {
        let hash = RendezvousHash(nodes: ["127.0.0.1:9001"])
        for key in KeySet.sequential.keys.prefix(500) {
            #expect(hash.owner(of: key) == 0)
            #expect(hash.ranking(of: key) == [0])
        }
    }

    @Test func fnv1aKnownVectors() {
        // The published FNV-1a 64-bit test vectors.
        func fnv(_ text: String) -> UInt64 { Array(text.utf8).withUnsafeBytes { RendezvousHash.fnv1a($0) } }
        #expect(fnv("") == 0xcbf2_9ce4_8422_2325)
        #expect(fnv("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(fnv("foobar") == 0x8594_4171_f739_67e8)
    }

    @Test func mixSpreadsBits() {
        #expect(RendezvousHash.mix(0) == 0)
        var outputs = Set<UInt64>()
        var flipped = 0
        var samples = 0
        var rng = SeededGenerator(seed: 99)
        for i in 0..<20_000 {
            outputs.insert(RendezvousHash.mix(UInt64(i)))
            let x = rng.next()
            let bit = UInt64(1) << UInt64(i % 64)
            flipped += (RendezvousHash.mix(x) ^ RendezvousHash.mix(x ^ bit)).nonzeroBitCount
            samples += 1
        }
        #expect(outputs.count == 20_000)
        let average = Double(flipped) / Double(samples)
        #expect(abs(average - 32) < 1, "one input bit flips \(average) output bits on average")
    }
}
