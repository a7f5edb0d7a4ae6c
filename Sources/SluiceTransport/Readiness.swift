import SluiceWire

/// Whether a process is ready for traffic, as `GET /readyz` answers it: 200
/// `{"status":"ready"}`, or 503 `{"status":"not_ready","reason":"…"}`. A
/// Kubernetes readiness probe or a load balancer stops sending to one that
/// is not; `/healthz` only says the process answers.
public struct Readiness: Sendable, Equatable {
    public var ready: Bool
    public var reason: String

    public static let ready = Readiness(ready: true, reason: "")

    public static func notReady(_ reason: String) -> Readiness {
        Readiness(ready: false, reason: reason)
    }

    /// The HTTP status: 200 or 503.
    public var status: Int { ready ? 200 : 503 }

    public var json: String {
        ready ? #"{"status":"ready"}"# : #"{"status":"not_ready","reason":"\#(jsonEscape(reason))"}"#
    }
}
