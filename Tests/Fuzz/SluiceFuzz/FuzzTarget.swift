import CFuzzDriver
import Foundation
import NIOCore
import NIOEmbedded

/// One libFuzzer target: `run` is given every input libFuzzer makes and
/// must come back, whatever the bytes; a crash, a hang or a leak is what
/// the fuzzer finds. A broken invariant is a `fatalError`, so that it is
/// found too.
protocol FuzzTarget {
    /// The name `bin/fuzz` and `SLUICE_FUZZ_TARGET` use; also the corpus
    /// directory's, under `Tests/Fuzz/corpus/`.
    static var name: String { get }
    static func run(_ input: UnsafeRawBufferPointer)
}

enum FuzzTargets {
    nonisolated(unsafe) static let all: [any FuzzTarget.Type] = [
        FrameTarget.self, EnvelopeTarget.self, SyslogTarget.self, LogplexTarget.self, DrainURLTarget.self,
        HTTPRouteTarget.self, WebSocketTarget.self, GRPCTarget.self, DNSTarget.self,
    ]

    nonisolated(unsafe) static var selected: (any FuzzTarget.Type)?

    static func select() {
        let name = ProcessInfo.processInfo.environment["SLUICE_FUZZ_TARGET"] ?? ""
        guard let target = all.first(where: { $0.name == name }) else {
            let names = all.map { $0.name }.joined(separator: ", ")
            FileHandle.standardError.write(Data("set SLUICE_FUZZ_TARGET to one of: \(names)\n".utf8))
            exit(2)
        }
        selected = target
    }

    /// Splits `input` into the chunks a stream reader would get: the first
    /// byte gives the chunk size (1 to 64), so the fuzzer also explores
    /// where reads end.
    static func chunks(_ input: UnsafeRawBufferPointer) -> [UnsafeRawBufferPointer] {
        guard let first = input.first else { return [] }
        let size = Int(first % 64) + 1
        var pieces: [UnsafeRawBufferPointer] = []
        var start = 1
        while start < input.count {
            let end = min(start + size, input.count)
            pieces.append(UnsafeRawBufferPointer(rebasing: input[start..<end]))
            start = end
        }
        return pieces
    }

    /// Writes `input`'s chunks (`chunks`) into `channel` as reads, calling
    /// `read` after each, and stops at the first error, as the connection
    /// would be closed. Returns whether every chunk was taken.
    @discardableResult
    static func stream(_ input: UnsafeRawBufferPointer, into channel: EmbeddedChannel, read: () -> Void = {}) -> Bool {
        for chunk in chunks(input) {
            do {
                try channel.writeInbound(ByteBuffer(bytes: chunk))
            } catch {
                return false
            }
            read()
        }
        return true
    }
}

/// `sluice-fuzz`: the target named by `SLUICE_FUZZ_TARGET`, under
/// libFuzzer's driver, which takes libFuzzer's usual arguments.
@main
enum FuzzMain {
    static func main() {
        FuzzTargets.select()
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(
            LLVMFuzzerRunDriver(&argc, &argv) { data, size in
                FuzzTargets.selected!.run(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
                return 0
            })
    }
}
