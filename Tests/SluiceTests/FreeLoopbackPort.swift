import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A port nothing on 127.0.0.1 uses now, learnt by binding port 0 and closing.
func freeLoopbackPort(udp: Bool) throws -> Int {
    let fd = socket(AF_INET, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw DrainPeerError("socket() failed: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            guard bind(fd, pointer, length) == 0 else { return false }
            return getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw DrainPeerError("could not bind a loopback port: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}
