#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Cuts a byte stream (a process's output, standard input) into log lines:
/// at LF, with a CR before it dropped. A line longer than `maxLineBytes` is
/// cut into pieces of that size, each tagged with `LogTag.part`, and pieces
/// go out as soon as they are full, so a line with no end never waits.
public struct LineSplitter: Sendable {
    public static let defaultMaxLineBytes = 64 * 1024

    public let maxLineBytes: Int
    /// The start of a line whose end has not arrived yet.
    private var pending: [UInt8] = []
    /// Pieces of the current line already given out.
    private var pieces = 0

    public init(maxLineBytes: Int = LineSplitter.defaultMaxLineBytes) {
        precondition(maxLineBytes > 0)
        self.maxLineBytes = maxLineBytes
    }

    /// Gives `emit` every whole line (or full piece) of `bytes`, with the
    /// piece tag when the line is split; keeps the unfinished rest.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (UnsafeRawBufferPointer, LogTag?) -> Void) {
        var start = 0
        while let newline = Self.newline(in: bytes, from: start) {
            if pending.isEmpty {
                var end = newline
                if end > start && bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                emitLine(UnsafeRawBufferPointer(rebasing: bytes[start..<end]), emit)
            } else {
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<newline]))
                if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
                // Swapped out rather than copied, and its storage kept.
                var line: [UInt8] = []
                swap(&line, &pending)
                line.withUnsafeBytes { emitLine($0, emit) }
                line.removeAll(keepingCapacity: true)
                pending = line
            }
            start = newline + 1
        }
        // The unfinished rest: full pieces go out now, the remainder waits.
        // A CR at the very end may be half of a CRLF: it waits too.
        var rest = UnsafeRawBufferPointer(rebasing: bytes[start...])
        let heldCR = rest.last == UInt8(ascii: "\r")
        if heldCR { rest = UnsafeRawBufferPointer(rebasing: rest.dropLast()) }
        while pending.count + rest.count >= maxLineBytes {
            let take = maxLineBytes - pending.count
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[..<take]))
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
            pieces += 1
            var piece: [UInt8] = []
            swap(&piece, &pending)
            piece.withUnsafeBytes { emit($0, .part(pieces, last: false)) }
            piece.removeAll(keepingCapacity: true)
            pending = piece
        }
        pending.append(contentsOf: rest)
        if heldCR { pending.append(UInt8(ascii: "\r")) }
    }

    /// The index of the next LF at or after `start` (memchr: this is the
    /// hot loop of `sluice run`).
    private static func newline(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard start < bytes.count, let base = bytes.baseAddress,
            let found = memchr(base + start, 0x0A, bytes.count - start)
        else { return nil }
        return base.distance(to: UnsafeRawPointer(found))
    }

    /// At end of input: the last line, if it had no LF.
    public mutating func finish(_ emit: (UnsafeRawBufferPointer, LogTag?) -> Void) {
        guard !pending.isEmpty || pieces > 0 else { return }
        let line = pending
        pending.removeAll()
        line.withUnsafeBytes { emitLine($0, emit) }
    }

    /// One whole line: as it is, or in pieces when it is too long or when
    /// its first pieces went out already.
    private mutating func emitLine(_ line: UnsafeRawBufferPointer, _ emit: (UnsafeRawBufferPointer, LogTag?) -> Void) {
        Self.split(line, maxLineBytes: maxLineBytes, piecesBefore: pieces, emit)
        pieces = 0
    }

    /// One message, whatever it holds, in pieces of at most `maxLineBytes`
    /// (tagged) if it is longer.
    public static func split(
        _ line: UnsafeRawBufferPointer, maxLineBytes: Int = defaultMaxLineBytes, piecesBefore: Int = 0,
        _ emit: (UnsafeRawBufferPointer, LogTag?) -> Void
    ) {
        if piecesBefore == 0 && line.count <= maxLineBytes {
            emit(line, nil)
            return
        }
        var start = 0
        var pieces = piecesBefore
        repeat {
            let end = min(line.count, start + maxLineBytes)
            pieces += 1
            emit(UnsafeRawBufferPointer(rebasing: line[start..<end]), .part(pieces, last: end == line.count))
            start = end
        } while start < line.count
    }
}
