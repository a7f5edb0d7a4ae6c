import Foundation

// Child processes the tests start: stopping them whatever way a test ends,
// and reading their output without waiting forever for it.

/// A child process that did not do in time what a test waited for.
struct ChildProcessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Stops `process` if it is still running: SIGTERM, up to `grace` for it to
/// exit, then SIGKILL (to its process group as well: Foundation starts each
/// child in a group of its own, so what it started goes too); returns once it
/// has exited. A process that already exited is left alone, so a
/// `defer { stopProcess(process) }` right after `run()` does nothing when the
/// test ended it itself.
func stopProcess(_ process: Process, grace: Duration = .seconds(2)) {
    guard process.isRunning else { return }
    let pid = process.processIdentifier
    kill(pid, SIGTERM)
    if exits(process, within: grace) { return }
    if process.isRunning {
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
    }
    _ = exits(process, within: .seconds(10))
}

/// Waits for `process` to exit; throws if it still runs after `timeout` (a
/// `defer { stopProcess(process) }` then stops it).
func waitForExit(_ process: Process, timeout: Duration, _ what: String) throws {
    guard exits(process, within: timeout) else {
        throw ChildProcessError("\(what) did not exit within \(timeout) (pid \(process.processIdentifier))")
    }
}

/// Whether `process` exited within `timeout` (polled: a process that does
/// not exit is not waited for forever).
private func exits(_ process: Process, within timeout: Duration) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while process.isRunning {
        guard ContinuousClock.now < deadline else { return false }
        usleep(10_000)
    }
    process.waitUntilExit()
    return true
}

/// Reads `pipe` until what was read satisfies `done`, or the writer closes
/// it; throws if neither happens within `timeout` (a child that hangs
/// without printing fails the test rather than hanging it).
func read(_ pipe: Pipe, timeout: Duration = .seconds(30), until done: (String) -> Bool) throws -> String {
    let deadline = ContinuousClock.now + timeout
    var text = ""
    while !done(text) {
        guard let data = readSome(pipe.fileHandleForReading, before: deadline) else {
            throw ChildProcessError(
                "the child did not write what was awaited within \(timeout); it wrote: \(text.debugDescription)")
        }
        if data.isEmpty { break }
        text += String(decoding: data, as: UTF8.self)
    }
    return text
}

/// Everything `handles` give until each reaches its end (read side by side,
/// so that a full pipe cannot stall another), or nil if they have not all
/// ended by `deadline`.
func readToEnd(_ handles: [FileHandle], before deadline: ContinuousClock.Instant) -> [Data]? {
    var data = handles.map { _ in Data() }
    var pending = Array(handles.indices)
    while !pending.isEmpty {
        guard let ready = waitReadable(pending.map { handles[$0].fileDescriptor }, before: deadline) else { return nil }
        var stillOpen: [Int] = []
        for (slot, index) in pending.enumerated() {
            guard ready[slot] else {
                stillOpen.append(index)
                continue
            }
            let chunk = handles[index].availableData
            if chunk.isEmpty { continue }  // the end
            data[index].append(chunk)
            stillOpen.append(index)
        }
        pending = stillOpen
    }
    return data
}

/// What `handle` has once it has something: empty at its end, nil if
/// nothing comes by `deadline`.
private func readSome(_ handle: FileHandle, before deadline: ContinuousClock.Instant) -> Data? {
    guard waitReadable([handle.fileDescriptor], before: deadline) != nil else { return nil }
    return handle.availableData
}

/// Waits until at least one of `fds` can be read without blocking (data,
/// or its end); which can, or nil at `deadline`.
private func waitReadable(_ fds: [Int32], before deadline: ContinuousClock.Instant) -> [Bool]? {
    while true {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { return nil }
        let (seconds, attoseconds) = left.components
        // At most a second at a time; rounded up, so as not to spin.
        let milliseconds = Int32(clamping: min(seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1, 1000))
        var descriptors = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let count = poll(&descriptors, nfds_t(descriptors.count), milliseconds)
        if count > 0 { return descriptors.map { $0.revents != 0 } }
        // An error other than an interruption: let the read report it.
        if count < 0 && errno != EINTR { return fds.map { _ in true } }
    }
}

/// Starts `sluice up ARGUMENTS` with `$SLUICE_HOME` at `home` (removed
/// first); its standard output is the pipe returned, its standard error
/// goes to `stderr` (nothing by default).
func startSluiceUp(
    home: URL, _ arguments: [String], stderr: FileHandle = FileHandle.nullDevice
) throws -> (process: Process, out: Pipe) {
    try? FileManager.default.removeItem(at: home)
    let process = Process()
    process.executableURL = sluiceExecutable()
    process.arguments = ["up"] + arguments
    process.environment = ProcessInfo.processInfo.environment.merging(["SLUICE_HOME": home.path]) { $1 }
    let out = Pipe()
    process.standardOutput = out
    process.standardError = stderr
    try process.run()
    return (process, out)
}

/// Runs `rsyslogd -n` with `config` (written to `directory/rsyslog.conf`)
/// until `body` returns; it is killed then, however `body` ends.
func withRsyslogd<Result>(
    _ rsyslogd: String, config: String, in directory: URL, _ body: () async throws -> Result
) async throws -> Result {
    try config.write(to: directory.appendingPathComponent("rsyslog.conf"), atomically: true, encoding: .utf8)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: rsyslogd)
    process.arguments = [
        "-n", "-f", directory.appendingPathComponent("rsyslog.conf").path, "-i",
        directory.appendingPathComponent("rsyslog.pid").path,
    ]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    defer {
        // rsyslogd may inherit a mask that blocks SIGTERM: SIGKILL it.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
    return try await body()
}
