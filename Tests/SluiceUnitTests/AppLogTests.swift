import NIOCore
import SluiceWire
import Testing

@testable import SluiceServer

/// `AppLog`: one app's recent envelopes in chunks, and the bytes it accounts.
@Suite struct AppLogTests {
    static func makeLog() -> AppLog {
        var id = ByteBuffer()
        id.writeString("app")
        return AppLog(appID: id)
    }

    /// Distinct bytes for envelope number `index`, `length` long.
    static func envelope(_ index: Int, length: Int) -> [UInt8] {
        (0..<length).map { UInt8(truncatingIfNeeded: index &* 31 &+ $0) }
    }

    static func recent(_ log: AppLog, limit: Int) -> [[UInt8]] {
        var out: [[UInt8]] = []
        log.forEachRecent(limit: limit) { bytes, _ in out.append(Array(bytes)) }
        return out
    }

    @Test func keepsOrder() {
        let log = Self.makeLog()
        let envelopes = (0..<500).map { Self.envelope($0, length: 10 + $0 % 90) }
        for envelope in envelopes { _ = envelope.withUnsafeBytes { log.append($0) } }
        #expect(log.count == 500)
        #expect(Self.recent(log, limit: 500) == envelopes)
        #expect(Self.recent(log, limit: 10_000) == envelopes)
        #expect(Self.recent(log, limit: 7) == Array(envelopes.suffix(7)))
        #expect(Self.recent(log, limit: 1) == [envelopes[499]])
        #expect(Self.recent(log, limit: 0).isEmpty)

        for _ in 0..<123 { log.removeOldest() }
        #expect(log.count == 377)
        #expect(Self.recent(log, limit: 1000) == Array(envelopes.dropFirst(123)))
        #expect(Self.recent(log, limit: 3) == Array(envelopes.suffix(3)))
    }

    @Test func emptyLog() {
        let log = Self.makeLog()
        #expect(log.count == 0)
        #expect(log.storedBytes == 0)
        #expect(log.removeOldest() == 0)
        #expect(Self.recent(log, limit: 10).isEmpty)
        #expect(log.storedBytes == 0)
    }

    @Test func envelopesLargerThanTheLargestChunk() {
        let log = Self.makeLog()
        let sizes = [100, 70_000, 65_536, 65_537, 200_000, 5, 1_000_000, 64]
        let envelopes = sizes.enumerated().map { Self.envelope($0.offset, length: $0.element) }
        var grown = 0
        for envelope in envelopes { grown += envelope.withUnsafeBytes { log.append($0) } }
        #expect(log.storedBytes == grown)
        #expect(log.storedBytes >= sizes.reduce(0, +))
        #expect(Self.recent(log, limit: 100) == envelopes)
        #expect(Self.recent(log, limit: 4) == Array(envelopes.suffix(4)))
        #expect(Self.recent(log, limit: 3).map(\.count) == [5, 1_000_000, 64])
        var freed = 0
        while log.count > 0 {
            freed += log.removeOldest()
            #expect(log.storedBytes >= 0)
            #expect(Self.recent(log, limit: 100) == Array(envelopes.suffix(log.count)))
        }
        #expect(freed == grown)
        #expect(log.storedBytes == 0)
    }

    /// `removeOldest` frees a chunk exactly when the last envelope in it goes,
    /// and then frees that chunk's whole capacity.
    @Test func removeOldestFreesWholeChunksOnly() {
        let log = Self.makeLog()
        // Which chunk each envelope went into, and each chunk's size.
        var chunkOf: [Int] = []
        var chunkSizes: [Int] = []
        for index in 0..<300 {
            let grown = Self.envelope(index, length: 700).withUnsafeBytes { log.append($0) }
            if grown > 0 { chunkSizes.append(grown) }
            #expect(index > 0 || grown > 0, "the first append allocates")
            chunkOf.append(chunkSizes.count - 1)
        }
        #expect(chunkSizes.count > 3, "700-byte envelopes fill several chunks")
        #expect(chunkSizes[0] >= AppLog.firstChunkSize)
        #expect(chunkSizes.allSatisfy { $0 <= 2 * AppLog.largestChunkSize })
        #expect(log.storedBytes == chunkSizes.reduce(0, +))

        var remaining = log.storedBytes
        for index in 0..<300 {
            let freed = log.removeOldest()
            let lastOfItsChunk = index == 299 || chunkOf[index + 1] != chunkOf[index]
            if lastOfItsChunk {
                #expect(freed == chunkSizes[chunkOf[index]], "removing envelope \(index)")
            } else {
                #expect(freed == 0, "removing envelope \(index)")
            }
            remaining -= freed
            #expect(log.storedBytes == remaining)
        }
        #expect(log.storedBytes == 0)
    }

    /// Random appends and removals against a plain model: storedBytes is
    /// the sum of what appends grew minus what removals freed, never
    /// negative, never less than the bytes held, and 0 whenever empty.
    @Test(arguments: [1 as UInt64, 2, 3, 4])
    func randomAppendsAndRemovals(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        let log = Self.makeLog()
        var model: [[UInt8]] = []
        var accounted = 0
        var next = 0
        for step in 0..<3000 {
            let append = model.isEmpty || Int.random(in: 0..<100, using: &generator) < 55
            if append {
                let roll = Int.random(in: 0..<100, using: &generator)
                let length =
                    roll < 3
                    ? Int.random(in: 65_536...150_000, using: &generator)
                    : roll < 10 ? Int.random(in: 4_000...20_000, using: &generator)
                    : Int.random(in: 1...600, using: &generator)
                let envelope = Self.envelope(next, length: length)
                next += 1
                accounted += envelope.withUnsafeBytes { log.append($0) }
                model.append(envelope)
            } else {
                accounted -= log.removeOldest()
                model.removeFirst()
            }
            #expect(log.storedBytes == accounted, "step \(step)")
            #expect(log.storedBytes >= 0, "step \(step)")
            #expect(log.storedBytes >= model.reduce(0) { $0 + $1.count }, "step \(step)")
            #expect(log.count == model.count, "step \(step)")
            if model.isEmpty { #expect(log.storedBytes == 0, "step \(step)") }
            if step % 97 == 0 {
                #expect(Self.recent(log, limit: model.count) == model, "step \(step)")
                #expect(Self.recent(log, limit: 5) == Array(model.suffix(5)), "step \(step)")
            }
        }
        while !model.isEmpty {
            accounted -= log.removeOldest()
            model.removeFirst()
            #expect(log.storedBytes == accounted)
        }
        #expect(log.storedBytes == 0)
        #expect(accounted == 0)
    }

    /// Each envelope keeps which sender frame it came in and its place
    /// among the app's envelopes of that frame, also once older ones go.
    @Test func identitiesSurviveEviction() {
        let log = Self.makeLog()
        func add(_ sender: UInt64, _ sequence: UInt64, _ count: Int) {
            for _ in 0..<count { _ = [UInt8](repeating: 1, count: 8).withUnsafeBytes { log.append($0, sender: sender, sequence: sequence) } }
        }
        func identities(_ limit: Int) -> [String] {
            var out: [String] = []
            log.forEachRecent(limit: limit) { _, id in out.append("\(id.sender).\(id.sequence).\(id.ordinal)") }
            return out
        }
        add(7, 1, 3)
        add(7, 2, 2)
        add(0, 0, 1)
        #expect(identities(100) == ["7.1.0", "7.1.1", "7.1.2", "7.2.0", "7.2.1", "0.0.0"])
        log.removeOldest()
        log.removeOldest()
        #expect(identities(100) == ["7.1.2", "7.2.0", "7.2.1", "0.0.0"])
        #expect(identities(3) == ["7.2.0", "7.2.1", "0.0.0"])
        for _ in 0..<3 { log.removeOldest() }
        #expect(identities(100) == ["0.0.0"])
        log.removeOldest()
        #expect(identities(100).isEmpty)
        add(7, 3, 2)
        log.removeOldest()
        #expect(identities(100) == ["7.3.1"])
    }
}
