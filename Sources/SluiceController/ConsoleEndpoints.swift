import FoundationEssentials
import NIOConcurrencyHelpers
import NIOCore
import SluiceConsole
import SluiceProto
import SluiceWire

/// What the controller needs to serve the web console: whether it is on,
/// its base path, and the one-time sign-in codes `sluice ui` asks for
/// (held in memory: a code works at the controller that issued it).
public final class ConsoleEndpoints: Sendable {
    public struct Settings: Sendable {
        /// `--no-ui` turns the page off (the API stays).
        public var enabled: Bool
        /// `--ui-base-path`: the path a reverse proxy serves the controller under.
        public var basePath: ConsoleBasePath

        public init(enabled: Bool = true, basePath: ConsoleBasePath = .root) {
            self.enabled = enabled
            self.basePath = basePath
        }
    }

    public let settings: Settings
    /// The zone of the controller serving the console.
    let zone: String
    /// How old a servers' meta answer the apps list and drain states may
    /// show (Egress.meta(reusing:)).
    static let metaReuse = TimeAmount.seconds(1)
    private let logins = NIOLockedValueBox(LoginCodes())

    public init(settings: Settings = .init(), zone: String = "") {
        self.settings = settings
        self.zone = zone
    }

    /// A one-time sign-in code for `token`.
    func issue(token: String) -> String {
        var random = SystemRandomNumberGenerator()
        return logins.withLockedValue { $0.issue(token: token, now: WallClock.nowNanos(), using: &random) }
    }

    /// The token of `code`, once.
    func redeem(_ code: String) -> String? {
        logins.withLockedValue { $0.redeem(code, now: WallClock.nowNanos()) }
    }

    struct LoginRequest: Decodable {
        var code: String
    }

    /// `{"apps":[{"app","lines","held","expired","dropped","newest"}…],"partial":[…]}`:
    /// `lines` every envelope the servers took in (held and let go),
    /// `dropped` those the app's log rate limit dropped, `newest` the
    /// newest time in nanoseconds (a string, as log-cache writes times).
    static func appsJSON(_ sources: some Sequence<Sluice_V1_SourceMeta>, partial: [String]) -> String {
        let entries = sources.sorted { $0.sourceID < $1.sourceID }.map { source in
            #"{"app":"\#(jsonEscape(source.sourceID))","lines":\#(source.count + source.expired),"held":\#(source.count),"expired":\#(source.expired),"dropped":\#(source.dropped),"newest":"\#(source.newestTimestamp)"}"#
        }
        return #"{"apps":["# + entries.joined(separator: ",") + #"],"#
            + HTTPAPIHandler.partialField(partial) + "}"
    }

    /// `{"drains":[{"id","state","sent","dropped","queued","servers"}…],"partial":[…]}`:
    /// `state` `up`, or `retrying` when a server's last send failed.
    static func drainStatusJSON(_ drains: [String: Egress.DrainState], partial: [String]) -> String {
        let entries = drains.sorted { $0.key < $1.key }.map { id, drain in
            #"{"id":"\#(jsonEscape(id))","state":"\#(drain.up ? "up" : "retrying")","sent":\#(drain.sent),"dropped":\#(drain.dropped),"queued":\#(drain.queued),"servers":\#(drain.servers)}"#
        }
        return #"{"drains":["# + entries.joined(separator: ",") + #"],"#
            + HTTPAPIHandler.partialField(partial) + "}"
    }

    /// `{"zone":"z1","zones":[{"zone","controllers"}…],"partial":[…]}`:
    /// `controllers` the most own-zone controllers any server of the zone
    /// has connected (0 for a zone none of whose servers answered).
    static func clusterJSON(zone: String, zones: [String], controllers: [String: Int], partial: [String]) -> String {
        let entries = zones.map { name in
            #"{"zone":"\#(jsonEscape(name))","controllers":\#(controllers[name] ?? 0)}"#
        }
        return #"{"zone":"\#(jsonEscape(zone))","zones":["# + entries.joined(separator: ",") + #"],"#
            + HTTPAPIHandler.partialField(partial) + "}"
    }
}
