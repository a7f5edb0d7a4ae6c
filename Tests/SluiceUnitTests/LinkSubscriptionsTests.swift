import NIOCore
import SluiceWire
import Testing

@testable import SluiceController

/// A link's subscriptions: one per app for all its local readers, one per
/// firehose reader, and a departed firehose reader's share handed on.
@Suite struct LinkSubscriptionsTests {
    final class Reader: LinkSubscriber, @unchecked Sendable {
        func deliver(batch: ByteBuffer, parts: [BatchPart]) {}
        func linkChanged(_ link: ServerLink) {}
    }

    @Test func appReadersShareOneSubscriptionAndFirehoseReadersEachHaveOne() {
        var subscriptions = LinkSubscriptions()
        let (first, created) = subscriptions.add(.app("a"), reader: Reader())
        let (_, again) = subscriptions.add(.app("a"), reader: Reader())
        #expect(created != nil && again == nil)
        let (_, nozzle1) = subscriptions.add(.firehose(subscription: "n"), reader: Reader())
        let (_, nozzle2) = subscriptions.add(.firehose(subscription: "n"), reader: Reader())
        #expect(nozzle1 != nil && nozzle2 != nil && nozzle1 != nozzle2)
        #expect(subscriptions.all.count == 3)
        #expect(subscriptions.remove(reader: first) == nil, "the app has another reader")
    }

    @Test func aDepartedFirehoseReadersShareGoesToAnotherReaderOfItsID() throws {
        var subscriptions = LinkSubscriptions()
        let stay = Reader()
        let other = Reader()
        let (leaver, leaverSubscription) = subscriptions.add(.firehose(subscription: "n"), reader: Reader())
        _ = subscriptions.add(.firehose(subscription: "n"), reader: stay)
        _ = subscriptions.add(.firehose(subscription: "m"), reader: other)
        let removed = subscriptions.remove(reader: leaver)
        let ended = try #require(removed)
        #expect(ended.id == leaverSubscription && ended.target == .firehose(subscription: "n"))
        #expect(subscriptions.readers(of: ended.id) == nil)
        #expect(subscriptions.heir(of: ended.id) === stay)
        // An app reader's subscription has no heir; a new connection forgets.
        let (appReader, appSubscription) = subscriptions.add(.app("a"), reader: Reader())
        _ = subscriptions.remove(reader: appReader)
        #expect(subscriptions.heir(of: appSubscription!) == nil)
        subscriptions.connected()
        #expect(subscriptions.heir(of: ended.id) == nil)
    }
}
