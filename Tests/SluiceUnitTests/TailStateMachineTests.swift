import Foundation
import NIOCore
import SluiceProto
import SluiceWire
import SwiftProtobuf
import Testing

@testable import SluiceController

/// `TailStateMachine`, the egress core, driven by hand: no channel.
@Suite struct TailStateMachineTests {
    static let now: Int64 = 1_764_410_000_000_000_000

    func lines(_ texts: [String], app: String = "a") throws -> ByteBuffer {
        try Make.batch(texts.map { Make.log(app: app, $0) })
    }

    /// Everything the reader would be written now, as decoded envelopes.
    func written(_ machine: inout TailStateMachine, maxBytes: Int = 1 << 30) throws -> [Loggregator_V2_Envelope] {
        var items: [TailStateMachine.Item] = []
        while machine.hasPending {
            _ = machine.take(maxBytes: maxBytes, now: Self.now) { item in
                items.append(item)
                return 100
            }
        }
        return try items.map { item in
            switch item {
            case .envelope(let bytes): try Loggregator_V2_Envelope(serializedBytes: Array(bytes.readableBytesView))
            case .notice(let bytes): try Loggregator_V2_Envelope(serializedBytes: bytes)
            }
        }
    }

    func text(_ envelope: Loggregator_V2_Envelope) -> String {
        String(decoding: envelope.log.payload, as: UTF8.self)
    }

    @Test func deliveredEnvelopesAreWrittenInOrder() throws {
        var machine = TailStateMachine(app: "a", queueLimit: 10, zones: ["z1": .up])
        let (dropped, action) = try machine.delivered(lines(["1", "2", "3"]), parts: [], now: Self.now)
        #expect(dropped == 0 && action == .write)
        #expect(try written(&machine).map(text) == ["1", "2", "3"])
        #expect(!machine.hasPending)
    }

    /// A reader that falls behind loses the oldest lines and is told how
    /// many in one L10 notice, before the lines it still gets.
    @Test func overflowDropsTheOldestAndOneNoticeTellsHowMany() throws {
        var machine = TailStateMachine(app: "a", queueLimit: 3, zones: ["z1": .up])
        let first = try machine.delivered(lines(["1", "2"]), parts: [], now: Self.now)
        let second = try machine.delivered(lines(["3", "4", "5", "6"]), parts: [], now: Self.now + 5)
        #expect(first.dropped == 0 && second.dropped == 3)
        let out = try written(&machine)
        #expect(out.count == 4)
        #expect(out[0].tags["sluice_notice"] == "dropped" && out[0].tags["source_type"] == "SLUICE")
        #expect(text(out[0]).hasPrefix("Error L10 (output buffer overflow): 3 messages dropped since "))
        #expect(out[1...].map(text) == ["4", "5", "6"])
        // Told once: nothing more about it later.
        _ = try machine.delivered(lines(["7"]), parts: [], now: Self.now)
        #expect(try written(&machine).map(text) == ["7"])
    }

    /// A part sent again after a failure (through another server or zone)
    /// is skipped; a new part of the same sender is not.
    @Test func aResentPartIsSkipped() throws {
        var machine = TailStateMachine(app: "a", queueLimit: 100, zones: ["z1": .up])
        let parts = [BatchPart(sender: 5, sequence: 1, count: 2), BatchPart(sender: 5, sequence: 2, count: 1)]
        _ = try machine.delivered(lines(["1a", "1b", "2"]), parts: parts, now: Self.now)
        _ = try machine.delivered(
            lines(["2", "3"]),
            parts: [BatchPart(sender: 5, sequence: 2, count: 1), BatchPart(sender: 5, sequence: 3, count: 1)],
            now: Self.now)
        #expect(try written(&machine).map(text) == ["1a", "1b", "2", "3"])
        // Identical lines of different frames are different lines.
        _ = try machine.delivered(lines(["same"]), parts: [BatchPart(sender: 5, sequence: 4, count: 1)], now: Self.now)
        _ = try machine.delivered(lines(["same"]), parts: [BatchPart(sender: 5, sequence: 5, count: 1)], now: Self.now)
        #expect(try written(&machine).map(text) == ["same", "same"])
    }

    /// A zone notice waiting in the queue is not what overflow lets go.
    @Test func overflowKeepsAZoneNoticeAndDropsLines() throws {
        var machine = TailStateMachine(app: "a", queueLimit: 3, zones: ["z1": .up, "z2": .up])
        _ = machine.zoneChanged("z2", to: .down, lost: "x", now: Self.now)
        let (dropped, _) = try machine.delivered(lines(["1", "2", "3", "4"]), parts: [], now: Self.now)
        #expect(dropped == 2)
        let out = try written(&machine).map(text)
        #expect(out.count == 4)
        #expect(out[0].hasPrefix("Error L10 (output buffer overflow): 2 messages dropped since "))
        #expect(out[1].hasPrefix("Sluice: zone z2 is not answering"))
        #expect(out[2...] == ["3", "4"])
    }

    @Test func aZoneGoneThenBackIsToldOnceEach() throws {
        var machine = TailStateMachine(app: "a", queueLimit: 100, zones: ["z1": .up, "z2": .up])
        #expect(machine.zoneChanged("z2", to: .partial, lost: "10.0.0.3:9001", now: Self.now) == .none)
        #expect(machine.zoneChanged("z2", to: .down, lost: "10.0.0.4:9001", now: Self.now) == .write)
        #expect(machine.zoneChanged("z2", to: .down, lost: "10.0.0.4:9001", now: Self.now) == .none)
        let gone = try written(&machine)
        #expect(gone.count == 1 && gone[0].tags["sluice_notice"] == "zone")
        #expect(text(gone[0]) == "Sluice: zone z2 is not answering (lost 10.0.0.4:9001); its lines are missing until it is back")
        #expect(machine.zoneChanged("z2", to: .partial, lost: "10.0.0.4:9001", now: Self.now) == .none)
        #expect(machine.zoneChanged("z2", to: .up, lost: "10.0.0.4:9001", now: Self.now) == .write)
        #expect(try written(&machine).map(text) == ["Sluice: zone z2 is back; its live lines resume"])
        // Up again without having been told it was down: nothing to say.
        #expect(machine.zoneChanged("z1", to: .up, lost: "x", now: Self.now) == .none)
    }

    @Test func takeStopsNearItsByteBudgetAndGoesOnNextTime() throws {
        var machine = TailStateMachine(app: "a", queueLimit: 100, zones: [:])
        _ = try machine.delivered(lines((1...10).map(String.init)), parts: [], now: Self.now)
        var first = 0
        let sent = machine.take(maxBytes: 250, now: Self.now) { _ in
            first += 1
            return 100
        }
        #expect(sent == 3 && first == 3)
        #expect(machine.queued == 7 && machine.hasPending)
    }

    /// The close handshake: the reader's close is answered once, with its
    /// status code, and nothing is written after it.
    @Test func closeHandshake() throws {
        var machine = TailStateMachine(app: "a", queueLimit: 100, zones: [:])
        _ = try machine.delivered(lines(["pending"]), parts: [], now: Self.now)
        #expect(machine.pingDue() == .sendPing)
        #expect(machine.pingReceived(ByteBuffer(string: "p")) == .sendPong(ByteBuffer(string: "p")))
        #expect(machine.closeReceived(ByteBuffer(bytes: [0x03, 0xE8, 0x62, 0x79, 0x65])) == .sendCloseThenClose(ByteBuffer(bytes: [0x03, 0xE8])))
        #expect(!machine.hasPending)
        #expect(try machine.delivered(lines(["late"]), parts: [], now: Self.now) == (0, .none))
        #expect(machine.pingDue() == .none)
        #expect(machine.closeReceived(ByteBuffer()) == .close)
        machine.closed()
        #expect(machine.closeReceived(ByteBuffer()) == .none)
    }

    @Test func aMalformedBatchIsRefusedWhole() throws {
        var machine = TailStateMachine(app: "a", queueLimit: 100, zones: [:])
        var batch = try lines(["1"])
        batch.writeBytes([0x0A, 0x7F])
        #expect(throws: WireError.self) { try machine.delivered(batch, parts: [], now: Self.now) }
        #expect(!machine.hasPending)
    }
}
