#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SluiceTLS
import SluiceTransport
import SluiceShipping
import SluiceWire

/// The two ends of `bin/bench`: a load generator that sends Log envelopes at
/// a set rate, and a tail reader that counts what a websocket delivers.
public enum Bench {
    public struct LoadResult: Sendable {
        public var sent: Int
        public var seconds: Double
    }

    /// Sends `count` envelopes of `payloadBytes` bytes for `app`, in batches
    /// of `batch`, paced to `rate` envelopes per second (0: as fast as the
    /// controller takes them). Each payload starts with its sequence number.
    public static func load(
        controllers: [Endpoint], app: String, count: Int, rate: Int, batch: Int, payloadBytes: Int, tls: LinkTLS? = nil
    ) async throws -> LoadResult {
        let client = try await IngressClient.connect(
            to: controllers, maxWindow: 64 * 1024 * 1024, tls: tls?.dialer(role: "bench-load", logger: .quiet))
        let fields = LogEnvelopeFields(sourceID: app, instanceID: "0", sourceType: "APP/PROC/WEB")
        var payload = [UInt8](repeating: UInt8(ascii: "x"), count: max(payloadBytes, 12))
        var builder = BatchFrameBuilder(capacity: batch * (payloadBytes + 64) + 64)
        let start = monotonicSeconds()
        var sent = 0
        while sent < count {
            let n = min(batch, count - sent)
            for i in 0..<n {
                writeSequence(sent + i, into: &payload)
                payload.withUnsafeBytes {
                    builder.appendLog(fields, timestamp: WallClock.nowNanos(), payload: $0)
                }
            }
            try await client.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
            sent += n
            if rate > 0 {
                let due = start + Double(sent) / Double(rate)
                let wait = due - monotonicSeconds()
                if wait > 0.001 { try await Task.sleep(for: .microseconds(Int(wait * 1_000_000))) }
            }
        }
        try await client.close()
        return LoadResult(sent: sent, seconds: monotonicSeconds() - start)
    }

    private static func writeSequence(_ value: Int, into payload: inout [UInt8]) {
        var v = value
        for index in stride(from: 11, through: 0, by: -1) {
            payload[index] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
        }
    }

    public struct TailResult: Sendable {
        public var received: Int
        public var notices: Int
        public var droppedReported: Int
        public var outOfOrder: Int
        public var seconds: Double
    }

    /// Counts envelopes from a websocket until `expect` have arrived or none
    /// came for `idleTimeout` seconds. `ready` is called once connected.
    public static func tail(
        url: HTTPURL, token: String? = nil, trustRoots: String? = nil, expect: Int, idleTimeout: Double,
        ready: @Sendable () -> Void
    ) async throws -> TailResult {
        let state = NIOLockedValueBox(TailState())
        let marker = Array("sluice_notice".utf8)
        let client = try await WebSocketClient.connect(
            url, headers: HTTPClient.bearer(token), trustRoots: trustRoots
        ) { message in
            guard case .binary(let bytes) = message else { return }
            let now = monotonicSeconds()
            // Load lines start with their number; only what does not is
            // looked at closely (Sluice's notices).
            let sequence = sequenceNumber(in: bytes)
            let isNotice =
                sequence == nil
                && (bytes.readableBytesView.withContiguousStorageIfAvailable { contains($0, marker) } ?? false)
            state.withLockedValue { state in
                if state.first == 0 { state.first = now }
                state.last = now
                if isNotice {
                    state.notices += 1
                    state.droppedReported += droppedCount(in: String(buffer: bytes))
                } else {
                    state.received += 1
                    if let sequence {
                        if sequence < state.lastSequence { state.outOfOrder += 1 }
                        state.lastSequence = sequence
                    }
                }
            }
        }
        ready()
        while true {
            try await Task.sleep(for: .milliseconds(50))
            let (received, last) = state.withLockedValue { ($0.received, $0.last) }
            if received >= expect { break }
            let idleSince = last == 0 ? nil : last
            if let idleSince, monotonicSeconds() - idleSince > idleTimeout { break }
        }
        await client.close()
        return state.withLockedValue {
            TailResult(
                received: $0.received, notices: $0.notices, droppedReported: $0.droppedReported,
                outOfOrder: $0.outOfOrder, seconds: $0.last - $0.first)
        }
    }

    private struct TailState {
        var received = 0
        var notices = 0
        var droppedReported = 0
        var outOfOrder = 0
        var lastSequence = -1
        var first = 0.0
        var last = 0.0
    }

    private static func contains(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<start + needle.count].elementsEqual(needle) { return true }
        }
        return false
    }

    /// The number in "… N messages dropped …".
    static func droppedCount(in text: String) -> Int {
        guard let range = text.range(of: " messages dropped") else { return 0 }
        let digits = text[..<range.lowerBound].reversed().prefix { $0.isNumber }
        return Int(String(digits.reversed())) ?? 0
    }

    /// The 12-digit sequence the load generator puts at the start of a payload.
    private static func sequenceNumber(in envelope: ByteBuffer) -> Int? {
        envelope.withUnsafeReadableBytes { bytes -> Int? in
            var reader = ProtoReader(bytes)
            while let (field, wireType) = try? reader.readTag() {
                guard field == 4, wireType == .lengthDelimited else {
                    try? reader.skip(wireType)
                    continue
                }
                guard let log = try? reader.readLengthDelimited(), log.count >= 14, bytes[log.lowerBound] == 0x0A else {
                    return nil
                }
                var value = 0
                let start = log.lowerBound + 2
                for index in start..<(start + 12) {
                    let digit = bytes[index]
                    guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
                    value = value * 10 + Int(digit - UInt8(ascii: "0"))
                }
                return value
            }
            return nil
        }
    }

    public static func monotonicSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// CPU seconds used by this process so far, and its peak resident set in bytes.
    public static func resourceUsage() -> (cpuSeconds: Double, peakRSS: Int) {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu =
            Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
            + Double(usage.ru_stime.tv_usec) / 1e6
        return (cpu, usage.ru_maxrss * 1024)
    }
}
