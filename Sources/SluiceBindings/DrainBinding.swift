import FoundationEssentials
import SluiceWire

/// One drain binding: an app's logs go to `url`.
public struct DrainBinding: Hashable, Sendable {
    /// Random, 16 hex digits; stable for the binding's life.
    public var id: String
    public var app: String
    /// Unique within the app; the id when none was given.
    public var name: String
    /// The URL as given, credentials included. Never print it: use `redactedURL`.
    public var url: String
    /// Seconds since 1970.
    public var createdAt: Double

    public init(id: String, app: String, name: String, url: String, createdAt: Double) {
        self.id = id
        self.app = app
        self.name = name
        self.url = url
        self.createdAt = createdAt
    }

    /// The URL with credentials hidden, or a placeholder if it no longer parses.
    public var redactedURL: String {
        (try? DrainURL(parsing: url))?.redacted ?? "(unparsable drain URL)"
    }

    /// The binding as the API returns it: the URL redacted.
    public var json: String {
        #"{"id":"\#(jsonEscape(id))","app":"\#(jsonEscape(app))","name":"\#(jsonEscape(name))","url":"\#(jsonEscape(redactedURL))","created_at":"\#(WallClock.utcTime(nanoseconds: Int64(createdAt * 1e9)))"}"#
    }

    public static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() as UInt64
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// Why a binding change was refused.
public enum BindingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The app already has a drain with this URL or this name.
    case duplicate(String)
    /// No binding with this id or name for the app.
    case notFound(String)
    /// The store could not be reached or failed.
    case store(String)

    public var description: String {
        switch self {
        case .duplicate(let message), .notFound(let message), .store(let message): message
        }
    }
}

/// What the bindings store holds, as servers apply it: every drain, and
/// the apps' own log rate limits.
public struct BindingSet: Equatable, Sendable {
    public var drains: [DrainBinding]
    /// Bytes per second by app; -1: no limit for that app.
    public var logRateLimits: [String: Int]

    public init(drains: [DrainBinding] = [], logRateLimits: [String: Int] = [:]) {
        self.drains = drains
        self.logRateLimits = logRateLimits
    }
}

/// Where bindings are kept. Controllers write; buffer servers watch.
public protocol BindingStore: Sendable {
    /// Adds a binding; throws `.duplicate` if the app has this URL or name already.
    func add(app: String, url: String, name: String?) async throws -> DrainBinding
    /// The bindings of `app`, or of every app when nil, oldest first.
    func list(app: String?) async throws -> [DrainBinding]
    /// Removes the app's binding with this id or name; throws `.notFound`.
    func remove(app: String, idOrName: String) async throws -> DrainBinding
    /// Sets an app's own log rate limit at its buffer server (bytes per
    /// second, -1 for none), or with nil removes it so that the servers'
    /// default holds.
    func setLogRateLimit(app: String, bytesPerSecond: Int?) async throws
    /// The app's own log rate limit, if it has one.
    func logRateLimit(app: String) async throws -> Int?
    /// The whole set now, then again after each change (within `pollInterval`
    /// where the store is polled). Ends when the task is cancelled.
    func watch() -> AsyncThrowingStream<BindingSet, any Error>
    func close() async
}
