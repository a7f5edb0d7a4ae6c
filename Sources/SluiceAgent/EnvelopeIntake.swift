import CoreMetrics
import Logging
import NIOCore
import SluiceShipping
import SluiceTransport
import SluiceWire

/// One connection's way into the agent's shipper for whole
/// `EnvelopeBatch`es (the framed protocol's frames, gRPC's messages): the
/// batch is checked whole, each envelope's app found, and the bytes copied
/// in under one lock. Envelopes without a `source_id` are dropped, counted
/// and logged once per connection.
final class EnvelopeIntake {
    let shipper: LogShipper
    private let metrics: AgentMetrics
    private let logger: Logger
    private let input: AgentMetrics.Input
    private var warnedUnroutable = false
    /// The last app id seen and its bytes: batches are mostly of one app,
    /// so its String is made once, not per envelope.
    private var lastApp = ""
    private var lastAppBytes: [UInt8] = []
    /// The envelopes of the batch being taken (kept to reuse its storage).
    private var envelopes: [(range: Range<Int>, app: String)] = []

    init(shipper: LogShipper, metrics: AgentMetrics, logger: Logger, input: AgentMetrics.Input) {
        self.shipper = shipper
        self.metrics = metrics
        self.logger = logger
        self.input = input
    }

    /// Takes every envelope of `batch`, or (if it is malformed) none.
    func take(_ batch: ByteBuffer, remote: SocketAddress?) throws(WireError) {
        var received = 0
        var unroutable = 0
        // The whole batch is checked, and each envelope found, before the
        // shipper's lock is taken: under it is only copying.
        do {
            try batch.withUnsafeReadableBytesTyped { bytes throws(WireError) in
                try EnvelopeBatchScanner.forEach(in: bytes) { range, fields in
                    received += 1
                    guard !fields.sourceID.isEmpty else {
                        unroutable += 1
                        return
                    }
                    let key = UnsafeRawBufferPointer(rebasing: bytes[fields.sourceID.shifted(by: range.lowerBound)])
                    envelopes.append((range, appName(key)))
                }
            }
        } catch {
            envelopes.removeAll(keepingCapacity: true)
            throw error
        }
        // Only when held to the instance log rate limit is each envelope's
        // instance and log size read.
        let limited = shipper.limitsInstances
        batch.withUnsafeReadableBytes { bytes in
            shipper.appendLines { append in
                for (range, app) in envelopes {
                    let envelope = UnsafeRawBufferPointer(rebasing: bytes[range])
                    let origin =
                        limited
                        ? LogShipper.LineOrigin(app: app, envelope: envelope)
                        : LogShipper.LineOrigin(app: app, instance: "", logBytes: nil)
                    append(origin) { $0.writeBatchEntry(envelope) }
                }
            }
        }
        envelopes.removeAll(keepingCapacity: true)
        metrics.received(input, count: received)
        if unroutable > 0 {
            metrics.unroutable.increment(by: unroutable)
            if !warnedUnroutable {
                warnedUnroutable = true
                logger.warning(
                    "dropping envelopes without a source_id", metadata: [LogKeys.remote: "\(remote.map { "\($0)" } ?? "?")"])
            }
        }
    }

    private func appName(_ bytes: UnsafeRawBufferPointer) -> String {
        if !bytes.elementsEqual(lastAppBytes) {
            lastAppBytes = Array(bytes)
            lastApp = String(decoding: bytes, as: UTF8.self)
        }
        return lastApp
    }
}

extension Range where Bound == Int {
    fileprivate func shifted(by offset: Int) -> Range<Int> {
        (lowerBound + offset)..<(upperBound + offset)
    }
}
