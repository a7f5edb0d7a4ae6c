import SluiceDrain
import SluiceProto
import SluiceWire
import SwiftProtobuf

/// The envelope field reader: `EnvelopeFields.scan` (routing key,
/// timestamp, whether it is a log), the batch scanner, and the drain's
/// line writer, which reads a log's fields from the bytes. Where both it
/// and SwiftProtobuf take the same bytes, they must read the same fields.
/// (The reader is the stricter: a `timestamp` or `source_id` with the wrong
/// wire type, which SwiftProtobuf keeps as an unknown field, makes it
/// refuse the envelope, since its routing key would be in doubt.)
enum EnvelopeTarget: FuzzTarget {
    static let name = "envelope"
    nonisolated(unsafe) static var writer = DrainLineWriter()
    nonisolated(unsafe) static var line: [UInt8] = []

    static func run(_ input: UnsafeRawBufferPointer) {
        _ = try? EnvelopeBatchScanner.forEach(in: input) { _, _ in }
        let fields = try? EnvelopeFields.scan(input)
        line.removeAll(keepingCapacity: true)
        let wroteLine = try? writer.append(envelope: input, to: &line)
        guard let fields, let decoded = try? Loggregator_V2_Envelope(serializedBytes: Array(input)) else { return }
        guard input[fields.sourceID].elementsEqual(decoded.sourceID.utf8) else {
            fatalError("source_id read as \(Array(input[fields.sourceID])), SwiftProtobuf has \(decoded.sourceID)")
        }
        guard fields.timestamp == decoded.timestamp else {
            fatalError("timestamp read as \(fields.timestamp), SwiftProtobuf has \(decoded.timestamp)")
        }
        let isLog: Bool
        if case .log = decoded.message { isLog = true } else { isLog = false }
        guard fields.isLog == isLog else { fatalError("isLog read as \(fields.isLog), SwiftProtobuf says \(isLog)") }
        if let wroteLine, wroteLine != isLog {
            fatalError("the drain line writer says log \(wroteLine), SwiftProtobuf says \(isLog)")
        }
    }
}
