import Foundation
import NIOCore
import NIOEmbedded
import SluiceProto
import SluiceWire
import SwiftProtobuf
import Testing

@testable import SluiceServer

/// An app's log rate limit at its buffer server: the bucket, the notice
/// once a second, and the store keeping other apps whole.
@Suite struct AppRateLimitTests {
    static let second: Int64 = 1_000_000_000

    @Test func dropsPastTheLimitAreToldOnceASecondWithTheirCount() {
        var limit = AppRateLimit(bytesPerSecond: 1000, now: 0)
        var kept = 0
        for step in 0..<30 where limit.admit(bytes: 100, now: Int64(step)) { kept += 1 }
        #expect(kept == 10)
        #expect(limit.dropped == 20)
        // Not before a second has passed since the first drop.
        let early = limit.noticeDue(now: Self.second / 2)
        #expect(early == nil)
        let text = limit.noticeDue(now: Self.second + 10)
        #expect(text?.hasPrefix("app exceeded log rate limit (1000 bytes/sec): 20 lines dropped since 1970-01-01T00:00:00") == true)
        let again = limit.noticeDue(now: 3 * Self.second)
        #expect(again == nil, "told once")
        // Lines pass again once the blocked second is over.
        let passes = limit.admit(bytes: 100, now: 3 * Self.second)
        #expect(passes)
        #expect(AppRateLimit.noticeText(bytesPerSecond: 5, dropped: 1, sinceNanos: 0).contains(": 1 line dropped since"))
    }

    @Test func zeroLetsNothingThrough() {
        var limit = AppRateLimit(bytesPerSecond: 0, now: 0)
        let first = limit.admit(bytes: 0, now: 0)
        let later = limit.admit(bytes: 1, now: 5 * Self.second)
        #expect(!first && !later)
        #expect(limit.dropped == 2)
    }

    static func lines(_ app: String, _ count: Int, size: Int = 100) -> [Loggregator_V2_Envelope] {
        (0..<count).map { Make.log(app: app, String(repeating: "x", count: size - 10) + String(format: "%05d", $0)) }
    }

    static func recentTexts(_ store: EnvelopeStore, app: String) throws -> [String] {
        try EnvelopeStoreTests.recent(store, app: app).envelopes.filter { if case .log = $0.message { true } else { false } }
            .map { String(decoding: $0.log.payload, as: UTF8.self) }
    }

    @Test func aFloodingAppLosesWhatIsPastItsLimitAndOthersNothing() throws {
        let store = EnvelopeStore(limits: .init(appLogRateLimit: 2000))
        let reader = EmbeddedChannel()
        defer { _ = try? reader.finish() }
        store.subscribe(app: "noisy", id: 1, channel: reader)
        var batch: [Loggregator_V2_Envelope] = []
        let noisy = Self.lines("noisy", 200)
        // The quiet app has the default limit too, and stays under it.
        let quiet = Self.lines("quiet", 10)
        for index in 0..<200 {
            batch.append(noisy[index])
            if index % 20 == 0 { batch.append(quiet[index / 20]) }
        }
        // A counter is not a log line: the limit leaves it alone.
        for _ in 0..<50 { batch.append(Make.counter(app: "noisy")) }
        let deliveries = try store.ingest(try Make.batch(batch))
        let noisyKept = try Self.recentTexts(store, app: "noisy")
        let size = (try noisy[0].serializedBytes() as [UInt8]).count
        #expect(noisyKept.count == 2000 / size, "the burst, in whole envelopes of \(size) bytes")
        #expect(noisyKept == noisy.prefix(noisyKept.count).map { String(decoding: $0.log.payload, as: UTF8.self) })
        #expect(try Self.recentTexts(store, app: "quiet").count == 10)
        #expect(try EnvelopeStoreTests.recent(store, app: "noisy").envelopes.count == noisyKept.count + 50)
        // The live reader got only what was kept.
        let streamed = try deliveries.flatMap { try EnvelopeStoreTests.streamEnvelopes($0, id: 1) }
        #expect(streamed.filter { if case .log = $0.message { true } else { false } }.count == noisyKept.count)

        // A second on, one notice with the count and the limit.
        store.tellRateLimitDrops(now: WallClock.nowNanos() + 2 * Self.second)
        let notices = try EnvelopeStoreTests.recent(store, app: "noisy").envelopes.filter {
            $0.tags["source_type"] == Notice.sourceType
        }
        #expect(notices.count == 1)
        let text = notices.first.map { String(decoding: $0.log.payload, as: UTF8.self) } ?? ""
        #expect(text.hasPrefix("app exceeded log rate limit (2000 bytes/sec): \(200 - noisyKept.count) lines dropped since"))
        #expect(notices.first?.tags["sluice_notice"] == "log_rate_limit")
        // Told once.
        store.tellRateLimitDrops(now: WallClock.nowNanos() + 5 * Self.second)
        #expect(try Self.recentTexts(store, app: "noisy").filter { $0.hasPrefix("app exceeded") }.count == 1)
        #expect(try Self.recentTexts(store, app: "quiet").count == 10)
    }

    @Test func anAppsOwnLimitWinsOverTheDefault() throws {
        let store = EnvelopeStore(limits: .init(appLogRateLimit: 1000))
        store.setAppLogRateLimits(["free": -1, "shut": 0])
        _ = try store.ingest(try Make.batch(Self.lines("free", 100) + Self.lines("shut", 3) + Self.lines("other", 100)))
        #expect(try Self.recentTexts(store, app: "free").count == 100)
        #expect(try Self.recentTexts(store, app: "shut").isEmpty)
        #expect(try Self.recentTexts(store, app: "other").count < 100)
        // Taking the override away gives "free" the default at once.
        store.setAppLogRateLimits([:])
        _ = try store.ingest(try Make.batch(Self.lines("free", 100)))
        #expect(try Self.recentTexts(store, app: "free").count < 200)
    }

    @Test func withNoLimitNothingIsDropped() throws {
        let store = EnvelopeStore()
        _ = try store.ingest(try Make.batch(Self.lines("a", 1000, size: 1000)))
        #expect(try Self.recentTexts(store, app: "a").count == 1000)
    }
}
