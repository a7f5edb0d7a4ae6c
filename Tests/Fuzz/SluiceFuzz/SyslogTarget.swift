import NIOCore
import NIOEmbedded
import SluiceProto
import SluiceShipping
import SluiceSyslog
import SluiceTransport
import SluiceWire
import SwiftProtobuf

/// The agent's syslog input: a TCP stream cut by `SyslogFrameDecoder`
/// (RFC 6587 octet counting or LF), each message parsed as RFC 5424 or
/// RFC 3164 and turned into a Log envelope as the agent's intake does. The
/// envelope made must be one that every protobuf reader takes.
enum SyslogTarget: FuzzTarget {
    static let name = "syslog"

    static func run(_ input: UnsafeRawBufferPointer) {
        // The input after its chunk-size byte is also one UDP datagram.
        if !input.isEmpty { take(UnsafeRawBufferPointer(rebasing: input.dropFirst())) }
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(SyslogFrameDecoder(maxMessageBytes: 4096)))
        let whole = FuzzTargets.stream(input, into: channel) { drain(channel) }
        _ = try? channel.finish()
        if whole { drain(channel) }
    }

    static func drain(_ channel: EmbeddedChannel) {
        while let message = try? channel.readInbound(as: ByteBuffer.self) {
            message.withUnsafeReadableBytes { take($0) }
        }
    }

    /// What `SyslogIntake.take` does with a message, less the shipping.
    static func take(_ bytes: UnsafeRawBufferPointer) {
        guard let message = SyslogMessage.parse(bytes) else { return }
        guard message.message.lowerBound >= 0, message.message.upperBound <= bytes.count else {
            fatalError("the message range \(message.message) is outside \(bytes.count) bytes")
        }
        var fields = LogEnvelopeFields(
            sourceID: message.appName ?? "app", instanceID: message.procID ?? "", sourceType: "SYSLOG")
        if let (sourceType, instance) = message.sourceTypeAndInstance {
            fields.sourceType = sourceType
            fields.instanceID = instance
        }
        fields.isError = message.isError
        var tags = [LogTag("facility", message.facilityName)]
        if let hostname = message.hostname { tags.append(LogTag("hostname", hostname)) }
        if let msgID = message.msgID { tags.append(LogTag("msgid", msgID)) }
        for parameter in message.structuredData {
            tags.append(LogTag("\(parameter.id).\(parameter.name)", parameter.value))
        }
        var batch = ByteBuffer()
        LineSplitter.split(UnsafeRawBufferPointer(rebasing: bytes[message.message]), maxLineBytes: 1024) { piece, part in
            batch.writeLogEnvelopeEntry(
                fields, timestamp: message.timestamp ?? 0, payload: piece, extraTags: part.map { tags + [$0] } ?? tags)
        }
        do {
            let decoded = try Loggregator_V2_EnvelopeBatch(serializedBytes: Array(batch.readableBytesView))
            let count = try batch.withUnsafeReadableBytesTyped { bytes throws(WireError) in
                try EnvelopeBatchScanner.validate(bytes)
            }
            guard count == decoded.batch.count, decoded.batch.allSatisfy({ $0.sourceID == fields.sourceID }) else {
                fatalError("the envelopes made from a syslog message read back wrong")
            }
        } catch {
            fatalError("an envelope made from a syslog message does not decode: \(error)")
        }
    }
}
