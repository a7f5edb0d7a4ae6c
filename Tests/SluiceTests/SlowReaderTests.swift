import NIOCore
import SluiceCLI
import SluiceProto
import SluiceWire
import Testing

/// A websocket reader that stops reading never slows ingest or other
/// readers; its oldest envelopes are dropped, counted and announced to it.
@Suite(.serialized)
struct SlowReaderTests {
    @Test func stalledReaderLosesOldestWithNoticeWhileOthersGetEverything() async throws {
        let queueLimit = 200
        let cluster = try await TestCluster.start(servers: 1, tailQueueLimit: queueLimit)
        defer { Task { await cluster.shutdown() } }

        let fast = Received()
        let fastClient = try await cluster.tail(app: "busy", into: fast)
        let slow = Received()
        let slowClient = try await cluster.tail(app: "busy", into: slow)
        try await slowClient.setReading(false)

        // 4 KiB lines, 24 MiB in all: more than the socket buffers and the
        // reader's queue hold.
        let total = 6_000
        let filler = String(repeating: "x", count: 4096)
        let lines = (0..<total).map { "\($0) \(filler)" }
        // In chunks, each sent once the fast reader has the one before, so
        // that it keeps up however loaded the machine is; the stalled reader
        // falls behind by the whole stream.
        for start in stride(from: 0, to: total, by: 100) {
            try await cluster.emit(app: "busy", lines: Array(lines[start..<min(start + 100, total)]))
            #expect(await fast.wait(for: min(start + 100, total), timeout: .seconds(60)))
        }

        // The fast reader got everything, in order, while the slow one stalled.
        #expect(fast.envelopes.map(\.text) == lines)
        #expect(!fast.envelopes.contains { $0.isNotice }, "\(fast.envelopes.filter(\.isNotice).map(\.text))")

        // Resume the slow reader: it is told in band how many were dropped,
        // and what it got plus what it was told it lost is everything.
        try await slowClient.setReading(true)
        let complete = await slow.wait(timeout: .seconds(60)) { seen in
            let notices = seen.notices
            return !notices.isEmpty && seen.count - notices.count + notices.map(Self.reported).reduce(0, +) == total
        }
        #expect(complete, "slow reader got \(slow.envelopes.count)")
        let notices = slow.envelopes.filter(\.isNotice)
        let reported = notices.map(Self.reported).reduce(0, +)
        #expect(reported > 0)
        #expect(notices.allSatisfy { $0.sourceID == "busy" && $0.log.type == .err })
        #expect(notices.allSatisfy { $0.text.hasPrefix("Error L10 (output buffer overflow): ") }, "\(notices.map(\.text))")
        // Every drop is counted in the metrics too.
        let metric = cluster.metric(#"sluice_controller_stream_envelopes_dropped_total{reason="slow_reader"}"#)
        #expect(metric.map { Int($0) } == reported)
        // What it kept is in order and ends with the newest line.
        let numbers = slow.envelopes.filter { !$0.isNotice }.map { Int($0.text.prefix { $0 != " " })! }
        #expect(numbers == numbers.sorted())
        #expect(numbers.last == total - 1)

        await fastClient.close()
        await slowClient.close()
    }

    /// N in "… N messages dropped since …".
    static func reported(_ notice: Loggregator_V2_Envelope) -> Int {
        let words = notice.text.split(separator: " ")
        guard let index = words.firstIndex(of: "messages"), index > 0 else { return 0 }
        return Int(words[index - 1]) ?? 0
    }
}
