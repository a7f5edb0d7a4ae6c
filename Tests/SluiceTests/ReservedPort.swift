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

/// A loopback port bound but not listening: connecting to it is refused,
/// and no other test's listener can be given it until it is released.
///
/// The port is taken below the kernel's ephemeral range (32768 and up
/// here), never in it: once released, a port in that range may be given
/// to any outgoing connection as its local port, or a client dialling it
/// with nothing listening may connect to itself (TCP's simultaneous open,
/// source port = destination port), and the listener meant to take it
/// then fails with EADDRINUSE (a fresh bin/test failed so once, in
/// `AgentTests.theAgentIsReadyOnceAControllerIsConnected`).
final class ReservedPort: Sendable {
    let port: Int
    private let fd: Int32

    init() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        var bound = false
        for _ in 0..<200 where !bound {
            address.sin_port = UInt16(Int.random(in: Self.range)).bigEndian
            bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            } == 0
        }
        if !bound {
            // Every try taken: any free port, as the kernel gives one.
            address.sin_port = 0
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Below /proc/sys/net/ipv4/ip_local_port_range's start (32768 by
    /// default), above the well-known and most services' ports.
    static let range = 20000...32000

    func release() {
        close(fd)
    }
}
