import Foundation
import NIOCore
import NIOPosix
import SluiceWire

/// Asks one DNS server (`--dns-resolver`, else the first `nameserver` of
/// /etc/resolv.conf) a question over UDP, and again over TCP when the
/// answer did not fit (TC). Each try waits `timeout`; `attempts` tries.
/// The messages are `DNSMessage`'s; this only moves them.
public struct DNSResolver: Sendable {
    public let server: Endpoint
    public var timeout: TimeAmount = .seconds(2)
    public var attempts = 2
    let group: any EventLoopGroup

    public init(server: Endpoint, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.server = server
        self.group = group
    }

    /// The first `nameserver` of `resolv.conf`, on port 53.
    public static func systemServer(resolvConf path: String = "/etc/resolv.conf") -> Endpoint? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if words.count >= 2, words[0] == "nameserver" {
                // A scoped IPv6 address (fe80::1%eth0) is not taken.
                let host = String(words[1])
                guard !host.contains("%") else { continue }
                return Endpoint(host: host, port: 53)
            }
        }
        return nil
    }

    public func query(_ name: String, _ type: DNSMessage.RecordType) async throws -> DNSMessage.Answer {
        var lastError: any Error = DNSError("no answer from \(server)")
        for _ in 0..<max(1, attempts) {
            let id = UInt16.random(in: 0...UInt16.max)
            let message = try DNSMessage.query(id: id, name: name, type: type)
            do {
                let answer = try await overUDP(message, id: id)
                if answer.truncated { return try await overTCP(message, id: id) }
                return answer
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private func overUDP(_ message: [UInt8], id: UInt16) async throws -> DNSMessage.Answer {
        let loop = group.next()
        let remote = try SocketAddress.makeAddressResolvingHost(server.host, port: server.port)
        let promise = loop.makePromise(of: DNSMessage.Answer.self)
        let channel: any Channel
        do {
            channel = try await DatagramBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(DatagramAnswer(id: id, from: remote, promise: promise))
                    }
                }
                .bind(host: remote.protocol == .inet6 ? "::" : "0.0.0.0", port: 0).get()
        } catch {
            promise.fail(error)
            throw error
        }
        let timer = loop.scheduleTask(in: timeout) {
            promise.fail(DNSError("no answer from \(server) within \(timeout.nanoseconds / 1_000_000) ms"))
        }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        let envelope = AddressedEnvelope(remoteAddress: remote, data: channel.allocator.buffer(bytes: message))
        channel.writeAndFlush(envelope).whenFailure { promise.fail($0) }
        return try await promise.futureResult.get()
    }

    private func overTCP(_ message: [UInt8], id: UInt16) async throws -> DNSMessage.Answer {
        let loop = group.next()
        let promise = loop.makePromise(of: DNSMessage.Answer.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(StreamAnswer(id: id, promise: promise))
                    }
                }
                .connect(host: server.host, port: server.port).get()
        } catch {
            promise.fail(error)
            throw error
        }
        let timer = loop.scheduleTask(in: timeout) {
            promise.fail(DNSError("no answer from \(server) over TCP within \(timeout.nanoseconds / 1_000_000) ms"))
        }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        var buffer = channel.allocator.buffer(capacity: message.count + 2)
        buffer.writeInteger(UInt16(message.count))
        buffer.writeBytes(message)
        channel.writeAndFlush(buffer).whenFailure { promise.fail($0) }
        return try await promise.futureResult.get()
    }
}

/// The answer to one UDP query: from the server asked, with the query's
/// id; anything else is ignored (a late answer to an earlier try).
private final class DatagramAnswer: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let id: UInt16
    let from: SocketAddress
    let promise: EventLoopPromise<DNSMessage.Answer>

    init(id: UInt16, from: SocketAddress, promise: EventLoopPromise<DNSMessage.Answer>) {
        self.id = id
        self.from = from
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard envelope.remoteAddress == from else { return }
        do {
            let answer = try DNSMessage.parse(Array(envelope.data.readableBytesView))
            guard answer.id == id else { return }
            promise.succeed(answer)
        } catch {
            promise.fail(error)
        }
    }
}

/// The answer to one TCP query: a 2-byte length, then the message.
private final class StreamAnswer: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let id: UInt16
    let promise: EventLoopPromise<DNSMessage.Answer>
    private var received = ByteBuffer()

    init(id: UInt16, promise: EventLoopPromise<DNSMessage.Answer>) {
        self.id = id
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        received.writeBuffer(&chunk)
        guard let length = received.getInteger(at: received.readerIndex, as: UInt16.self),
            received.readableBytes >= 2 + Int(length)
        else { return }
        let bytes = received.getBytes(at: received.readerIndex + 2, length: Int(length)) ?? []
        do {
            let answer = try DNSMessage.parse(bytes)
            guard answer.id == id else { throw DNSError("an answer to another question over TCP") }
            promise.succeed(answer)
        } catch {
            promise.fail(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(DNSError("the DNS server closed the TCP connection before answering"))
    }
}
