import Foundation
import NIOCore
import SluiceShipping
import SluiceTransport
import SluiceWire
import Testing

/// The agent's spool: its checksum, its records, and what a restart finds
/// in a directory an earlier run left (torn writes included).
@Suite struct SpoolTests {
    @Test func crc32cMatchesTheStandardCheckValues() {
        // RFC 3720 (iSCSI) B.4 and the usual "123456789" check value.
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        // Eight bytes at a time agrees with one at a time, at every length
        // and split.
        let bytes = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for split in [0, 1, 7, 8, 9, 63, 100] {
            let whole = CRC32C.checksum(bytes)
            let first = bytes[..<split].withUnsafeBytes { CRC32C.checksum($0) }
            let continued = bytes[split...].withUnsafeBytes { CRC32C.checksum($0, continuing: first) }
            #expect(continued == whole, "split at \(split)")
        }
    }

    static func frame(_ text: String, sequence: UInt64 = 0) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeFrameHeader(type: .envelopes, sequence: sequence, length: text.utf8.count)
        buffer.writeString(text)
        return buffer
    }

    static func record(_ text: String, sequence: UInt64, envelopes: Int = 1) -> [UInt8] {
        let bytes = Array(frame(text, sequence: sequence).readableBytesView)
        return bytes.withUnsafeBytes { SpoolSegment.recordHeader(frame: $0, envelopes: envelopes) } + bytes
    }

    @Test func aSegmentsRecordsAreReadUpToATornOrCorruptOne() {
        let one = Self.record("first", sequence: 7, envelopes: 3)
        let two = Self.record("second", sequence: 8, envelopes: 5)
        let whole = one + two
        let scan = whole.withUnsafeBytes { SpoolSegment.scan($0) }
        #expect(scan.damage == nil)
        #expect(scan.records.map(\.sequence) == [7, 8])
        #expect(scan.records.map(\.envelopes) == [3, 5])
        #expect(scan.records[1].offset == one.count)

        // Cut short anywhere in the second record: the first is kept.
        for cut in [1, 10, SpoolSegment.recordHeaderSize, two.count - 1] {
            let torn = Array(whole.prefix(one.count + cut))
            let scan = torn.withUnsafeBytes { SpoolSegment.scan($0) }
            #expect(scan.records.map(\.sequence) == [7], "cut at \(cut)")
            #expect(scan.damage?.kind == .torn, "cut at \(cut)")
            #expect(scan.damage?.offset == one.count)
            #expect(scan.damage?.skippedBytes == cut)
        }
        // A byte of the first record's frame changed: nothing after it is trusted.
        var corrupt = whole
        corrupt[SpoolSegment.recordHeaderSize + FrameHeader.size + 1] ^= 0x40
        let bad = corrupt.withUnsafeBytes { SpoolSegment.scan($0) }
        #expect(bad.records.isEmpty)
        #expect(bad.damage == SpoolSegment.Damage(kind: .badChecksum, offset: 0, skippedBytes: whole.count))
        // Zeros (a file extended and never written) are not a record.
        let zeros = (one + [UInt8](repeating: 0, count: 40)).withUnsafeBytes { SpoolSegment.scan($0) }
        #expect(zeros.records.count == 1)
        #expect(zeros.damage?.kind == .notARecord)
    }

    @Test func theStateFileKeepsTheSenderTheAcknowledgedSequenceAndTheReservation() {
        let bytes = SpoolSegment.state(sender: 0xDEAD_BEEF, acknowledged: 42, reserved: 1066)
        #expect(bytes.count == SpoolSegment.stateSize)
        let state = SpoolSegment.parseState(bytes)
        #expect(state?.sender == 0xDEAD_BEEF)
        #expect(state?.acknowledged == 42)
        #expect(state?.reserved == 1066)
        var damaged = bytes
        damaged[17] ^= 1
        #expect(SpoolSegment.parseState(damaged) == nil)
        #expect(SpoolSegment.parseState(Array(bytes.prefix(20))) == nil)
        #expect(SpoolSegment.fileName(firstSequence: 12) == "segment-00000000000000000012.spool")
        #expect(SpoolSegment.firstSequence(ofFileName: SpoolSegment.fileName(firstSequence: 12)) == 12)
        #expect(SpoolSegment.firstSequence(ofFileName: "state") == nil)
    }

    static func directory() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
        return path
    }

    static func texts(sending spool: Spool) -> [(UInt64, String, Int)] {
        var out: [(UInt64, String, Int)] = []
        while let next = spool.next() {
            var frame = next.frame
            #expect(frame.getInteger(at: frame.readerIndex + 8, as: UInt64.self) == next.sequence)
            frame.moveReaderIndex(forwardBy: FrameHeader.size)
            out.append((next.sequence, frame.readString(length: frame.readableBytes)!, next.envelopes))
        }
        return out
    }

    @Test func whatWasNotAcknowledgedIsSentAgainAfterARestartUnderTheSameSenderAndNumbers() throws {
        let path = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // Small segments: 3 records each.
        var settings = Spool.Settings(directory: path, maxBytes: 1 << 20, segmentBytes: 3 * (16 + 16 + 8))
        settings.memoryBytes = 0
        let first = try Spool(settings: settings)
        let sender = first.senderID
        for index in 1...10 {
            var frame = Self.frame(String(format: "line%04d", index))
            #expect(first.write(&frame, envelopes: index) == UInt64(index))
        }
        // Read back from disk (nothing is kept in memory with memoryBytes 0).
        let sent = Self.texts(sending: first)
        #expect(sent.map(\.0) == Array(1...10))
        #expect(sent.map(\.1) == (1...10).map { String(format: "line%04d", $0) })
        #expect(sent.map(\.2) == Array(1...10))
        first.acknowledge(upTo: 7)
        first.tidy()
        // Segments of 1–3 and 4–6 are gone; 7–9 and 10 stay.
        let segments = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".spool") }.sorted()
        #expect(segments == [SpoolSegment.fileName(firstSequence: 7), SpoolSegment.fileName(firstSequence: 10)])
        // Dies here (no close): a second agent would find the spool locked.
        #expect(throws: Spool.Unusable.self) { try Spool(settings: settings) }
        first.close()

        let second = try Spool(settings: settings)
        #expect(second.senderID == sender)
        #expect(second.acknowledgedAtOpen == 7)
        #expect(second.recovery == Spool.Recovery(frames: 3, envelopes: 8 + 9 + 10, damaged: 0, skippedBytes: 0))
        var frame = Self.frame("line0011")
        // New numbers start past those the first run reserved.
        #expect(second.write(&frame, envelopes: 11) == 1025)
        #expect(Self.texts(sending: second).map(\.1) == ["line0008", "line0009", "line0010", "line0011"])
        second.acknowledge(upTo: 1025)
        second.close()
        let third = try Spool(settings: settings)
        #expect(third.recovery.frames == 0)
        #expect(third.next() == nil)
        third.close()
    }

    @Test func aTornLastRecordIsSkippedAndCountedAndTheRestIsSent() throws {
        let path = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let settings = Spool.Settings(directory: path, maxBytes: 1 << 20)
        let first = try Spool(settings: settings)
        for index in 1...3 {
            var frame = Self.frame("line\(index)")
            first.write(&frame, envelopes: 1)
        }
        first.close()
        // A crash in the middle of the fourth record's write.
        let segment = path + "/" + SpoolSegment.fileName(firstSequence: 1)
        let handle = try #require(FileHandle(forWritingAtPath: segment))
        handle.seekToEndOfFile()
        handle.write(Data(Self.record("line4", sequence: 4).prefix(20)))
        try handle.close()

        let second = try Spool(settings: settings)
        #expect(second.recovery == Spool.Recovery(frames: 3, envelopes: 3, damaged: 1, skippedBytes: 20))
        var frame = Self.frame("line5")
        // Numbering goes on past what the first run reserved.
        #expect(second.write(&frame, envelopes: 1) == 1025)
        #expect(Self.texts(sending: second).map(\.1) == ["line1", "line2", "line3", "line5"])
        second.close()
    }

    /// Frames can be sent and never reach the disk (held in memory while
    /// it failed, or not yet synced at a power cut): a restart must not
    /// give their numbers to new frames, which servers would take for
    /// those they had.
    @Test func aRestartNeverGivesANumberTwiceEvenOneWhoseFrameIsGone() throws {
        let path = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let settings = Spool.Settings(directory: path, maxBytes: 1 << 20)
        var last: UInt64 = 0
        for run in 0..<3 {
            let spool = try Spool(settings: settings)
            for _ in 0..<(run == 1 ? 1500 : 5) {
                var frame = Self.frame("x")
                let sequence = spool.write(&frame, envelopes: 1)
                #expect(sequence > last)
                last = sequence
            }
            _ = Self.texts(sending: spool)
            spool.close()
            // Every segment is lost (nothing acknowledged was saved).
            for name in try FileManager.default.contentsOfDirectory(atPath: path) where name.hasSuffix(".spool") {
                try FileManager.default.removeItem(atPath: path + "/" + name)
            }
        }
    }

    @Test func aFullSpoolHasNoRoomUntilAcknowledgementsFreeASegment() throws {
        let path = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let record = 16 + FrameHeader.size + 100
        let settings = Spool.Settings(directory: path, maxBytes: 4 * record, segmentBytes: 2 * record)
        let spool = try Spool(settings: settings)
        let text = String(repeating: "x", count: 100)
        var written = 0
        while spool.hasRoom() {
            var frame = Self.frame(text)
            spool.write(&frame, envelopes: 1)
            written += 1
        }
        #expect(written == 4)
        _ = Self.texts(sending: spool)
        spool.acknowledge(upTo: 1)
        spool.tidy()
        #expect(!spool.hasRoom(), "half a segment acknowledged frees nothing")
        spool.acknowledge(upTo: 2)
        spool.tidy()
        #expect(spool.hasRoom())
        spool.close()
    }
}
