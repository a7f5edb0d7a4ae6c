import NIOCore
import SluiceWire

/// A batch of drain lines, octet-counted (RFC 6587) back to back: the body
/// of a TCP write or of a logplex-1 POST as it is. `lines` locates each
/// line (without its count) for transports that send them one by one.
struct DrainBatch {
    var framed: ByteBuffer
    var lines: [Range<Int>]

    var count: Int { lines.count }

    /// The lines of stored envelopes; envelopes that are not logs, or that
    /// do not parse, give none.
    static func format(_ envelopes: [ByteBuffer], writer: inout DrainLineWriter, scratch: inout [UInt8]) -> DrainBatch {
        var framed = ByteBuffer()
        framed.reserveCapacity(envelopes.reduce(0) { $0 + $1.readableBytes } + envelopes.count * 128)
        var lines: [Range<Int>] = []
        lines.reserveCapacity(envelopes.count)
        for envelope in envelopes {
            scratch.removeAll(keepingCapacity: true)
            let written = envelope.withUnsafeReadableBytes { bytes in
                (try? writer.append(envelope: bytes, to: &scratch)) ?? false
            }
            guard written else { continue }
            framed.writeDecimal(scratch.count)
            framed.writeInteger(UInt8(ascii: " "))
            let start = framed.writerIndex
            framed.writeBytes(scratch)
            lines.append(start..<framed.writerIndex)
        }
        return DrainBatch(framed: framed, lines: lines)
    }
}

extension ByteBuffer {
    /// A non-negative number in decimal ASCII, without a String.
    mutating func writeDecimal(_ value: Int) {
        var divisor = 1
        while divisor <= value / 10 { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            writeInteger(UInt8(ascii: "0") + UInt8(rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }
}
