import CoreMetrics
import SluiceWire

/// Metrics of live readers, made once per controller.
struct TailMetrics: Sendable {
    let readers: Meter
    let sent: Counter
    let dropped: Counter
    let undecodable: Counter
    let refused: [ReaderCounts.Refusal: Counter]

    init(factory: any MetricsFactory) {
        readers = Meter(label: MetricNames.streamReaders, factory: factory)
        sent = Counter(label: MetricNames.streamSent, factory: factory)
        dropped = Counter(label: MetricNames.streamDropped, dimensions: [("reason", "slow_reader")], factory: factory)
        undecodable = Counter(label: MetricNames.streamDropped, dimensions: [("reason", "undecodable")], factory: factory)
        refused = [
            .total: Counter(label: MetricNames.streamRefused, dimensions: [("reason", "total")], factory: factory),
            .perApp: Counter(label: MetricNames.streamRefused, dimensions: [("reason", "per_app")], factory: factory),
        ]
    }
}
