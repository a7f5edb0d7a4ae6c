import Logging

/// Metadata keys of every log line Sluice writes, in one place.
public enum LogKeys {
    public static let appID = "sluice.app_id"
    public static let remote = "sluice.remote"
    public static let reason = "sluice.reason"
    public static let server = "sluice.server"
    public static let zone = "sluice.zone"
    public static let address = "sluice.address"
    public static let count = "sluice.count"
    public static let subscription = "sluice.subscription"
}

extension Logger {
    /// A logger that discards everything: for tests and embedded use.
    public static var quiet: Logger {
        Logger(label: "sluice.quiet", factory: { _ in SwiftLogNoOpLogHandler() })
    }
}
