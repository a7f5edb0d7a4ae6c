#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import SluiceTLS
import SluiceTransport
import SluiceShipping
import SluiceWire

/// `sluice emit`: sends its arguments as one line, or every line of standard
/// input, as Log envelopes, batched.
public struct Emit: Sendable {
    /// Controllers' ingress addresses, in order of preference.
    public var controllers: [Endpoint]
    public var fields: LogEnvelopeFields
    /// Lines per batch at most; a batch also goes out when input pauses.
    public var batchSize: Int = 1000
    /// Mutual TLS to the controllers.
    public var tls: LinkTLS?

    public init(controllers: [Endpoint], fields: LogEnvelopeFields) {
        self.controllers = controllers
        self.fields = fields
    }

    /// A batch goes out once its payload reaches this size.
    static let maxBatchBytes = 1024 * 1024

    /// Sends one message (the arguments joined by spaces), in tagged pieces
    /// if it is longer than `LineSplitter.defaultMaxLineBytes`.
    public func send(message: String) async throws {
        let client = try await IngressClient.connect(to: controllers, tls: tls?.dialer(role: "emit", logger: .quiet))
        var builder = BatchFrameBuilder(capacity: message.utf8.count + 256)
        var ready: [ByteBuffer] = []
        var line = message
        line.withUTF8 { bytes in
            LineSplitter.split(UnsafeRawBufferPointer(bytes)) { append($0, tag: $1, to: &builder, ready: &ready) }
        }
        if let frame = builder.finish(type: .envelopes, sequence: 0) { ready.append(frame) }
        for frame in ready { try await client.send(frame: frame) }
        try await client.close()
    }

    /// Sends every line of a file descriptor (standard input) until EOF.
    /// Returns the number of envelopes sent.
    @discardableResult
    public func sendLines(from fd: Int32 = 0) async throws -> Int {
        let client = try await IngressClient.connect(to: controllers, tls: tls?.dialer(role: "emit", logger: .quiet))
        var builder = BatchFrameBuilder(capacity: 64 * 1024)
        var ready: [ByteBuffer] = []
        var splitter = LineSplitter()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var sent = 0
        func send() async throws {
            for frame in ready { try await client.send(frame: frame) }
            ready.removeAll()
        }
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            chunk.withUnsafeBytes { bytes in
                splitter.feed(UnsafeRawBufferPointer(rebasing: bytes[0..<count])) {
                    append($0, tag: $1, to: &builder, ready: &ready)
                    sent += 1
                }
            }
            if builder.count > 0 && !moreInputReady(fd), let frame = builder.finish(type: .envelopes, sequence: 0) {
                ready.append(frame)
            }
            try await send()
        }
        splitter.finish {
            append($0, tag: $1, to: &builder, ready: &ready)
            sent += 1
        }
        if let frame = builder.finish(type: .envelopes, sequence: 0) { ready.append(frame) }
        try await send()
        try await client.close()
        return sent
    }

    /// Appends one line (or piece); finished batches move to `ready`.
    func append(_ line: UnsafeRawBufferPointer, tag: LogTag?, to builder: inout BatchFrameBuilder, ready: inout [ByteBuffer]) {
        builder.appendLog(fields, timestamp: WallClock.nowNanos(), payload: line, extraTags: tag.map { [$0] } ?? [])
        if builder.count >= batchSize || builder.payloadBytes >= Self.maxBatchBytes {
            ready.append(builder.finish(type: .envelopes, sequence: 0)!)
        }
    }

    /// Whether `fd` has bytes to read right now (so a batch may wait for them).
    private func moreInputReady(_ fd: Int32) -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&poller, 1, 0) > 0
    }
}

