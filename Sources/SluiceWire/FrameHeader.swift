/// The fixed 16-byte header in front of every frame of the link protocol
/// (docs/wire.md). All integers are big-endian.
///
///     0      4      5      6        8                16
///     +------+------+------+--------+----------------+
///     |length|versn | type | flags  |    sequence    |
///     +------+------+------+--------+----------------+
///
/// `length` counts the payload only, not the header.
public struct FrameHeader: Hashable, Sendable {
    public static let size = 16
    public static let currentVersion: UInt8 = 1
    /// The default largest payload a receiver accepts: 4 MiB.
    public static let defaultMaxPayload = 4 * 1024 * 1024

    public var length: UInt32
    public var version: UInt8
    public var type: FrameType
    public var flags: FrameFlags
    public var sequence: UInt64

    public init(
        length: UInt32,
        type: FrameType,
        flags: FrameFlags = [],
        sequence: UInt64,
        version: UInt8 = FrameHeader.currentVersion
    ) {
        self.length = length
        self.version = version
        self.type = type
        self.flags = flags
        self.sequence = sequence
    }

    /// Reads a header from exactly `FrameHeader.size` bytes, checking it
    /// against the receiver's limits. The bytes are not consumed.
    public static func parse(
        _ bytes: UnsafeRawBufferPointer,
        maxPayload: Int = FrameHeader.defaultMaxPayload
    ) throws(WireError) -> FrameHeader {
        precondition(bytes.count >= size)
        let length = UInt32(bigEndianBytes: bytes, at: 0)
        let version = bytes[4]
        let rawType = bytes[5]
        let flags = UInt16(bytes[6]) << 8 | UInt16(bytes[7])
        let sequence = UInt64(bigEndianBytes: bytes, at: 8)
        guard version == currentVersion else {
            throw WireError(.unsupportedVersion, "frame version \(version), this build speaks \(currentVersion)")
        }
        guard let type = FrameType(rawValue: rawType) else {
            throw WireError(.unknownFrameType, "unknown frame type \(rawType)")
        }
        guard Int(length) <= maxPayload else {
            throw WireError(.frameTooLarge, "frame payload of \(length) bytes is over the limit of \(maxPayload)")
        }
        return FrameHeader(
            length: length, type: type, flags: FrameFlags(rawValue: flags), sequence: sequence, version: version)
    }

    /// The 16 header bytes.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(Self.size)
        withUnsafeBytes(of: length.bigEndian) { out.append(contentsOf: $0) }
        out.append(version)
        out.append(type.rawValue)
        withUnsafeBytes(of: flags.rawValue.bigEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: sequence.bigEndian) { out.append(contentsOf: $0) }
        return out
    }
}

/// What a frame carries. Unknown types close the connection.
public enum FrameType: UInt8, Sendable, CaseIterable {
    /// An `EnvelopeBatch` to ingest: emitter → controller → server.
    case envelopes = 1
    /// A `StreamRequest`: controller → server; start a live subscription
    /// whose id is the frame's sequence number.
    case subscribe = 2
    /// A `StreamRequest`: controller → server; end subscription `sequence`.
    case unsubscribe = 3
    /// A `StreamRequest`: controller → server; the recent envelopes of an app.
    case recentRequest = 4
    /// An `EnvelopeBatch`: server → controller, answering the request whose
    /// sequence number it repeats. `FrameFlags.final` marks the last part.
    case recentResponse = 5
    /// An `EnvelopeBatch`: server → controller, live envelopes for the
    /// subscription whose id is the sequence number.
    case stream = 6
    /// Empty payload, either direction: every ENVELOPES frame with a
    /// sequence number up to this one's has been taken in by the receiver
    /// (stored and handed on), so the sender may forget it.
    case ack = 7
    /// Sender → receiver, first on a connection: an 8-byte sender id that
    /// names the sender across reconnects (for removing resent duplicates).
    case hello = 8
    /// Server → controller, empty: this server is stopping gracefully. Its
    /// zone's controllers route its apps elsewhere, wait for their
    /// outstanding frames' ACKs, take its history (HANDOVER_REQUEST) to the
    /// servers that take its apps, and close the connection.
    case leaving = 9
    /// Controller → server, empty: every envelope the server holds, app by
    /// app, as RECENT_RESPONSE frames (IDENTIFIED, ORDINALS) answering this
    /// frame's sequence, the last one FINAL. Each frame holds one app's.
    /// With DRAIN, the drains' lines the server cannot deliver come too.
    case handoverRequest = 10
}

public struct FrameFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The last frame of a multi-frame answer.
    public static let final = FrameFlags(rawValue: 1)
    /// The payload ends with the batch's parts: which sender's frame each
    /// run of envelopes came from (see `BatchPart`).
    public static let identified = FrameFlags(rawValue: 2)
    /// With `identified`: each part also carries its first envelope's
    /// ordinal (24 bytes a part; a recent answer's parts).
    public static let ordinals = FrameFlags(rawValue: 4)
    /// On ENVELOPES: what a stopped buffer server held, handed by a
    /// controller to the server standing in for it. Stored for reads;
    /// not streamed to readers nor sent to drains, which had it already.
    public static let history = FrameFlags(rawValue: 8)
    /// On HANDOVER_REQUEST: the controller hands on drain lines. Else a
    /// leaving server's drain lines that its drains' endpoints, down,
    /// did not take: on a HANDOVER_REQUEST's RECENT_RESPONSE frames and,
    /// with `history`, on the ENVELOPES frames that hand them on. Each
    /// part's sender is the drain binding's key (`EnvelopeTap.handoverKey`)
    /// and its envelopes go only to that drain at the server that takes the
    /// app: not stored, streamed, or sent to the app's other drains.
    public static let drain = FrameFlags(rawValue: 16)
}

extension FixedWidthInteger {
    @inlinable
    init(bigEndianBytes bytes: UnsafeRawBufferPointer, at offset: Int) {
        var value: Self = 0
        for i in 0..<(Self.bitWidth / 8) {
            value = value << 8 | Self(bytes[offset + i])
        }
        self = value
    }
}
