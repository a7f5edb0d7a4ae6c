import CoreMetrics
import DequeModule
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SluiceTransport
import SluiceWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private func closeFile(_ fd: Int32) {
    #if canImport(Glibc)
    _ = Glibc.close(fd)
    #elseif canImport(Darwin)
    _ = Darwin.close(fd)
    #endif
}

/// The agent's spool (`sluice agent --spool DIR`): every frame the agent
/// will send is written here, numbered, before it goes to a controller,
/// and stays until a controller acknowledges it, so that an agent killed
/// with what it acknowledged to its sources sends it after its restart,
/// under the same sender id and the same numbers (which servers and readers
/// already use to leave out what they had).
///
/// The format is `SpoolSegment`'s. Records are written with one `writev`
/// each; the segment being written is `fsync`ed at most once a second (and
/// when it is closed and at a graceful stop): a process that dies keeps
/// everything written, a host that loses power up to the last second,
/// whose torn record the checksums find. Whole segments are deleted once
/// every record in them is acknowledged; the state file keeps the newest
/// acknowledged number, so that little is sent twice after a restart.
///
/// When the disk fails (full, or an I/O error), the record is not written,
/// the error is logged and counted, and frames are kept in memory instead
/// (as without a spool, up to `memoryBytes`), the disk being tried again
/// every `retryInterval`.
///
/// Thread-safe: one lock. The shipper's pump writes, its sender reads, the
/// ingress client's acknowledgements come from its event loop.
public final class Spool: @unchecked Sendable {
    public struct Settings: Sendable {
        public var directory: String
        /// Bytes of segments on disk past which nothing more is written
        /// (the shipper then holds envelopes in memory, and drops the oldest
        /// of those when that is full, telling each app).
        public var maxBytes: Int
        /// A segment is closed and the next begun past this.
        public var segmentBytes: Int
        /// Frames held in memory while the disk fails, and frames written
        /// and kept in memory too so that they need not be read back.
        public var memoryBytes: Int = 16 * 1024 * 1024
        public var syncInterval: Int64 = 1_000_000_000
        public var retryInterval: Int64 = 5_000_000_000

        public init(directory: String, maxBytes: Int, segmentBytes: Int? = nil) {
            self.directory = directory
            self.maxBytes = maxBytes
            self.segmentBytes = segmentBytes ?? min(64 << 20, max(1 << 20, maxBytes / 8))
        }
    }

    /// What the spool held when it was opened.
    public struct Recovery: Sendable, Equatable {
        public var frames = 0
        public var envelopes = 0
        /// Damaged records found (torn by a crash, or corrupt), each ending
        /// the reading of its segment.
        public var damaged = 0
        public var skippedBytes = 0

        public init(frames: Int = 0, envelopes: Int = 0, damaged: Int = 0, skippedBytes: Int = 0) {
            self.frames = frames
            self.envelopes = envelopes
            self.damaged = damaged
            self.skippedBytes = skippedBytes
        }
    }

    public struct Unusable: Error, CustomStringConvertible {
        public var description: String
    }

    public struct Next: Sendable {
        public var sequence: UInt64
        public var frame: ByteBuffer
        public var envelopes: Int
    }

    private struct Segment {
        var firstSequence: UInt64
        var lastSequence: UInt64?
        var path: String
        var fd: Int32
        var bytes: Int
    }

    private enum Location {
        case disk(segment: UInt64, offset: Int)
        case memory
    }

    /// A frame not yet handed to the ingress client.
    private struct Entry {
        var sequence: UInt64
        var envelopes: Int
        var frameLength: Int
        var location: Location
        var buffer: ByteBuffer?
    }

    private struct State {
        var segments: Deque<Segment> = []
        /// The segment written now (the last of `segments`), if open.
        var writing: Bool = false
        var unsent: Deque<Entry> = []
        /// Sent and not yet acknowledged: (sequence, envelopes, whether
        /// its frame is on disk).
        var sent: Deque<(sequence: UInt64, envelopes: Int, onDisk: Bool)> = []
        var diskBytes = 0
        var memoryBytes = 0
        var acknowledged: UInt64 = 0
        var checkpointed: UInt64 = 0
        var nextSequence: UInt64 = 1
        /// Numbers up to this are reserved in the state file (synced).
        var reserved: UInt64 = 0
        var failedAt: Int64?
        var dirtySince: Int64?
        var closed = false
    }

    public let settings: Settings
    public let senderID: UInt64
    /// The newest sequence acknowledged when the spool was opened.
    public let acknowledgedAtOpen: UInt64
    public let recovery: Recovery
    private let stateFD: Int32
    private let directoryFD: Int32
    /// Numbers reserved at a time in the state file: well under what a
    /// server remembers of one sender (`FrameWindows`), so that the gap a
    /// restart leaves is one a server takes as new.
    static let reservation: UInt64 = 1024
    private let state: NIOLockedValueBox<State>
    private let logger: Logger
    private let allocator = ByteBufferAllocator()
    private let bytesGauge: Gauge
    private let writeErrors: Counter
    private let readErrors: Counter
    private let damagedRecords: Counter
    private let unreadable: Counter

    /// Opens (making it if need be) the spool at `settings.directory`,
    /// reads what an earlier run left, and locks it: a second agent on the
    /// same directory is refused.
    public init(settings: Settings, logger: Logger = .quiet, metrics: any MetricsFactory = MetricsSystem.factory) throws {
        precondition(settings.maxBytes > 0 && settings.segmentBytes > 0)
        self.settings = settings
        self.logger = logger
        bytesGauge = Gauge(label: MetricNames.agentSpoolBytes, factory: metrics)
        Gauge(label: MetricNames.agentSpoolMaxBytes, factory: metrics).record(settings.maxBytes)
        writeErrors = Counter(label: MetricNames.agentSpoolErrors, dimensions: [("op", "write")], factory: metrics)
        readErrors = Counter(label: MetricNames.agentSpoolErrors, dimensions: [("op", "read")], factory: metrics)
        damagedRecords = Counter(label: MetricNames.agentSpoolDamagedRecords, factory: metrics)
        unreadable = Counter(
            label: MetricNames.emitterDropped("sluice_agent"), dimensions: [("reason", "spool_unreadable")], factory: metrics)
        let directory = settings.directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw Unusable(description: "cannot make the spool directory \(directory): \(error.localizedDescription)")
        }
        let statePath = directory + "/state"
        let fd = open(statePath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Unusable(description: "cannot open \(statePath): \(Self.errnoText())") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            closeFile(fd)
            throw Unusable(description: "the spool \(directory) is in use by another agent")
        }
        stateFD = fd
        directoryFD = open(directory, O_RDONLY | O_CLOEXEC)
        var stateBytes = [UInt8](repeating: 0, count: SpoolSegment.stateSize)
        let read = pread(fd, &stateBytes, stateBytes.count, 0)
        var state = State()
        if read == SpoolSegment.stateSize, let saved = SpoolSegment.parseState(stateBytes) {
            senderID = saved.sender
            state.acknowledged = saved.acknowledged
            state.reserved = saved.reserved
        } else {
            if read > 0 {
                logger.warning("the spool's state file is damaged: starting it anew", metadata: [LogKeys.path: "\(statePath)"])
            }
            senderID = UInt64.random(in: 1...UInt64.max)
        }
        acknowledgedAtOpen = state.acknowledged
        state.checkpointed = state.acknowledged
        state.nextSequence = max(state.acknowledged, state.reserved) + 1

        let readErrorCount = readErrors
        // What an earlier run left, oldest first.
        var recovery = Recovery()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let segments = names.compactMap { name in SpoolSegment.firstSequence(ofFileName: name).map { ($0, name) } }
            .sorted { $0.0 < $1.0 }
        for (first, name) in segments {
            let path = directory + "/" + name
            // A segment that cannot be read is put aside (never read again,
            // its name free); what it held is lost, and counted.
            func putAside(_ why: String) {
                readErrorCount.increment()
                rename(path, path + ".unreadable")
                logger.error(
                    "\(why): it is put aside as .unreadable and what it held is not sent", metadata: [LogKeys.path: "\(path)"])
            }
            guard let data = FileManager.default.contents(atPath: path) else {
                putAside("cannot read a spool segment")
                continue
            }
            let scan = data.withUnsafeBytes { SpoolSegment.scan($0) }
            if let damage = scan.damage {
                recovery.damaged += 1
                recovery.skippedBytes += damage.skippedBytes
                damagedRecords.increment()
                logger.warning(
                    "the spool holds a damaged record (a write cut short by a crash, or a failing disk): the rest of its segment is skipped",
                    metadata: [LogKeys.path: "\(path)", "sluice.damage": "\(damage)"])
            }
            let kept = scan.records.filter { $0.sequence > state.acknowledged }
            guard !kept.isEmpty else {
                unlink(path)
                continue
            }
            // The damage is told once: the segment ends where it began.
            if let damage = scan.damage { _ = truncate(path, off_t(damage.offset)) }
            let segmentFD = open(path, O_RDONLY | O_CLOEXEC)
            guard segmentFD >= 0 else {
                putAside("cannot open a spool segment")
                continue
            }
            for record in kept {
                state.unsent.append(
                    Entry(
                        sequence: record.sequence, envelopes: record.envelopes, frameLength: record.frameLength,
                        location: .disk(segment: first, offset: record.frameOffset), buffer: nil))
                recovery.frames += 1
                recovery.envelopes += record.envelopes
                state.nextSequence = max(state.nextSequence, record.sequence + 1)
            }
            state.segments.append(
                Segment(
                    firstSequence: first, lastSequence: kept.last!.sequence, path: path, fd: segmentFD,
                    bytes: scan.damage?.offset ?? data.count))
            state.diskBytes += scan.damage?.offset ?? data.count
        }
        // Sequences only grow: a segment's name may be past every record
        // (one begun and not written).
        if let last = segments.last?.0 { state.nextSequence = max(state.nextSequence, last) }
        // The first numbers of this run are reserved before any is used.
        state.reserved = state.nextSequence - 1 + Self.reservation
        self.recovery = recovery
        self.state = NIOLockedValueBox(state)
        bytesGauge.record(state.diskBytes)
        writeState(acknowledged: state.acknowledged, reserved: state.reserved, sync: true)
        if recovery.frames > 0 || recovery.damaged > 0 {
            logger.info(
                "the spool holds envelopes not acknowledged before the agent stopped: sending them again",
                metadata: [
                    LogKeys.count: "\(recovery.envelopes)", "sluice.frames": "\(recovery.frames)",
                    "sluice.damaged_records": "\(recovery.damaged)", LogKeys.path: "\(directory)",
                ])
        }
    }

    // MARK: writing (the pump)

    /// Whether another frame may be written now: under `maxBytes` on disk,
    /// or, while the disk fails, under `memoryBytes` held (the frame may
    /// take it past by its own size).
    public func hasRoom() -> Bool {
        state.withLockedValue { state in
            if state.closed { return false }
            if failing(state, now: WallClock.nowNanos()) { return state.memoryBytes < settings.memoryBytes }
            return state.diskBytes < settings.maxBytes
        }
    }

    private func failing(_ state: State, now: Int64) -> Bool {
        guard let failedAt = state.failedAt else { return false }
        return now - failedAt < settings.retryInterval
    }

    /// Numbers `frame` (sets its sequence), writes it, and queues it to be
    /// sent. Returns its sequence.
    @discardableResult
    public func write(_ frame: inout ByteBuffer, envelopes: Int) -> UInt64 {
        state.withLockedValue { state in
            let sequence = state.nextSequence
            state.nextSequence += 1
            if sequence > state.reserved {
                state.reserved = sequence - 1 + Self.reservation
                writeState(acknowledged: state.checkpointed, reserved: state.reserved, sync: true)
            }
            frame.setFrameSequence(sequence)
            let now = WallClock.nowNanos()
            var entry = Entry(
                sequence: sequence, envelopes: envelopes, frameLength: frame.readableBytes, location: .memory, buffer: frame)
            if !failing(state, now: now), let offset = writeToDisk(frame, envelopes: envelopes, sequence: sequence, state: &state, now: now) {
                entry.location = .disk(segment: state.segments.last!.firstSequence, offset: offset)
                if state.memoryBytes + frame.readableBytes > settings.memoryBytes { entry.buffer = nil }
            }
            if entry.buffer != nil { state.memoryBytes += frame.readableBytes }
            state.unsent.append(entry)
            return sequence
        }
    }

    /// Writes one record; returns where its frame starts, or nil if the
    /// disk failed (then logged, counted and remembered).
    private func writeToDisk(_ frame: ByteBuffer, envelopes: Int, sequence: UInt64, state: inout State, now: Int64) -> Int? {
        let recordBytes = SpoolSegment.recordHeaderSize + frame.readableBytes
        if state.writing, let current = state.segments.last, current.bytes > 0, current.bytes + recordBytes > settings.segmentBytes {
            closeWriting(&state)
        }
        if !state.writing {
            let path = settings.directory + "/" + SpoolSegment.fileName(firstSequence: sequence)
            let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                diskFailed(&state, now: now, what: "cannot make a spool segment \(path)", errno: errno)
                return nil
            }
            // The new name survives a power cut with the records in it.
            if directoryFD >= 0 { _ = fsync(directoryFD) }
            state.segments.append(Segment(firstSequence: sequence, lastSequence: nil, path: path, fd: fd, bytes: 0))
            state.writing = true
        }
        let segment = state.segments.last!
        let written = frame.withUnsafeReadableBytes { bytes -> Int in
            var header = SpoolSegment.recordHeader(frame: bytes, envelopes: envelopes)
            return header.withUnsafeMutableBytes { head in
                var vectors = [
                    iovec(iov_base: head.baseAddress, iov_len: head.count),
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count),
                ]
                return pwritev(segment.fd, &vectors, 2, off_t(segment.bytes))
            }
        }
        guard written == recordBytes else {
            let error = written < 0 ? errno : ENOSPC
            // Nothing of a record half written stays to be read as torn.
            _ = ftruncate(segment.fd, off_t(segment.bytes))
            diskFailed(&state, now: now, what: "cannot write the spool segment \(segment.path)", errno: error)
            return nil
        }
        if state.failedAt != nil {
            state.failedAt = nil
            logger.notice("the spool is written again", metadata: [LogKeys.path: "\(settings.directory)"])
        }
        let offset = segment.bytes + SpoolSegment.recordHeaderSize
        state.segments[state.segments.count - 1].bytes += recordBytes
        state.segments[state.segments.count - 1].lastSequence = sequence
        state.diskBytes += recordBytes
        bytesGauge.record(state.diskBytes)
        if state.dirtySince == nil { state.dirtySince = now }
        return offset
    }

    private func diskFailed(_ state: inout State, now: Int64, what: String, errno error: Int32) {
        writeErrors.increment()
        if state.failedAt == nil {
            logger.error(
                "\(what): \(Self.errnoText(error)); holding envelopes in memory until it can be written again",
                metadata: [LogKeys.path: "\(settings.directory)", "sluice.retry_seconds": "\(settings.retryInterval / 1_000_000_000)"])
        }
        state.failedAt = now
        // A new segment is begun when the disk is tried again.
        if state.writing { closeWriting(&state) }
    }

    private func closeWriting(_ state: inout State) {
        guard state.writing, let last = state.segments.last else { return }
        _ = fsync(last.fd)
        state.dirtySince = nil
        state.writing = false
        if last.lastSequence == nil {
            closeFile(last.fd)
            unlink(last.path)
            state.diskBytes -= last.bytes
            state.segments.removeLast()
        }
    }

    // MARK: sending (the sender)

    /// The oldest frame not yet handed to the client, read back from disk
    /// if it is not held in memory. Nil when every frame was handed.
    public func next() -> Next? {
        while true {
            enum Found {
                case none
                case held(Next)
                case onDisk(Entry, fd: Int32, offset: Int, path: String)
            }
            let found: Found = state.withLockedValue { state in
                while let entry = state.unsent.popFirst() {
                    let onDisk: Bool
                    if case .disk = entry.location { onDisk = true } else { onDisk = false }
                    if let buffer = entry.buffer {
                        state.memoryBytes -= buffer.readableBytes
                        state.sent.append((entry.sequence, entry.envelopes, onDisk))
                        return .held(Next(sequence: entry.sequence, frame: buffer, envelopes: entry.envelopes))
                    }
                    guard case .disk(let first, let offset) = entry.location,
                        let segment = state.segments.first(where: { $0.firstSequence == first })
                    else { continue }
                    state.sent.append((entry.sequence, entry.envelopes, true))
                    return .onDisk(entry, fd: segment.fd, offset: offset, path: segment.path)
                }
                return .none
            }
            switch found {
            case .none:
                return nil
            case .held(let next):
                return next
            case .onDisk(let entry, let fd, let offset, let path):
                // Read outside the lock: the segment stays until this frame
                // is acknowledged, which it cannot be before it is sent.
                var buffer = allocator.buffer(capacity: entry.frameLength)
                let read = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: entry.frameLength) { target in
                    max(0, pread(fd, target.baseAddress, entry.frameLength, off_t(offset)))
                }
                if read == entry.frameLength {
                    return Next(sequence: entry.sequence, frame: buffer, envelopes: entry.envelopes)
                }
                readErrors.increment()
                unreadable.increment(by: entry.envelopes)
                logger.error(
                    "cannot read a frame back from the spool: its envelopes are lost",
                    metadata: [LogKeys.path: "\(path)", LogKeys.count: "\(entry.envelopes)"])
                state.withLockedValue { state in state.sent.removeAll { $0.sequence == entry.sequence } }
            }
        }
    }

    public var hasUnsent: Bool { state.withLockedValue { !$0.unsent.isEmpty } }

    // MARK: acknowledgements

    /// A controller acknowledged every frame up to `sequence`.
    public func acknowledge(upTo sequence: UInt64) {
        state.withLockedValue { state in
            guard sequence > state.acknowledged else { return }
            state.acknowledged = sequence
            while let first = state.sent.first, first.sequence <= sequence { state.sent.removeFirst() }
        }
    }

    /// Envelopes taken and not yet acknowledged (sent or not): those whose
    /// frames are on disk, and those held only in memory (taken while the
    /// disk failed), which a stop loses.
    public var heldEnvelopes: (onDisk: Int, memoryOnly: Int) {
        state.withLockedValue { state in
            var onDisk = 0
            var memoryOnly = 0
            for entry in state.sent {
                if entry.onDisk { onDisk += entry.envelopes } else { memoryOnly += entry.envelopes }
            }
            for entry in state.unsent {
                if case .disk = entry.location { onDisk += entry.envelopes } else { memoryOnly += entry.envelopes }
            }
            return (onDisk, memoryOnly)
        }
    }

    /// Housekeeping, for the pump between writes: deletes segments whose
    /// every record is acknowledged (the one being written too, once it is
    /// full or the spool is), saves the newest acknowledged sequence, and
    /// syncs the segment being written once a second. Returns whether
    /// something written is not synced yet (the pump comes back within
    /// `syncInterval` then).
    @discardableResult
    public func tidy() -> Bool {
        let now = WallClock.nowNanos()
        let (checkpoint, syncFD, dirty): ((UInt64, UInt64)?, Int32?, Bool) = state.withLockedValue { state in
            if state.writing, let last = state.segments.last, let lastSequence = last.lastSequence,
                lastSequence <= state.acknowledged,
                last.bytes >= settings.segmentBytes || state.diskBytes >= settings.maxBytes
            {
                closeWriting(&state)
            }
            var removed = false
            while let first = state.segments.first, let last = first.lastSequence, last <= state.acknowledged,
                !(state.writing && state.segments.count == 1)
            {
                closeFile(first.fd)
                unlink(first.path)
                state.diskBytes -= first.bytes
                state.segments.removeFirst()
                removed = true
            }
            if removed { bytesGauge.record(state.diskBytes) }
            var syncFD: Int32? = nil
            if let since = state.dirtySince, now - since >= settings.syncInterval, state.writing, let last = state.segments.last {
                syncFD = last.fd
                state.dirtySince = nil
            }
            var checkpoint: (UInt64, UInt64)? = nil
            if state.acknowledged != state.checkpointed {
                state.checkpointed = state.acknowledged
                checkpoint = (state.acknowledged, state.reserved)
            }
            return (checkpoint, syncFD, state.dirtySince != nil)
        }
        // Only the pump closes the segment being written, so its file stays
        // open for this sync outside the lock.
        if let syncFD { _ = fsync(syncFD) }
        if let (acknowledged, reserved) = checkpoint { writeState(acknowledged: acknowledged, reserved: reserved, sync: false) }
        return dirty
    }

    /// Syncs and closes the files (a graceful stop). What is not
    /// acknowledged stays for the next start.
    public func close() {
        let first = state.withLockedValue { state in
            defer { state.closed = true }
            return !state.closed
        }
        guard first else { return }
        tidy()
        state.withLockedValue { state in
            if state.writing, let last = state.segments.last { _ = fsync(last.fd) }
            for segment in state.segments { closeFile(segment.fd) }
            state.segments.removeAll()
            state.writing = false
        }
        _ = fsync(stateFD)
        closeFile(stateFD)
        if directoryFD >= 0 { closeFile(directoryFD) }
    }

    /// Saves the state; `sync` waits until it is on disk (reservations).
    private func writeState(acknowledged: UInt64, reserved: UInt64, sync: Bool) {
        let bytes = SpoolSegment.state(sender: senderID, acknowledged: acknowledged, reserved: reserved)
        if pwrite(stateFD, bytes, bytes.count, 0) != bytes.count || (sync && fdatasync(stateFD) != 0) {
            writeErrors.increment()
        }
    }

    static func errnoText(_ code: Int32 = errno) -> String {
        String(cString: strerror(code))
    }
}
