import Logging

extension Logger {
    /// A logger that discards everything: for tests and embedded use.
    public static var quiet: Logger {
        Logger(label: "sluice.quiet", factory: { _ in SwiftLogNoOpLogHandler() })
    }
}
