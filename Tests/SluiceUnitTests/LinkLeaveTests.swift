import Testing

@testable import SluiceController

/// `LinkLeave`: what a controller's link does when its server leaves gracefully.
@Suite struct LinkLeaveTests {
    @Test func anOwnZoneServerIsDrainedThenItsHistoryTakenThenItIsRoutedPastAndClosed() {
        var leave = LinkLeave()
        // Batches still wait for acknowledgements: hold new ones, ask for nothing yet.
        #expect(leave.serverLeaving(ownZone: true, windowEmpty: false) == [])
        #expect(leave.isLeaving)
        #expect(!leave.leftGracefully)
        #expect(leave.windowEmptied() == [.requestHandover])
        // A second emptying (a probe's acknowledgement) asks nothing more.
        #expect(leave.windowEmptied() == [])
        // Routed past only once its history is on its way: history first.
        #expect(leave.handedOver() == [.stopRouting, .close])
        #expect(leave.leftGracefully)
        #expect(leave.handedOver() == [])
    }

    @Test func withNothingOutstandingTheHistoryIsAskedForAtOnce() {
        var leave = LinkLeave()
        #expect(leave.serverLeaving(ownZone: true, windowEmpty: true) == [.requestHandover])
        #expect(leave.state == .handingOver)
    }

    @Test func anotherZonesServerLeavingIsOnlyRemembered() {
        var leave = LinkLeave()
        #expect(leave.serverLeaving(ownZone: false, windowEmpty: false) == [])
        #expect(!leave.isLeaving)
        #expect(leave.leftGracefully)
        #expect(leave.windowEmptied() == [])
    }

    @Test func aLinkLostBeforeTheHandoverIsNotGracefulAndANewConnectionServesAgain() {
        var leave = LinkLeave()
        _ = leave.serverLeaving(ownZone: true, windowEmpty: true)
        #expect(!leave.leftGracefully)
        leave.connected()
        #expect(leave.state == .serving)
        #expect(!leave.isLeaving)
        // A LEAVING repeated on the same connection changes nothing.
        _ = leave.serverLeaving(ownZone: true, windowEmpty: false)
        #expect(leave.serverLeaving(ownZone: true, windowEmpty: true) == [])
    }
}
