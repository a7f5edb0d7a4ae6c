import CoreMetrics
import NIOConcurrencyHelpers
import SluiceWire

/// How many of a zone's buffer servers a controller knows and how many
/// answer now (`sluice_controller_zone_servers{zone}` and
/// `…_zone_servers_up{zone}`), shared by the zone's links: each counts
/// itself in when its server answers and out when it stops.
final class ZoneServerCount: Sendable {
    private let up = NIOLockedValueBox(0)
    private let known: NIOLockedValueBox<Int>
    private let upGauge: Gauge
    private let knownGauge: Gauge

    init(zone: String, servers: Int, metrics: any MetricsFactory) {
        upGauge = Gauge(label: MetricNames.controllerZoneServersUp, dimensions: [("zone", zone)], factory: metrics)
        knownGauge = Gauge(label: MetricNames.controllerZoneServers, dimensions: [("zone", zone)], factory: metrics)
        known = NIOLockedValueBox(servers)
        upGauge.record(0)
        knownGauge.record(servers)
    }

    /// Servers up now.
    var count: Int { up.withLockedValue { $0 } }

    /// A server found by DNS took a slot (1), or gave one back (-1).
    /// (Each gauge is written under its count's lock: two links changing
    /// at once on two loops cannot leave it at the older value.)
    func changedKnown(by delta: Int) {
        known.withLockedValue { count in
            count += delta
            knownGauge.record(count)
        }
    }

    func changed(by delta: Int) {
        up.withLockedValue { count in
            count += delta
            upGauge.record(count)
        }
    }
}
