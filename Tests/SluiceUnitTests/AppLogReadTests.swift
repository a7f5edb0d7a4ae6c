import Foundation
import NIOCore
import SluiceProto
import SluiceWire
import SwiftProtobuf
import Testing

@testable import SluiceServer

/// `AppLog.read`: the time-range read behind log-cache's API, against a
/// plain model that sorts everything (the answer must be the same), with
/// envelopes that arrive out of time order.
@Suite struct AppLogReadTests {
    /// A log envelope whose payload is its arrival number.
    static func envelope(_ number: Int, time: Int64) -> [UInt8] {
        var envelope = Loggregator_V2_Envelope()
        envelope.timestamp = time
        envelope.sourceID = "app"
        envelope.log.payload = Data("\(number)".utf8)
        return try! envelope.serializedBytes()
    }

    static func number(_ bytes: UnsafeRawBufferPointer) -> Int {
        let envelope = try! Loggregator_V2_Envelope(serializedBytes: Array(bytes))
        return Int(String(decoding: envelope.log.payload, as: UTF8.self))!
    }

    struct Stored {
        var number: Int
        var time: Int64
    }

    /// What the read must give: the envelopes in range, in (time, arrival)
    /// order, the first or last `limit`.
    static func model(_ stored: [Stored], _ range: Range<Int64>, limit: Int, newest: Bool) -> [Int] {
        let inRange = stored.filter { range.contains($0.time) }.sorted { ($0.time, $0.number) < ($1.time, $1.number) }
        return (newest ? Array(inRange.suffix(limit)) : Array(inRange.prefix(limit))).map(\.number)
    }

    static func read(_ log: AppLog, _ range: Range<Int64>, limit: Int, newest: Bool) -> [Int] {
        var out: [Int] = []
        log.read(range, limit: limit, newest: newest, admit: { _ in true }) { bytes, _ in out.append(number(bytes)) }
        return out
    }

    @Test(arguments: [0, 1, 50, 5_000])
    func matchesTheModel(lateness: Int64) {
        var generator = SeededGenerator(seed: UInt64(lateness) &+ 7)
        let log = AppLog(appID: ByteBuffer(string: "app"))
        var stored: [Stored] = []
        var clock: Int64 = 1_000_000
        for number in 0..<3_000 {
            clock += Int64(generator.next() % 20)
            // Most arrive in time order; some are late by up to `lateness`.
            let late = lateness > 0 && generator.next() % 5 == 0 ? Int64(generator.next() % UInt64(lateness + 1)) : 0
            let time = clock - late
            _ = Self.envelope(number, time: time).withUnsafeBytes { log.append($0, timestamp: time) }
            stored.append(Stored(number: number, time: time))
            if log.count > 2_000 {
                log.removeOldest()
                stored.removeFirst()
            }
        }
        let oldest = stored.map(\.time).min()!
        let newest = stored.map(\.time).max()!
        #expect(log.oldestTimestamp == oldest)
        #expect(log.newestTimestamp == newest)
        #expect(log.expired == 1_000)
        let ranges: [Range<Int64>] = [
            Int64.min..<Int64.max, 0..<oldest, oldest..<(oldest + 1), (newest + 1)..<Int64.max,
            (oldest + (newest - oldest) / 3)..<(oldest + (newest - oldest) / 2), newest..<(newest + 1),
        ]
        for range in ranges {
            for limit in [1, 7, 100, 1_000, 5_000] {
                for wantNewest in [false, true] {
                    #expect(
                        Self.read(log, range, limit: limit, newest: wantNewest)
                            == Self.model(stored, range, limit: limit, newest: wantNewest),
                        "range \(range), limit \(limit), newest \(wantNewest), lateness \(lateness)")
                }
            }
        }
        // Random ranges too.
        for _ in 0..<200 {
            let a = oldest + Int64(generator.next() % UInt64(newest - oldest + 1))
            let b = oldest + Int64(generator.next() % UInt64(newest - oldest + 1))
            let range = min(a, b)..<(max(a, b) + 1)
            let limit = Int(generator.next() % 300) + 1
            let wantNewest = generator.next() % 2 == 0
            #expect(
                Self.read(log, range, limit: limit, newest: wantNewest)
                    == Self.model(stored, range, limit: limit, newest: wantNewest))
        }
    }

    /// An envelope's identity is the same whichever way it is read, so the
    /// controller can take the owner's and the stand-in's copy once.
    @Test func identitiesAreTheSameAsTheRecentRead() {
        let log = AppLog(appID: ByteBuffer(string: "app"))
        for number in 0..<100 {
            // Frames of 10 from one sender, times descending within each.
            let time = Int64(number / 10 * 100 + (10 - number % 10))
            _ = Self.envelope(number, time: time).withUnsafeBytes {
                log.append($0, timestamp: time, sender: 9, sequence: UInt64(number / 10 + 1))
            }
        }
        for _ in 0..<15 { log.removeOldest() }
        var byNumber: [Int: EnvelopeIdentity] = [:]
        log.forEachRecent(limit: 1_000) { bytes, identity in byNumber[Self.number(bytes)] = identity }
        #expect(byNumber.count == 85)
        var read: [(Int, EnvelopeIdentity)] = []
        log.read(Int64.min..<Int64.max, limit: 1_000, newest: false, admit: { _ in true }) { bytes, identity in
            read.append((Self.number(bytes), identity))
        }
        #expect(read.count == 85)
        for (number, identity) in read {
            #expect(byNumber[number] == identity)
            #expect(identity.sequence == UInt64(number / 10 + 1))
            #expect(identity.ordinal == UInt32(number % 10))
        }
        // In time order: within a frame the later-arrived are older.
        #expect(read.map(\.0).prefix(5) == [19, 18, 17, 16, 15])
    }

    /// A read in time order reads about `limit` entries, not the app's
    /// whole history: a wrong stopping rule would still pass the model
    /// test, so count the envelopes the filter is asked about.
    @Test func aReadInTimeOrderStopsEarly() {
        let log = AppLog(appID: ByteBuffer(string: "app"))
        for number in 0..<50_000 {
            _ = Self.envelope(number, time: Int64(number)).withUnsafeBytes { log.append($0, timestamp: Int64(number)) }
        }
        var asked = 0
        var got: [Int] = []
        log.read(20_000..<Int64.max, limit: 100, newest: false, admit: { _ in asked += 1; return true }) { bytes, _ in
            got.append(Self.number(bytes))
        }
        #expect(got == Array(20_000..<20_100))
        #expect(asked <= 101)
        asked = 0
        got = []
        log.read(0..<30_000, limit: 100, newest: true, admit: { _ in asked += 1; return true }) { bytes, _ in
            got.append(Self.number(bytes))
        }
        #expect(got == Array(29_900..<30_000))
        #expect(asked <= 101)
    }

    /// An envelope far from the others in time (a clock years ahead, a
    /// line buffered for hours) costs reads only its own block: the reads
    /// still ask about `limit` envelopes (at most twice that), and answer
    /// as the model does.
    @Test func anOutlierWidensOnlyItsOwnBlock() {
        let log = AppLog(appID: ByteBuffer(string: "app"))
        var stored: [Stored] = []
        for number in 0..<50_000 {
            let time: Int64 = number == 100 ? 4_000_000_000_000_000_000 : number == 40_000 ? 5 : Int64(number)
            _ = Self.envelope(number, time: time).withUnsafeBytes { log.append($0, timestamp: time) }
            stored.append(Stored(number: number, time: time))
        }
        for (range, newest) in [(20_000..<Int64.max, false), (0..<30_000, true), (Int64.min..<Int64.max, true)] {
            var asked = 0
            var got: [Int] = []
            log.read(range, limit: 100, newest: newest, admit: { _ in asked += 1; return true }) { bytes, _ in
                got.append(Self.number(bytes))
            }
            #expect(got == Self.model(stored, range, limit: 100, newest: newest), "\(range)")
            // A found outlier can hold the bound back until the next
            // settling, at twice the limit: never the whole log.
            #expect(asked <= 203, "\(range): \(asked)")
        }
        #expect(log.oldestTimestamp == 0)
        #expect(log.newestTimestamp == 4_000_000_000_000_000_000)
    }

    /// What `admit` refuses is not counted against the limit.
    @Test func refusedEnvelopesDoNotCount() {
        let log = AppLog(appID: ByteBuffer(string: "app"))
        for number in 0..<1_000 {
            _ = Self.envelope(number, time: Int64(number)).withUnsafeBytes { log.append($0, timestamp: Int64(number)) }
        }
        var got: [Int] = []
        log.read(0..<Int64.max, limit: 5, newest: true, admit: { Self.number($0) % 7 == 0 }) { bytes, _ in
            got.append(Self.number(bytes))
        }
        #expect(got == [966, 973, 980, 987, 994])
    }

    /// Timestamps at Int64's ends do not overflow the bookkeeping.
    @Test func extremeTimestamps() {
        let log = AppLog(appID: ByteBuffer(string: "app"))
        let times: [Int64] = [.max, .min, 0, .max, .min + 1, -5]
        for (number, time) in times.enumerated() {
            _ = Self.envelope(number, time: time).withUnsafeBytes { log.append($0, timestamp: time) }
        }
        #expect(Self.read(log, Int64.min..<Int64.max, limit: 10, newest: false) == [1, 4, 5, 2])
        #expect(Self.read(log, Int64.min..<Int64.max, limit: 2, newest: true) == [5, 2])
        #expect(log.oldestTimestamp == .min)
        #expect(log.newestTimestamp == .max)
    }
}
