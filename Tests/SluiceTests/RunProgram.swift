import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import SluiceAgent
import SluiceCLI
import SluiceController
import SluiceProto
import SluiceServer
import SluiceTransport
import SluiceShipping
import SluiceWire
import Testing

/// Runs a program to its end; returns its status and output. Throws if it
/// has not finished within `timeout` (it is stopped then, as on any way out).
func runProgram(
    _ path: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Duration = .seconds(300)
) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    defer { stopProcess(process) }
    let command = ([path] + arguments).joined(separator: " ")
    guard
        let output = readToEnd(
            [out.fileHandleForReading, err.fileHandleForReading], before: ContinuousClock.now + timeout)
    else {
        throw ChildProcessError("\(command) did not finish within \(timeout)")
    }
    try waitForExit(process, timeout: .seconds(30), command)
    return (
        process.terminationStatus, String(decoding: output[0], as: UTF8.self), String(decoding: output[1], as: UTF8.self)
    )
}

/// Where `name` is on PATH (or the sbin folders), if anywhere.
func findProgram(_ name: String) -> String? {
    let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin:/usr/bin"
    for directory in path.split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}
