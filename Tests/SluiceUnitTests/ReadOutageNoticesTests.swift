import NIOCore
import SluiceProto
import SluiceWire
import SwiftProtobuf
import Testing

@testable import SluiceController

/// Which stops of an app's servers a read is told of.
struct ReadOutageNoticesTests {
    let second: Int64 = 1_000_000_000

    @Test func theOwnersStopsInTheRangeAreTold() {
        let owner = [LinkOutage(down: 10 * second, up: 20 * second), LinkOutage(down: 30 * second)]
        let notices = ReadOutageNotices.notices(
            app: "app", zone: "z1", owner: ("s1:1", owner), standIn: ("s2:2", []), start: 0, end: 0)
        #expect(notices.map(\.timestamp) == [10 * second, 30 * second])
        #expect(notices[0].text.hasPrefix("Sluice: buffer server s1:1 of zone z1 stopped answering at 1970-01-01T00:00:10"))
        // The range is [start, end).
        let later = ReadOutageNotices.notices(
            app: "app", zone: "z1", owner: ("s1:1", owner), standIn: nil, start: 10 * second + 1, end: 30 * second + 1)
        #expect(later.map(\.timestamp) == [30 * second])
        let before = ReadOutageNotices.notices(
            app: "app", zone: "z1", owner: ("s1:1", owner), standIn: nil, start: 0, end: 10 * second)
        #expect(before.isEmpty)
    }

    /// A stand-in holds the app's lines only while the owner is down, so
    /// only its stops then lost any.
    @Test func theStandInsStopsCountOnlyWhileTheOwnerWasDown() {
        let owner = [LinkOutage(down: 10 * second, up: 20 * second)]
        let standIn = [LinkOutage(down: 5 * second, up: 6 * second), LinkOutage(down: 15 * second, up: 16 * second),
                       LinkOutage(down: 25 * second)]
        let notices = ReadOutageNotices.notices(
            app: "app", zone: "z2", owner: ("s1:1", owner), standIn: ("s2:2", standIn), start: 0, end: 0)
        #expect(notices.map(\.timestamp) == [10 * second, 15 * second])
        #expect(notices[1].text.contains("buffer server s2:2 of zone z2"))
    }

    /// With the last seconds handed to the stand-in, the gap (and the
    /// notice) ends where the handover begins.
    @Test func aHandoverMovesTheNoticeToWhereTheGapEnds() {
        let owner = [LinkOutage(down: 10 * second, handedOverSince: 5 * second)]
        let notices = ReadOutageNotices.notices(
            app: "app", zone: "z1", owner: ("s1:1", owner), standIn: nil, start: 0, end: 0)
        #expect(notices.map(\.timestamp) == [5 * second])
        #expect(notices[0].text.contains("stopped answering at 1970-01-01T00:00:10"))
        #expect(notices[0].text.contains("held from before 1970-01-01T00:00:05"))
        #expect(notices[0].text.hasSuffix("are not read while it is down, and are lost if it restarted"))
        // A walk already past where the gap ends is not told.
        let walk = ReadOutageNotices.notices(
            app: "app", zone: "z1", owner: ("s1:1", owner), standIn: nil, start: 8 * second, end: 12 * second)
        #expect(walk.isEmpty)
    }

    @Test func onlyReadsThatTakeLogsAreTold() {
        #expect(ReadOutageNotices.readTakesLogs(messageFields: [], nameFilter: ""))
        #expect(ReadOutageNotices.readTakesLogs(messageFields: [5, 4], nameFilter: ""))
        #expect(!ReadOutageNotices.readTakesLogs(messageFields: [5], nameFilter: ""))
        #expect(!ReadOutageNotices.readTakesLogs(messageFields: [], nameFilter: "cpu"))
    }

    /// A notice is a log envelope from SLUICE, at the stop's time.
    @Test func aNoticeIsALogEnvelopeAtTheStopsTime() throws {
        let entries = ReadOutageNotices.envelopes(app: "app", [(7 * second, "Sluice: gone")])
        let envelope = try Loggregator_V2_Envelope(serializedBytes: Array(entries[0].bytes.readableBytesView))
        #expect(entries[0].timestamp == 7 * second)
        #expect(envelope.timestamp == 7 * second && envelope.sourceID == "app")
        #expect(envelope.tags["source_type"] == Notice.sourceType && envelope.tags["sluice_notice"] == "server_lost")
        #expect(String(decoding: envelope.log.payload, as: UTF8.self) == "Sluice: gone")
    }
}
