#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Atomics
import Dispatch
import Foundation
import NIOCore
import SluiceTransport
import SluiceShipping
import SluiceWire

/// The pid of the command `sluice run` started, for the signal handler: an
/// atomic, since the handler runs on whichever thread the signal lands on
/// (ThreadSanitizer found the plain variable this was racing).
private let runChildPID = ManagedAtomic<pid_t>(0)

/// `sluice run -- CMD ARGS…`: runs CMD with its standard output and error
/// going through pipes that this process copies to its own, unchanged, and
/// ships each line to the agent as an OUT or ERR envelope. The command never
/// waits on Sluice: lines go into a bounded buffer, and when the agent is
/// gone or not reading the oldest are dropped and counted (and told in band
/// once it is back). SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to this
/// process are passed on to the command; its exit status is ours.
public struct Run: Sendable {
    public var agent: Endpoint
    public var fields: LogEnvelopeFields
    public var bufferBytes: Int = 16 * 1024 * 1024
    /// Cloud Foundry's per-instance log rate limit, bytes of log payload
    /// per second; nil for none.
    public var instanceLogRateLimit: Int?
    /// How long, after the command ends, what is queued may take to reach the agent.
    public var deliveryTimeout: TimeAmount = .seconds(5)

    public init(agent: Endpoint, fields: LogEnvelopeFields) {
        self.agent = agent
        self.fields = fields
    }

    public struct SpawnFailed: Error, CustomStringConvertible {
        public var command: String
        public var code: Int32
        public var description: String { "cannot run \(command): \(String(cString: strerror(code)))" }
    }

    /// Runs `command`; returns its exit status (128 + N if signal N ended it).
    public func run(_ command: [String]) async throws -> Int32 {
        precondition(!command.isEmpty)
        var configuration = LogShipper.Configuration(endpoints: [agent], bufferBytes: bufferBytes)
        configuration.dropReason = "sluice run's buffer was full"
        configuration.metricsPrefix = "sluice_run"
        configuration.instanceLogRateLimit = instanceLogRateLimit
        let shipper = LogShipper(configuration: configuration)

        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw SpawnFailed(command: command[0], code: errno) }
        let pid = try spawn(command, stdout: outPipe[1], stderr: errPipe[1], closing: [outPipe[0], errPipe[0]])
        close(outPipe[1])
        close(errPipe[1])
        runChildPID.store(pid, ordering: .sequentiallyConsistent)
        installSignalForwarding()
        // A reader of our output that goes away (`sluice run … | head`) ends
        // the copying, not this process: see `copyLines`.
        signal(SIGPIPE, SIG_IGN)

        // Blocking reads and waitpid run on threads of their own: on the
        // shared dispatch or async pools they would starve the shipper's pump.
        var errFields = fields
        errFields.isError = true
        let readers = DispatchGroup()
        for (source, target, lineFields) in [(outPipe[0], Int32(1), fields), (errPipe[0], Int32(2), errFields)] {
            readers.enter()
            Thread {
                Self.copyLines(from: source, to: target, fields: lineFields, shipper: shipper)
                close(source)
                readers.leave()
            }.start()
        }
        let status = await onThread { Self.wait(for: pid) }
        // The pipes end when the command and anything it left behind close
        // them; a background child that keeps them open is not waited for long.
        _ = await onThread { readers.wait(timeout: .now() + 2) }

        // An agent being connected to (a command that ends before the
        // connection is made, on a loaded machine) is waited for as one
        // that answered; only one that refused gets the short wait.
        let reachable = await shipper.client.isConnectedOrConnecting
        let (unsent, acknowledged) = await shipper.finish(timeout: reachable ? deliveryTimeout : .milliseconds(200))
        let connected = await shipper.client.hasConnected
        let dropped = shipper.droppedTotal
        var report: [String] = []
        if dropped > 0 { report.append("\(dropped) lines dropped while the buffer was full") }
        if unsent > 0 || !acknowledged {
            report.append(
                connected
                    ? "the agent at \(agent) did not take \(unsent) lines in time"
                    : "no agent answered at \(agent): \(unsent) lines not delivered")
        }
        if !report.isEmpty { writeAll(2, Array("sluice run: \(report.joined(separator: "; "))\n".utf8)) }
        return status
    }

    /// Reads `fd` to its end: each chunk is written to `target` first, then
    /// its lines go to the shipper, under one lock per chunk. If `target`
    /// is closed (EPIPE), reading stops and the pipe is closed, so that the
    /// command meets the closed pipe as it would have without us.
    static func copyLines(from fd: Int32, to target: Int32, fields: LogEnvelopeFields, shipper: LogShipper) {
        var splitter = LineSplitter()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var last: Int64 = 0
        // Strictly increasing timestamps, so that a time-ordered merge keeps the order.
        func timestamp() -> Int64 {
            last = max(WallClock.nowNanos(), last + 1)
            return last
        }
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            let copied = chunk.withUnsafeBytes { bytes in
                let data = UnsafeRawBufferPointer(rebasing: bytes[0..<count])
                let copied = writeAll(target, data)
                shipper.appendLines { append in
                    splitter.feed(data) { line, part in
                        let time = timestamp()
                        append(LogShipper.LineOrigin(app: fields.sourceID, instance: fields.instanceID, logBytes: line.count)) {
                            $0.writeLogEnvelopeEntry(fields, timestamp: time, payload: line, extraTags: part.map { [$0] } ?? [])
                        }
                    }
                }
                return copied
            }
            if !copied { break }
        }
        splitter.finish { line, part in
            shipper.appendLog(fields, timestamp: timestamp(), payload: line, extraTags: part.map { [$0] } ?? [])
        }
    }

    private func spawn(_ command: [String], stdout: Int32, stderr: Int32, closing: [Int32]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        for fd in closing + [stdout, stderr] { posix_spawn_file_actions_addclose(&actions, fd) }
        // The command starts with default signal handling and nothing
        // blocked, whatever this process (or its runtime) set for itself:
        // SIGPIPE ignored here must not be ignored there.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, command[0], &actions, &attributes, argv, environ)
        guard result == 0 else { throw SpawnFailed(command: command[0], code: result) }
        return pid
    }

    /// Passes on signals sent to this process with kill(2). Those the
    /// terminal sends (Ctrl-C) reach the command by themselves, as it is in
    /// the same process group, so they are not sent twice.
    private func installSignalForwarding() {
        let forward: @convention(c) (Int32, UnsafeMutablePointer<siginfo_t>?, UnsafeMutableRawPointer?) -> Void = {
            signal, info, _ in
            let pid = runChildPID.load(ordering: .sequentiallyConsistent)
            guard let info, info.pointee.si_code <= 0, pid > 0 else { return }
            let saved = errno
            kill(pid, signal)
            errno = saved
        }
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
            var action = sigaction()
            action.sa_flags = SA_SIGINFO | SA_RESTART
            #if canImport(Glibc)
            action.__sigaction_handler.sa_sigaction = forward
            #else
            action.__sigaction_u.__sa_sigaction = forward
            #endif
            sigaction(signal, &action, nil)
        }
    }

    /// Waits for the command to end; its exit status, or 128 + the signal.
    /// Signals stop being passed on before the pid is reaped (and so free
    /// to be given to another process).
    private static func wait(for pid: pid_t) -> Int32 {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        runChildPID.store(0, ordering: .sequentiallyConsistent)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}

/// Runs blocking work on a thread of its own and awaits its result.
private func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// Writes every byte, retrying short writes and interruptions; false if
/// the descriptor fails (a closed pipe).
@discardableResult
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if written < 0 {
            if errno == EINTR { continue }
            return false
        }
        offset += written
    }
    return true
}

@discardableResult
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { writeAll(fd, $0) }
}
