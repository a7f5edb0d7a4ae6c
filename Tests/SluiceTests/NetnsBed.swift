import Foundation
import NIOConcurrencyHelpers

/// Hosts made by `bin/netns-cluster`: one network namespace each, with its
/// own address on a bridge this (the root) namespace reaches, and silent
/// partitions between them (nftables DROP rules). Needs root, `ip` and
/// `nft` (bin/test installs nftables; CI runs as root).
final class NetnsBed: Sendable {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("bin/netns-cluster").path

    /// Whether this machine can make a test bed: root, iproute2 and nftables.
    static var available: Bool {
        getuid() == 0 && findProgram("ip") != nil && findProgram("nft") != nil
    }

    /// bin/test sets SLUICE_NETNS_TESTS=1 where it installed what the test
    /// bed needs: there, a bed that cannot be made fails the run rather than
    /// skipping its tests.
    static var required: Bool { ProcessInfo.processInfo.environment["SLUICE_NETNS_TESTS"] == "1" }

    let name: String
    /// Each host's address.
    let addresses: [String: String]
    private let isDown = NIOLockedValueBox(false)

    private init(name: String, addresses: [String: String]) {
        self.name = name
        self.addresses = addresses
    }

    /// Makes the hosts (any bed of this name left by an earlier run first
    /// goes).
    static func up(_ hosts: [String], name: String = "sltest") throws -> NetnsBed {
        let output = try Self.run(["up"] + hosts + ["--bed", name])
        var addresses: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2 { addresses[String(fields[0])] = String(fields[1]) }
        }
        guard Set(addresses.keys) == Set(hosts) else {
            throw ChildProcessError("bin/netns-cluster up gave \(output)")
        }
        return NetnsBed(name: name, addresses: addresses)
    }

    /// The namespace a host's processes run in (`ip netns exec NAME`).
    func namespace(of host: String) -> String { "\(name)-\(host)" }

    /// Drops every packet between each of `left` and each of `right`.
    func partition(_ left: [String], from right: [String]) throws {
        _ = try Self.run([
            "partition", left.joined(separator: ","), right.joined(separator: ","), "--bed", name,
        ])
    }

    /// Every TCP connection made from now on between each of `left` and
    /// each of `right` (to the members' ports) goes through
    /// bin/fault-proxy: `milliseconds` more each way, and `lossPercent` of
    /// its chunks stalled 200 ms.
    func delay(_ left: [String], from right: [String], milliseconds: Double, lossPercent: Double = 0) throws {
        _ = try Self.run([
            "delay", left.joined(separator: ","), right.joined(separator: ","), "\(Int(milliseconds))",
            "--loss", "\(lossPercent)", "--bed", name,
        ])
    }

    func heal() throws {
        _ = try Self.run(["heal", "--bed", name])
    }

    /// Removes every host; safe to call twice.
    func down() {
        let wasDown = isDown.withLockedValue { state in
            defer { state = true }
            return state
        }
        guard !wasDown else { return }
        _ = try? Self.run(["down", "--bed", name])
    }

    deinit { down() }

    @discardableResult
    private static func run(_ arguments: [String]) throws -> String {
        let result = try runProgram(script, arguments, timeout: .seconds(60))
        guard result.status == 0 else {
            throw ChildProcessError(
                "bin/netns-cluster \(arguments.joined(separator: " ")) failed: \(result.stderr)\(result.stdout)")
        }
        return result.stdout
    }
}
