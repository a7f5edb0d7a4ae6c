import NIOCore
import SluiceTransport

/// Envelopes of one ingested batch gathered for taps: each tap gets its
/// own copy, in one buffer per tap per batch, so that what a slow drain
/// holds keeps only its own app's envelopes alive.
struct TapWork {
    private var work: [(tap: any EnvelopeTap, bytes: ByteBuffer, lengths: [Int])] = []
    /// The entries of `work` for the app being scanned.
    private var current: [Int] = []
    private var currentTaps: [any EnvelopeTap] = []

    mutating func append(_ envelope: UnsafeRawBufferPointer, to taps: [any EnvelopeTap]) {
        if currentTaps.count != taps.count || !zip(currentTaps, taps).allSatisfy({ $0 === $1 }) {
            currentTaps = taps
            current = taps.map { tap in
                if let index = work.firstIndex(where: { $0.tap === tap }) { return index }
                work.append((tap, ByteBuffer(), []))
                return work.count - 1
            }
        }
        for index in current {
            work[index].bytes.writeBytes(envelope)
            work[index].lengths.append(envelope.count)
        }
    }

    /// One `enqueue` per tap, with slices of its buffer.
    func enqueue() {
        for entry in work {
            var offset = 0
            let slices = entry.lengths.map { length in
                defer { offset += length }
                return entry.bytes.getSlice(at: offset, length: length)!
            }
            entry.tap.enqueue(slices)
        }
    }
}
