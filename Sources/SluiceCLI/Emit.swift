#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import SluiceTransport
import SluiceWire

/// `sluice emit`: sends its arguments as one line, or every line of standard
/// input, as Log envelopes, batched.
public struct Emit: Sendable {
    /// Controllers' ingress addresses, in order of preference.
    public var controllers: [Endpoint]
    public var fields: LogEnvelopeFields
    /// Lines per batch at most; a batch also goes out when input pauses.
    public var batchSize: Int = 1000

    public init(controllers: [Endpoint], fields: LogEnvelopeFields) {
        self.controllers = controllers
        self.fields = fields
    }

    /// Lines longer than this are sent as several envelopes.
    public static let maxLineBytes = 64 * 1024
    /// A batch goes out once its payload reaches this size.
    static let maxBatchBytes = 1024 * 1024

    /// Sends one message (the arguments joined by spaces).
    public func send(message: String) async throws {
        let client = try await IngressClient.connect(to: controllers)
        var builder = BatchFrameBuilder(capacity: message.utf8.count + 256)
        var ready: [ByteBuffer] = []
        var line = message
        _ = line.withUTF8 { append(UnsafeRawBufferPointer($0), to: &builder, ready: &ready) }
        if let frame = builder.finish(type: .envelopes, sequence: 0) { ready.append(frame) }
        for frame in ready { try await client.send(frame: frame) }
        try await client.close()
    }

    /// Sends every line of a file descriptor (standard input) until EOF.
    /// Returns the number of envelopes sent.
    @discardableResult
    public func sendLines(from fd: Int32 = 0) async throws -> Int {
        let client = try await IngressClient.connect(to: controllers)
        var builder = BatchFrameBuilder(capacity: 64 * 1024)
        var ready: [ByteBuffer] = []
        var pending: [UInt8] = []
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
            pending.append(contentsOf: chunk[0..<count])
            var start = 0
            pending.withUnsafeBytes { bytes in
                while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    var end = newline
                    if end > start && bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                    sent += append(UnsafeRawBufferPointer(rebasing: bytes[start..<end]), to: &builder, ready: &ready)
                    start = newline + 1
                }
                // A line with no end yet that is already too long goes out in pieces.
                while bytes.count - start >= Self.maxLineBytes {
                    let end = start + Self.maxLineBytes
                    sent += append(UnsafeRawBufferPointer(rebasing: bytes[start..<end]), to: &builder, ready: &ready)
                    start = end
                }
            }
            pending.removeFirst(start)
            if builder.count > 0 && !moreInputReady(fd), let frame = builder.finish(type: .envelopes, sequence: 0) {
                ready.append(frame)
            }
            try await send()
        }
        if !pending.isEmpty {
            sent += pending.withUnsafeBytes { append($0, to: &builder, ready: &ready) }
        }
        if let frame = builder.finish(type: .envelopes, sequence: 0) { ready.append(frame) }
        try await send()
        try await client.close()
        return sent
    }

    /// Appends one line, split into pieces of at most `maxLineBytes`;
    /// finished batches move to `ready`. Returns the envelopes appended.
    @discardableResult
    func append(_ line: UnsafeRawBufferPointer, to builder: inout BatchFrameBuilder, ready: inout [ByteBuffer]) -> Int {
        var start = 0
        var pieces = 0
        repeat {
            let end = min(line.count, start + Self.maxLineBytes)
            builder.appendLog(fields, timestamp: CFLogFormat.nowNanos(), payload: UnsafeRawBufferPointer(rebasing: line[start..<end]))
            pieces += 1
            start = end
            if builder.count >= batchSize || builder.payloadBytes >= Self.maxBatchBytes {
                ready.append(builder.finish(type: .envelopes, sequence: 0)!)
            }
        } while start < line.count
        return pieces
    }

    /// Whether `fd` has bytes to read right now (so a batch may wait for them).
    private func moreInputReady(_ fd: Int32) -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&poller, 1, 0) > 0
    }
}

