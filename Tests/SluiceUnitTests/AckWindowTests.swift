import SluiceTransport
import Testing

@testable import SluiceController

/// `AckWindow`: what a sender keeps until acknowledged, and what it writes
/// again after a failure.
@Suite struct AckWindowTests {
    @Test func itemsAreNumberedAndWrittenOnlyWhileConnected() {
        var window = AckWindow<String>(maxBytes: 100)
        #expect(window.send("a", bytes: 10) == nil)  // no connection yet: waits
        #expect(window.nextSequence == 2)
        #expect(window.connected().map(\.sequence) == [1])
        #expect(window.send("b", bytes: 10) == 2)
        #expect(window.count == 2 && window.bytes == 20)
    }

    @Test func afterALostConnectionEverythingUnacknowledgedIsResentInOrderWithItsNumbers() {
        var window = AckWindow<String>(maxBytes: 1000)
        _ = window.connected()
        for item in ["a", "b", "c", "d"] { _ = window.send(item, bytes: 1) }
        #expect(window.acknowledge(upTo: 2) == ["a", "b"])
        window.connectionLost()
        #expect(window.send("e", bytes: 1) == nil)  // waits for the next connection
        let resend = window.connected()
        #expect(resend.map(\.item) == ["c", "d", "e"])
        #expect(resend.map(\.sequence) == [3, 4, 5])
    }

    @Test func duplicateAndOlderAcknowledgementsReleaseNothing() {
        var window = AckWindow<Int>(maxBytes: 1000)
        _ = window.connected()
        for item in 1...5 { _ = window.send(item, bytes: 1) }
        #expect(window.acknowledge(upTo: 3) == [1, 2, 3])
        #expect(window.acknowledge(upTo: 3) == [])
        #expect(window.acknowledge(upTo: 1) == [])
        #expect(window.acknowledged == 3)
        #expect(window.acknowledge(upTo: 99) == [4, 5])  // past what was sent: all of it
        #expect(window.isEmpty && window.bytes == 0)
    }

    @Test func theByteBoundStopsTheSenderButOneItemAlwaysFits() {
        var window = AckWindow<Int>(maxBytes: 100)
        _ = window.connected()
        #expect(window.hasRoom)
        _ = window.send(1, bytes: 500)  // larger than the bound: still goes
        #expect(!window.hasRoom)
        _ = window.acknowledge(upTo: 1)
        #expect(window.hasRoom)
        _ = window.send(2, bytes: 60)
        #expect(window.hasRoom)
        _ = window.send(3, bytes: 60)
        #expect(!window.hasRoom && window.bytes == 120)
        _ = window.acknowledge(upTo: 2)
        #expect(window.hasRoom && window.bytes == 60)
    }

    @Test func removeAllHandsOverWhatIsUnacknowledgedOldestFirst() {
        var window = AckWindow<String>(maxBytes: 1000)
        _ = window.connected()
        for item in ["a", "b", "c"] { _ = window.send(item, bytes: 5) }
        _ = window.acknowledge(upTo: 1)
        window.connectionLost()
        #expect(window.removeAll() == ["b", "c"])
        #expect(window.isEmpty && window.bytes == 0)
        // Numbering goes on: a later item is never confused with an old one.
        #expect(window.nextSequence == 4)
    }
}

/// `IngressAcks`: when an emitter's frames are acknowledged.
@Suite struct IngressAcksTests {
    @Test func aFrameIsAcknowledgedWhenEveryServerTookItsPartAndInOrder() {
        var acks = IngressAcks()
        #expect(acks.routed(sequence: 1, parts: 2) == nil)
        #expect(acks.routed(sequence: 2, parts: 1) == nil)
        #expect(acks.partDone(2) == nil)  // frame 1 still waits
        #expect(acks.partDone(1) == nil)
        #expect(acks.partDone(1) == 2)  // both at once
        #expect(acks.waiting == 0)
    }

    @Test func aFrameWithNothingRoutableIsAcknowledgedAfterThoseBeforeIt() {
        var acks = IngressAcks()
        #expect(acks.routed(sequence: 1, parts: 1) == nil)
        #expect(acks.routed(sequence: 2, parts: 0) == nil)
        #expect(acks.partDone(1) == 2)
        #expect(acks.routed(sequence: 3, parts: 0) == 3)
    }

    @Test func aPartHandedToSeveralStandInsWaitsForEachOfThem() {
        var acks = IngressAcks()
        #expect(acks.routed(sequence: 5, parts: 1) == nil)
        #expect(acks.partRerouted(5, servers: 3) == nil)
        #expect(acks.partDone(5) == nil)
        #expect(acks.partDone(5) == nil)
        #expect(acks.partDone(5) == 5)
        // A late report about an acknowledged frame changes nothing.
        #expect(acks.partDone(5) == nil)
        #expect(acks.acknowledged == 5)
    }
}
