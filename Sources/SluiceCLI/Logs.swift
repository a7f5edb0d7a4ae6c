#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import SluiceProto
import SluiceWire
import SwiftProtobuf

/// `sluice logs APP`: recent lines, or a live tail, printed as `cf logs`
/// does; and `sluice firehose`: every app's lines, each with its app id in
/// front.
public struct Logs: Sendable {
    public var base: HTTPURL
    /// The app; ignored for the firehose.
    public var app: String
    /// Reads the firehose with this subscription id rather than one app.
    public var firehose: String? = nil
    public var json: Bool
    public var color: Bool
    /// Sent as `Authorization: Bearer`.
    public var token: String?
    /// PEM CA certificates for an `https://` controller (nil: the system's).
    public var trustRoots: String? = nil

    public init(base: HTTPURL, app: String, json: Bool, color: Bool, token: String? = nil) {
        self.base = base
        self.app = app
        self.json = json
        self.color = color
        self.token = token
    }

    var authorization: [(String, String)] { HTTPClient.bearer(token) }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The printed lines of one envelope (`--json`: one line of JSON).
    /// Sluice's own notices about the connection go to `stderr` instead.
    public func render(_ envelope: Loggregator_V2_Envelope) -> (stdout: [String], stderr: [String]) {
        if envelope.tags["source_type"] == Notice.sourceType && envelope.tags["sluice_notice"] == "zone" {
            return ([], ["sluice: " + String(decoding: envelope.log.payload, as: UTF8.self)])
        }
        if json {
            return ((try? envelope.jsonString()).map { [$0] } ?? [], [])
        }
        let lines = CFLogFormat(color: color).lines(for: envelope)
        guard firehose != nil else { return (lines, []) }
        return (lines.map { envelope.sourceID + " " + $0 }, [])
    }

    /// Fetches and prints the recent lines, oldest first; returns how many
    /// envelopes there were.
    @discardableResult
    public func recent(limit: Int = 1000, output: Output = .standard) async throws -> Int {
        let url = base.with(path: "/apps/\(pathEscape(app))/recentlogs?limit=\(limit)")
        let response = try await HTTPClient.get(
            url, headers: [("Accept", "application/x-protobuf")] + authorization, trustRoots: trustRoots)
        if let advice = AccessAdvice.text(for: response, app: app, sentToken: token != nil) {
            throw Failure(description: advice)
        }
        guard response.status == .ok else {
            throw Failure(description: "\(url) answered \(response.status.code): \(String(buffer: response.body))")
        }
        let batch = try Loggregator_V2_EnvelopeBatch(serializedBytes: Array(response.body.readableBytesView))
        for envelope in batch.batch { output.print(render(envelope)) }
        return batch.batch.count
    }

    /// Tails until the task is cancelled, reconnecting with backoff from
    /// 500 ms doubling to 1 minute and saying so on stderr.
    public func tail(output: Output = .standard, onConnected: @escaping @Sendable () -> Void = {}) async throws {
        let url =
            firehose.map { base.with(path: "/firehose/\(pathEscape($0))") }
            ?? base.with(path: "/apps/\(pathEscape(app))/stream")
        let what = firehose.map { "the firehose (subscription \($0))" } ?? "logs for app \(app)"
        var backoff: Duration = .milliseconds(500)
        while !Task.isCancelled {
            do {
                let client = try await WebSocketClient.connect(url, headers: authorization, trustRoots: trustRoots) { message in
                    guard case .binary(let bytes) = message,
                        let envelope = try? Loggregator_V2_Envelope(serializedBytes: Array(bytes.readableBytesView))
                    else { return }
                    output.print(render(envelope))
                }
                output.printError("sluice: tailing \(what) (\(url))")
                onConnected()
                backoff = .milliseconds(500)
                try await withTaskCancellationHandler {
                    try await client.closed.get()
                } onCancel: {
                    client.abort()
                }
                if Task.isCancelled { return }
                output.printError("sluice: the connection to \(url) closed; reconnecting in \(Self.describe(backoff))")
            } catch let tls as WebSocketTLSFailure {
                // Nor does a certificate the CLI does not trust.
                throw Failure(description: "\(tls)")
            } catch let refused as WebSocketRefused {
                // A refused token does not get better by trying again.
                if let status = refused.status,
                    let advice = AccessAdvice.text(
                        status: status, message: refused.message, app: firehose == nil ? app : nil,
                        sentToken: token != nil)
                {
                    throw Failure(description: advice)
                }
                if Task.isCancelled { return }
                output.printError("sluice: \(refused); retrying in \(Self.describe(backoff))")
            } catch {
                if Task.isCancelled { return }
                let reason = error is CommandFailure || error is WebSocketRefused ? "\(error)" : ErrorText.cannotReach("\(url.host):\(url.port)", error)
                output.printError("sluice: \(reason); retrying in \(Self.describe(backoff))")
            }
            try await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(60))
        }
    }

    static func describe(_ duration: Duration) -> String {
        let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return ms < 1000 ? "\(ms) ms" : "\(ms / 1000) s"
    }
}

/// Where `sluice logs` prints: standard output and error, or a collector in tests.
public struct Output: Sendable {
    private let write: @Sendable (_ stdout: [String], _ stderr: [String]) -> Void

    public init(write: @escaping @Sendable (_ stdout: [String], _ stderr: [String]) -> Void) {
        self.write = write
    }

    public func print(_ lines: (stdout: [String], stderr: [String])) {
        write(lines.stdout, lines.stderr)
    }

    public func printError(_ line: String) {
        write([], [line])
    }

    private static let lock = NIOLock()

    public static let standard = Output { out, err in
        lock.withLock {
            for line in out { writeAll(1, line + "\n") }
            for line in err { writeAll(2, line + "\n") }
        }
    }

    private static func writeAll(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }

    /// Flushes what `print` buffered.
    public static func flushStandardOutput() {
        fflush(nil)
    }

    /// Whether standard output is a terminal (ERR lines are red only then).
    public static var stdoutIsTerminal: Bool { isatty(1) == 1 }
}
