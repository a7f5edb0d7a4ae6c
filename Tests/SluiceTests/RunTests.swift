import Foundation
import NIOCore
import NIOPosix
import SluiceAgent
import SluiceCLI
import SluiceProto
import SluiceTransport
import SluiceShipping
import SluiceWire
import Testing

/// `sluice run` as a user runs it: the real executable, a real command.
@Suite(.serialized)
struct RunTests {
    @Test func shipsEachLineAndPassesOutputAndStatusThrough() async throws {
        let harness = try await AgentHarness.start()
        defer { Task { await harness.shutdown() } }
        let received = try await harness.tail("run-app")
        let result = try await runSluice([
            "run", "--app", "run-app", "--instance", "2", "--agent", "\(harness.addresses.listen)", "--",
            "sh", "-c", #"printf 'out one\nout two\r\n'; printf 'err one\n' >&2; printf 'no newline'; exit 3"#,
        ])
        #expect(result.status == 3)
        #expect(result.stdout == "out one\nout two\r\nno newline")
        #expect(result.stderr == "err one\n")
        #expect(await received.wait(for: 4))
        let envelopes = received.envelopes
        #expect(envelopes.filter { $0.log.type == .out }.map(\.text) == ["out one", "out two", "no newline"])
        #expect(envelopes.filter { $0.log.type == .err }.map(\.text) == ["err one"])
        #expect(envelopes.allSatisfy { $0.instanceID == "2" && $0.tags["source_type"] == "APP/PROC/WEB" })
    }

    /// `--instance-log-rate-limit`: a command that floods gets the limit's
    /// worth through, Diego's words in its app's logs, and all its output
    /// still on its own stdout.
    @Test func aCommandOverItsLogRateLimitIsCutAndTold() async throws {
        let harness = try await AgentHarness.start()
        defer { Task { await harness.shutdown() } }
        let received = try await harness.tail("flood-app")
        let result = try await runSluice([
            "run", "--app", "flood-app", "--instance", "1", "--agent", "\(harness.addresses.listen)",
            "--instance-log-rate-limit", "1K", "--", "sh", "-c", "for i in $(seq 1 300); do echo 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopq$i; done",
        ])
        #expect(result.status == 0)
        #expect(result.stdout.split(separator: "\n").count == 300)
        #expect(await received.wait { $0.notices.contains { $0.text == "app instance exceeded log rate limit (1024 bytes/sec)" } })
        let lines = received.envelopes.filter { !$0.isNotice }
        // 1,024 bytes of 100-byte lines (101 with the 3-digit counter) pass
        // in the first second; the run takes a fraction of one.
        #expect((9...20).contains(lines.count), "\(lines.count) lines passed")
        #expect(lines.first?.text.hasSuffix("1") == true)
        let notice = try #require(received.envelopes.first { $0.isNotice })
        #expect(notice.instanceID == "1")
        #expect(notice.tags["sluice_notice"] == "log_rate_limit")
    }

    @Test func splitsLinesOver64KiBIntoTaggedPieces() async throws {
        let harness = try await AgentHarness.start()
        defer { Task { await harness.shutdown() } }
        let received = try await harness.tail("long-app")
        let result = try await runSluice([
            "run", "--app", "long-app", "--agent", "\(harness.addresses.listen)", "--",
            "sh", "-c", "head -c 150000 /dev/zero | tr '\\0' 'a'; echo; echo short",
        ])
        #expect(result.status == 0)
        #expect(await received.wait(for: 4))
        let envelopes = received.envelopes
        #expect(envelopes.map { $0.tags["sluice_part"] ?? "-" } == ["1", "2", "3/3", "-"])
        #expect(envelopes.map(\.log.payload.count) == [65_536, 65_536, 150_000 - 2 * 65_536, 5])
        #expect(envelopes.dropLast().allSatisfy { $0.log.payload.allSatisfy { $0 == UInt8(ascii: "a") } })
    }

    @Test func neverBlocksTheCommandWhenNoAgentListens() async throws {
        let reserved = ReservedPort()
        defer { reserved.release() }
        let port = reserved.port
        let result = try await runSluice([
            "run", "--app", "lonely", "--agent", "127.0.0.1:\(port)", "--buffer", "1MiB", "--",
            "sh", "-c", "seq 1 200000",
        ])
        #expect(result.status == 0)
        #expect(result.stdout == (1...200_000).map { "\($0)\n" }.joined())
        #expect(result.stderr.contains("lines dropped while the buffer was full"), "\(result.stderr)")
        #expect(result.stderr.contains("no agent answered at 127.0.0.1:\(port)"), "\(result.stderr)")
    }

    @Test func neverBlocksTheCommandWhenTheAgentStopsReading() async throws {
        // A listener that accepts and never reads: its socket buffers fill.
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.autoRead, value: false)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { channel.close(promise: nil) }
        let result = try await runSluice([
            "run", "--app", "stuck", "--agent", "\(Endpoint(channel.localAddress!))", "--buffer", "1MiB", "--",
            "sh", "-c", "seq 1 200000",
        ])
        #expect(result.status == 0)
        let expected: String = (1...200_000).map { "\($0)\n" }.joined()
        #expect(result.stdout == expected)
        #expect(result.stderr.contains("lines dropped while the buffer was full"), "\(result.stderr)")
        #expect(result.stderr.contains("lines in time"), "\(result.stderr)")
    }

    @Test func passesSIGTERMOnAndExitsWithTheCommandsStatus() async throws {
        let reserved = ReservedPort()
        defer { reserved.release() }
        let port = reserved.port
        let process = Process()
        process.executableURL = sluiceExecutable()
        process.arguments = [
            "run", "--app", "signalled", "--agent", "127.0.0.1:\(port)", "--",
            "sh", "-c", #"trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done"#,
        ]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { stopProcess(process) }
        let text = try read(out) { $0.contains("ready\n") }
        #expect(text == "ready\n")
        process.terminate()  // SIGTERM, to sluice run only
        guard let output = readToEnd([out.fileHandleForReading], before: ContinuousClock.now + .seconds(30)) else {
            throw ChildProcessError("after SIGTERM, sluice run did not close its output within 30 s")
        }
        let rest = output[0]
        try waitForExit(process, timeout: .seconds(30), "after SIGTERM, sluice run")
        #expect(String(decoding: rest, as: UTF8.self) == "got-term\n")
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 7)
    }

    @Test func aClosedOutputEndsTheCommandAsItWouldWithoutSluice() async throws {
        let reserved = ReservedPort()
        defer { reserved.release() }
        let process = Process()
        process.executableURL = sluiceExecutable()
        process.arguments = ["run", "--app", "piped", "--agent", "127.0.0.1:\(reserved.port)", "--", "seq", "1", "100000000"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { stopProcess(process) }
        // The reader goes away, as `head` does.
        _ = try read(out) { !$0.isEmpty }
        try out.fileHandleForReading.close()
        try waitForExit(process, timeout: .seconds(60), "with its output closed, sluice run")
        // seq met the closed pipe and died of SIGPIPE; sluice run did not.
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 128 + SIGPIPE)
    }

    @Test func reportsACommandThatCannotBeRun() async throws {
        let result = try await runSluice(["run", "--app", "x", "--", "/nonexistent/command"])
        #expect(result.status == 127)
        #expect(result.stderr.contains("cannot run /nonexistent/command"), "\(result.stderr)")
    }
}
