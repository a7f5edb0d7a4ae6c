#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import SluiceTransport
import SluiceShipping
import SluiceWire

/// Logs from a Swift program straight to the local Sluice agent:
///
///     let emitter = try SluiceEmitter(app: "my-app")
///     emitter.log("hello")
///     emitter.log("something failed", type: .err)
///     await emitter.close()
///
/// `log` never waits: lines go into a buffer bounded in bytes and are sent
/// in batches, acknowledged by the agent. If the agent is gone or slow and
/// the buffer fills, the oldest lines are dropped and counted, and once
/// delivery resumes the app's readers are told how many were lost.
public final class SluiceEmitter: Sendable {
    public enum LogType: Sendable {
        case out
        case err
    }

    public struct InvalidArgument: Error, CustomStringConvertible {
        public var description: String
    }

    /// The agent's framed listener unless `$SLUICE_AGENT` says otherwise.
    public static let defaultAgent = "127.0.0.1:3457"

    public let app: String
    private let out: LogEnvelopeFields
    private let err: LogEnvelopeFields
    private let shipper: LogShipper

    public init(
        app: String, instance: String = "0", sourceType: String = "APP/PROC/WEB", agent: String? = nil,
        bufferBytes: Int = 8 * 1024 * 1024
    ) throws {
        guard !app.isEmpty else { throw InvalidArgument(description: "the app id must not be empty") }
        guard bufferBytes > 0 else { throw InvalidArgument(description: "the buffer must be at least 1 byte") }
        let address = agent ?? getenv("SLUICE_AGENT").map { String(cString: $0) } ?? Self.defaultAgent
        let endpoint: Endpoint
        do { endpoint = try Endpoint(parsing: address) } catch {
            throw InvalidArgument(description: "the agent's address: \(error)")
        }
        self.app = app
        self.out = LogEnvelopeFields(sourceID: app, instanceID: instance, sourceType: sourceType, isError: false)
        self.err = LogEnvelopeFields(sourceID: app, instanceID: instance, sourceType: sourceType, isError: true)
        var configuration = LogShipper.Configuration(endpoints: [endpoint], bufferBytes: bufferBytes)
        configuration.dropReason = "the emitter's buffer was full"
        configuration.metricsPrefix = "sluice_emitter"
        self.shipper = LogShipper(configuration: configuration)
    }

    /// Queues one message (split into tagged pieces past 64 KiB); never waits.
    public func log(_ message: String, type: LogType = .out) {
        let fields = type == .err ? err : out
        var message = message
        let timestamp = WallClock.nowNanos()
        message.withUTF8 { bytes in
            LineSplitter.split(UnsafeRawBufferPointer(bytes)) { piece, part in
                shipper.appendLog(fields, timestamp: timestamp, payload: piece, extraTags: part.map { [$0] } ?? [])
            }
        }
    }

    /// Lines dropped since the start because the buffer was full.
    public var droppedCount: Int { shipper.droppedTotal }

    /// Sends what is queued, waits up to `timeout` for the agent to take
    /// it, and stops. Returns whether every line was delivered.
    @discardableResult
    public func close(timeout: Duration = .seconds(5)) async -> Bool {
        let (unsent, acknowledged) = await shipper.finish(timeout: TimeAmount(timeout))
        return unsent == 0 && acknowledged
    }
}
