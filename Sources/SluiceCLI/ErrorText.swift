#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix
import SluiceShipping

/// A command that could not do its job for a reason found while running (a
/// controller that does not answer, a refused request): said in one line,
/// without the usage text that a mistyped flag gets.
public struct CommandFailure: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Errors as a person reads them: what failed, in plain words, rather than
/// the library's own description of its types.
public enum ErrorText {
    /// `connection refused`, `no answer within 5 s`, `the connection closed`…
    public static func describe(_ error: any Error) -> String {
        switch error {
        case let error as IngressClient.Unreachable:
            return error.description + (error.lastError.map { ": \(describe($0))" } ?? "")
        case let error as NIOConnectionError:
            // Every address tried failed: the first reason says it.
            if let first = error.connectionErrors.first { return describe(first.error) }
            if let dns = error.dnsAAAAError ?? error.dnsAError { return "the name \(error.host) did not resolve (\(describe(dns)))" }
            return "could not connect to \(error.host)"
        case let error as IOError:
            return systemMessage(error.errnoCode)
        case let error as ChannelError:
            switch error {
            case .connectTimeout(let amount):
                return "no answer within \(seconds(amount))"
            case .ioOnClosedChannel, .inputClosed, .outputClosed, .alreadyClosed, .eof:
                return "the connection closed"
            default:
                return "\(error)"
            }
        case let error as any CustomStringConvertible:
            return error.description
        default:
            return String(describing: error)
        }
    }

    /// `cannot reach HOST:PORT: REASON`.
    public static func cannotReach(_ address: String, _ error: any Error) -> String {
        "cannot reach \(address): \(describe(error))"
    }

    /// The C library's text for an errno, lowercased as a clause:
    /// `connection refused`, `no route to host`.
    static func systemMessage(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        let message = String(cString: text)
        guard let first = message.first else { return "error \(code)" }
        return first.lowercased() + message.dropFirst()
    }

    static func seconds(_ amount: TimeAmount) -> String {
        let ms = amount.nanoseconds / 1_000_000
        return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
    }
}
