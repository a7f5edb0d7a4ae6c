import FoundationEssentials
import SluiceProto
import SwiftProtobuf

/// In-band notices: Log envelopes Sluice itself writes into an app's stream
/// to tell its readers what happened, such as lines dropped for a reader that
/// did not keep up (as Logplex's `L10` does). Their `source_type` is
/// `SLUICE`, so readers can tell them from the app's own lines.
public enum Notice {
    public static let sourceType = "SLUICE"

    /// The serialized bytes of a notice envelope.
    public static func envelope(app: String, text: String, timestampNanos: Int64, kind: String) -> [UInt8] {
        var envelope = Loggregator_V2_Envelope()
        envelope.timestamp = timestampNanos
        envelope.sourceID = app
        envelope.tags = ["source_type": sourceType, "sluice_notice": kind]
        var log = Loggregator_V2_Log()
        log.payload = Data(text.utf8)
        log.type = .err
        envelope.log = log
        return (try? envelope.serializedBytes()) ?? []
    }

    /// The text of a drop notice: how many, since when, and why.
    public static func dropText(count: Int, sinceNanos: Int64, reason: String) -> String {
        let since = WallClock.utcTime(nanoseconds: sinceNanos)
        return "Error L10 (output buffer overflow): \(count) messages dropped since \(since) (\(reason))"
    }
}
