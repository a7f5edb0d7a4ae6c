import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Why a drain peer could not start or did not see what was expected.
struct DrainPeerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
