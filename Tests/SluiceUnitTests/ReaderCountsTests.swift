import NIOCore
import Testing

@testable import SluiceController

@Suite struct ReaderCountsTests {
    let now = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    @Test func aReaderPastTheAppsLimitIsRefusedAndOthersAreNot() {
        var counts = ReaderCounts(limits: .init(total: 10, perApp: 2))
        #expect(counts.admit(.app("a"), now: now) == nil)
        #expect(counts.admit(.app("a"), now: now) == nil)
        #expect(counts.admit(.app("a"), now: now)?.refusal == .perApp)
        #expect(counts.admit(.app("b"), now: now) == nil)
        // A firehose subscription is limited as an app is, apart from it.
        #expect(counts.admit(.firehose(subscription: "a"), now: now) == nil)
        #expect(counts.count(of: .app("a")) == 2)
        #expect(counts.total == 4)
        counts.release(.app("a"))
        #expect(counts.admit(.app("a"), now: now) == nil)
    }

    @Test func theTotalLimitComesFirst() {
        var counts = ReaderCounts(limits: .init(total: 2, perApp: 5))
        #expect(counts.admit(.app("a"), now: now) == nil)
        #expect(counts.admit(.app("b"), now: now) == nil)
        #expect(counts.admit(.app("c"), now: now)?.refusal == .total)
        counts.release(.app("b"))
        #expect(counts.total == 1)
        #expect(counts.admit(.app("c"), now: now) == nil)
    }

    @Test func releasingWhatWasNotTakenChangesNothing() {
        var counts = ReaderCounts(limits: .init(total: 2, perApp: 1))
        counts.release(.app("ghost"))
        #expect(counts.total == 0)
        #expect(counts.admit(.app("a"), now: now) == nil)
        counts.release(.app("a"))
        counts.release(.app("a"))
        #expect(counts.total == 0)
    }

    @Test func aRefusalIsLoggedOnceInTenSecondsForEachKind() {
        var counts = ReaderCounts(limits: .init(total: 2, perApp: 1))
        #expect(counts.admit(.app("a"), now: now) == nil)
        #expect(counts.admit(.app("a"), now: now)?.log == true)
        #expect(counts.admit(.app("a"), now: now + .seconds(9))?.log == false)
        #expect(counts.admit(.app("b"), now: now + .seconds(9)) == nil)
        // The other kind has its own clock.
        #expect(counts.admit(.app("c"), now: now + .seconds(9))?.log == true)
        counts.release(.app("b"))
        // Ten seconds after the first line about it, one more.
        let again = counts.admit(.app("a"), now: now + .seconds(10))
        #expect(again?.refusal == .perApp && again?.log == true)
        #expect(counts.admit(.app("a"), now: now + .seconds(10))?.log == false)
        #expect(counts.admit(.app("a"), now: now + .seconds(19))?.log == false)
    }
}
