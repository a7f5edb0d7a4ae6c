/// What a live reader reads: one app's envelopes, or every app's (the
/// firehose), shared with the other readers of its subscription id.
public enum StreamTarget: Hashable, Sendable {
    case app(String)
    case firehose(subscription: String)

    /// The source id of the notices Sluice writes to such a reader.
    var noticeSource: String {
        switch self {
        case .app(let app): app
        case .firehose: "firehose"
        }
    }
}
