import NIOCore
import SluiceWire

/// A time a controller lost a buffer server that had been up: when it
/// stopped answering, since when what the server had acknowledged was
/// handed to the servers standing in (`AckedHistory`; nil: nothing was),
/// and when it answered again (nil: not yet). Unix nanoseconds.
public struct LinkOutage: Equatable, Sendable {
    public var down: Int64
    public var handedOverSince: Int64?
    public var up: Int64?

    public init(down: Int64, handedOverSince: Int64? = nil, up: Int64? = nil) {
        self.down = down
        self.handedOverSince = handedOverSince
        self.up = up
    }

    /// Whether the server was down at `time`.
    func covers(_ time: Int64) -> Bool { time >= down && time < (up ?? .max) }

    /// Where the gap in what reads find begins to end: what the server
    /// held from before this time is not read while it is down.
    var gapEnd: Int64 { min(down, handedOverSince ?? down) }

    /// How many outages a link remembers: the newest.
    static let kept = 16
}

/// The in-band notices a read of an app's history gets for what its
/// servers lost by stopping. Reads (`recent`, and log-cache's
/// `/api/v1/read`, which the cf CLI walks) ask an app's owner and the
/// server standing in for it in each zone. When the one holding the app's
/// lines stops answering, its controller hands the last few seconds it
/// acknowledged to the stand-in (`AckedHistory`); what the server held
/// from before then is not read while it is down, and is gone if it
/// restarted. Each such stop becomes a log envelope from `SLUICE` whose
/// timestamp is where that gap ends: merged in by time, `recent` shows it
/// where the lines stop being complete, and a walk far enough behind to
/// miss lines meets it once, where they were. Plain logic.
enum ReadOutageNotices {
    /// The notices for `app` in one zone, whose owner and stand-in had
    /// `owner` and `standIn` outages, within `[start, end)` (end 0: no
    /// end). The owner's every stop counts; the stand-in's only while the
    /// owner was down, since only then did it hold the app's lines.
    static func notices(
        app: String, zone: String,
        owner: (name: String, outages: [LinkOutage]),
        standIn: (name: String, outages: [LinkOutage])?,
        start: Int64, end: Int64
    ) -> [(timestamp: Int64, text: String)] {
        func inRange(_ time: Int64) -> Bool { time >= start && (end == 0 || time < end) }
        var out: [(timestamp: Int64, text: String)] = []
        for outage in owner.outages where inRange(outage.gapEnd) {
            out.append((outage.gapEnd, text(server: owner.name, zone: zone, outage)))
        }
        if let standIn {
            for outage in standIn.outages
            where inRange(outage.gapEnd) && owner.outages.contains(where: { $0.covers(outage.down) }) {
                out.append((outage.gapEnd, text(server: standIn.name, zone: zone, outage)))
            }
        }
        return out.sorted { $0.timestamp < $1.timestamp }
    }

    static func text(server: String, zone: String, _ outage: LinkOutage) -> String {
        let stopped = "Sluice: buffer server \(server) of zone \(zone) stopped answering at \(WallClock.utcTime(nanoseconds: outage.down)); "
        let lost = "are not read while it is down, and are lost if it restarted"
        guard outage.gapEnd < outage.down else { return stopped + "the lines of this app it held from before then " + lost }
        return stopped + "the lines of this app it held from before \(WallClock.utcTime(nanoseconds: outage.gapEnd)) " + lost
    }

    /// Whether a read asking for `messageFields` (empty: any) with
    /// `nameFilter` takes log envelopes such as a notice.
    static func readTakesLogs(messageFields: [UInt32], nameFilter: String) -> Bool {
        nameFilter.isEmpty && (messageFields.isEmpty || messageFields.contains(4))
    }

    /// The notices as entries of a recent answer, oldest first.
    static func envelopes(app: String, _ notices: [(timestamp: Int64, text: String)]) -> [RecentEnvelope] {
        notices.map { notice in
            RecentEnvelope(
                timestamp: notice.timestamp,
                bytes: ByteBuffer(
                    bytes: Notice.envelope(app: app, text: notice.text, timestampNanos: notice.timestamp, kind: "server_lost")),
                identity: nil)
        }
    }
}
