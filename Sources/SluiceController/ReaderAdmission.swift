import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SluiceWire

/// The controller's reader limits as every kind of live reader meets them
/// (a websocket tail, a firehose reader, a server-sent-events stream): a
/// `ReaderCounts` behind a lock, the refusal counted and logged at most
/// once in 10 s for each limit, and the 429 to answer with.
final class ReaderAdmission: Sendable {
    private let counts: NIOLockedValueBox<ReaderCounts>
    private let metrics: TailMetrics
    private let logger: Logger

    init(limits: ReaderCounts.Limits, metrics: TailMetrics, logger: Logger) {
        counts = NIOLockedValueBox(ReaderCounts(limits: limits))
        self.metrics = metrics
        self.logger = logger
    }

    /// Takes one reader of each target, or none: the refusal to answer if
    /// a limit is reached.
    func admit(_ targets: [StreamTarget], remote: String) -> APIRoute.Failure? {
        let outcome = counts.withLockedValue { counts -> (ReaderCounts.Refusal, Bool, StreamTarget, Int)? in
            var taken: [StreamTarget] = []
            for target in targets {
                if let (refusal, log) = counts.admit(target, now: .now()) {
                    let readers = refusal == .total ? counts.total : counts.count(of: target)
                    for earlier in taken { counts.release(earlier) }
                    return (refusal, log, target, readers)
                }
                taken.append(target)
            }
            return nil
        }
        guard let (refusal, log, target, readers) = outcome else { return nil }
        metrics.refused[refusal]!.increment()
        let failure = APIRoute.tooManyReaders(refusal, target: target, readers: readers)
        if log {
            logger.warning("refusing a reader: \(failure.message)", metadata: [LogKeys.remote: "\(remote)"])
        }
        return failure
    }

    /// Readers taken by `admit` are gone.
    func release(_ targets: [StreamTarget]) {
        counts.withLockedValue { counts in
            for target in targets { counts.release(target) }
        }
    }
}
