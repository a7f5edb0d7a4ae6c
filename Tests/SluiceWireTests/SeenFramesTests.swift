import Testing

@testable import SluiceWire

/// Inserts the pair and expects `new` (true: not taken in before).
func expectInsert(
    _ seen: inout SeenFrames, sender: UInt64, sequence: UInt64, new: Bool,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let result = seen.insert(sender: sender, sequence: sequence)
    #expect(result == new, "sender \(sender) sequence \(sequence)", sourceLocation: sourceLocation)
}

/// `SeenFrames`: which (sender, sequence) pairs a receiver already took in.
@Suite struct SeenFramesTests {
    static let window = SeenFrames.window

    @Test func secondTimeIsADuplicate() {
        var seen = SeenFrames()
        expectInsert(&seen, sender: 7, sequence: 1, new: true)
        expectInsert(&seen, sender: 7, sequence: 1, new: false)
        expectInsert(&seen, sender: 7, sequence: 2, new: true)
        expectInsert(&seen, sender: 7, sequence: 2, new: false)
        expectInsert(&seen, sender: 7, sequence: 1, new: false)
    }

    @Test func senderZeroIsNeverADuplicate() {
        var seen = SeenFrames()
        for _ in 0..<3 { expectInsert(&seen, sender: 0, sequence: 5, new: true) }
        #expect(seen.senderCount == 0)
    }

    @Test func sendersAreIndependent() {
        var seen = SeenFrames()
        expectInsert(&seen, sender: 1, sequence: 10, new: true)
        expectInsert(&seen, sender: 2, sequence: 10, new: true)
        expectInsert(&seen, sender: 1, sequence: 10, new: false)
        expectInsert(&seen, sender: 2, sequence: 10, new: false)
        #expect(seen.senderCount == 2)
    }

    @Test func outOfOrderWithinTheWindow() {
        var seen = SeenFrames()
        expectInsert(&seen, sender: 1, sequence: 100, new: true)
        expectInsert(&seen, sender: 1, sequence: 50, new: true)
        expectInsert(&seen, sender: 1, sequence: 99, new: true)
        expectInsert(&seen, sender: 1, sequence: 50, new: false)
        expectInsert(&seen, sender: 1, sequence: 99, new: false)
        expectInsert(&seen, sender: 1, sequence: 98, new: true)
    }

    @Test func olderThanTheWindowCountsAsSeen() {
        var seen = SeenFrames()
        expectInsert(&seen, sender: 1, sequence: 200_000, new: true)
        expectInsert(&seen, sender: 1, sequence: 200_000 - Self.window - 1, new: false)
        expectInsert(&seen, sender: 1, sequence: 0, new: false)
        expectInsert(&seen, sender: 1, sequence: 200_000 - Self.window + 1, new: true)
    }

    @Test func reusedSlotsAreCleared() {
        // A big jump (more than the window) and a small one: a sequence whose
        // slot an old sequence used must not look seen.
        var seen = SeenFrames()
        expectInsert(&seen, sender: 1, sequence: 10, new: true)
        expectInsert(&seen, sender: 1, sequence: 20, new: true)
        expectInsert(&seen, sender: 1, sequence: 70_000, new: true)
        expectInsert(&seen, sender: 1, sequence: 20 + Self.window, new: true)

        var small = SeenFrames()
        expectInsert(&small, sender: 1, sequence: 10, new: true)
        expectInsert(&small, sender: 1, sequence: 20, new: true)
        expectInsert(&small, sender: 1, sequence: 30 + Self.window - 100, new: true)
        expectInsert(&small, sender: 1, sequence: 20 + Self.window, new: true)
        expectInsert(&small, sender: 1, sequence: 20 + Self.window, new: false)
    }

    @Test func matchesASetOfSeenPairs() {
        // A reference model: a pair is new unless it was inserted before or
        // is far behind the newest; the exact window edge is left alone.
        var rng = SeededGenerator(seed: 42)
        var seen = SeenFrames()
        var inserted: [UInt64: Set<UInt64>] = [:]
        var highest: [UInt64: UInt64] = [:]
        var duplicates = 0
        for _ in 0..<30_000 {
            let sender = UInt64.random(in: 1...3, using: &rng)
            let top = highest[sender] ?? 1_000_000
            let sequence: UInt64
            switch Int.random(in: 0..<10, using: &rng) {
            case 0: sequence = top + UInt64.random(in: 1...200_000, using: &rng)
            case 1: sequence = top - min(top, UInt64.random(in: 60_000...80_000, using: &rng))
            default: sequence = top + UInt64.random(in: 0...40, using: &rng) - 30
            }
            let result = seen.insert(sender: sender, sequence: sequence)
            let newest = highest[sender] ?? sequence
            if highest[sender] != nil, newest > sequence, newest - sequence == Self.window {
                // At the edge either answer is acceptable.
            } else if highest[sender] != nil, newest > sequence, newest - sequence > Self.window {
                #expect(!result, "sender \(sender) sequence \(sequence) is older than the window below \(newest)")
            } else {
                let expected = !(inserted[sender]?.contains(sequence) ?? false)
                #expect(result == expected, "sender \(sender) sequence \(sequence), newest \(newest)")
            }
            if !result { duplicates += 1 }
            inserted[sender, default: []].insert(sequence)
            highest[sender] = max(newest, sequence)
        }
        #expect(duplicates > 1000)
        #expect(seen.senderCount == 3)
    }

    @Test func sequenceUpToUInt64MaxDoesNotCrash() async {
        // The frame's sequence number comes from the peer.
        await #expect(processExitsWith: .success) {
            var seen = SeenFrames()
            _ = seen.insert(sender: 1, sequence: UInt64.max - 1)
            _ = seen.insert(sender: 1, sequence: UInt64.max)
        }
        await #expect(processExitsWith: .success) {
            var seen = SeenFrames()
            _ = seen.insert(sender: 1, sequence: UInt64.max)
            _ = seen.insert(sender: 1, sequence: UInt64.max)
            _ = seen.insert(sender: 1, sequence: 0)
        }
    }

    @Test func forgetsTheSenderHeardFromLeastRecentlyPastTheBound() {
        var seen = SeenFrames(maxSenders: 3)
        for sender: UInt64 in 1...3 { expectInsert(&seen, sender: sender, sequence: 1, new: true) }
        // Sender 1 is heard from again, so 2 is now the least recent.
        expectInsert(&seen, sender: 1, sequence: 2, new: true)
        expectInsert(&seen, sender: 4, sequence: 1, new: true)
        #expect(seen.senderCount == 3)
        expectInsert(&seen, sender: 1, sequence: 1, new: false)
        expectInsert(&seen, sender: 3, sequence: 1, new: false)
        expectInsert(&seen, sender: 4, sequence: 1, new: false)
        // Sender 2 was forgotten: its resend counts as new.
        expectInsert(&seen, sender: 2, sequence: 1, new: true)
        #expect(seen.senderCount == 3)
    }
}
