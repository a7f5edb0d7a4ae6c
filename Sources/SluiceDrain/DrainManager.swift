import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import SluiceBindings
import SluiceProto
import SluiceTransport
import SluiceWire

/// Keeps a buffer server in step with the bindings store: the apps' own
/// log rate limits, and the drains, a runner per binding, started when the binding appears and stopped when it
/// goes. Every server runs every binding's runner, so that whichever server
/// holds an app's envelopes (its owner, or a stand-in after a failover)
/// drains them; a runner whose app sends nothing to this server stays idle
/// and opens no connection.
public final class DrainManager: Service, @unchecked Sendable {
    private let store: any TapPoint
    private let bindings: any BindingStore
    private let settings: DrainRunner.Settings
    private let group: any EventLoopGroup
    private let logger: Logger
    private let metrics: any MetricsFactory

    private let state = NIOLockedValueBox<State>(State())
    private struct State {
        var runners: [String: (binding: DrainBinding, runner: DrainRunner, task: Task<Void, Never>)] = [:]
        var watcher: Task<Void, Never>? = nil
        var applied = 0
    }

    public init(
        store: any TapPoint, bindings: any BindingStore, settings: DrainRunner.Settings = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger,
        metrics: any MetricsFactory = MetricsSystem.factory
    ) {
        self.store = store
        self.bindings = bindings
        self.settings = settings
        self.group = group
        self.logger = logger
        self.metrics = metrics
    }

    /// Starts watching the bindings.
    public func start() {
        let storeErrors = Counter(label: MetricNames.serverBindingsStoreErrors, factory: metrics)
        let task = Task { [self] in
            while !Task.isCancelled {
                do {
                    for try await current in bindings.watch() { apply(current) }
                } catch {
                    // The drains go on as last read.
                    storeErrors.increment()
                    logger.error(
                        "reading drain bindings failed; the drains go on as they were, trying again in 1 s",
                        metadata: [LogKeys.error: "\(error)"])
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        state.withLockedValue { $0.watcher = task }
    }

    public func run() async throws {
        start()
        try? await gracefulShutdown()
        await flush(within: settings.shutdownTimeout)
        await shutdown()
    }

    /// A graceful stop's first half: each drain keeps sending until what it
    /// holds is delivered, or `timeout` passes (an endpoint that is down
    /// keeps its lines until then; `shutdown` counts what is left as
    /// dropped). Returns whether every drain emptied.
    @discardableResult
    public func flush(within timeout: Duration) async -> Bool {
        let runners = self.runners
        let deadline = ContinuousClock.now + timeout
        while runners.contains(where: { $0.queuedCount > 0 }) {
            guard ContinuousClock.now < deadline else {
                logger.warning(
                    "shutdown timeout: drains still hold lines",
                    metadata: [LogKeys.count: "\(runners.reduce(0) { $0 + $1.queuedCount })"])
                return false
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// Stops watching and stops every runner; what they still held is
    /// lost, counted and logged (`flush` first delivers what it can).
    public func shutdown() async {
        let (watcher, runners) = state.withLockedValue { state in
            defer {
                state.watcher = nil
                state.runners = [:]
            }
            return (state.watcher, Array(state.runners.values))
        }
        watcher?.cancel()
        await watcher?.value
        store.setTaps([:])
        for entry in runners { entry.runner.stop() }
        for entry in runners { await entry.task.value }
    }

    /// The runners now, for tests and status.
    /// How each drain this server runs stands.
    public func statuses() -> [Sluice_V1_DrainStatus] {
        runners.map(\.status)
    }

    public var runners: [DrainRunner] {
        state.withLockedValue { $0.runners.values.map(\.runner) }
    }

    /// How many times a set of bindings was applied.
    public var appliedCount: Int { state.withLockedValue { $0.applied } }

    func apply(_ set: BindingSet) {
        let current = set.drains
        let store = self.store
        store.setAppLogRateLimits(set.logRateLimits)
        var started: [DrainBinding] = []
        var stopped: [(runner: DrainRunner, replaced: Bool)] = []
        let byApp: [String: [any EnvelopeTap]] = state.withLockedValue { state in
            let wanted = Dictionary(current.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            for (id, entry) in state.runners where wanted[id] != entry.binding {
                stopped.append((entry.runner, false))
                state.runners[id] = nil
            }
            for binding in current where state.runners[binding.id] == nil {
                let url: DrainURL
                do {
                    url = try DrainURL(parsing: binding.url)
                } catch {
                    logger.error(
                        "drain binding has a bad URL; it is skipped",
                        metadata: [LogKeys.drain: "\(binding.id)", LogKeys.appID: "\(binding.app)", LogKeys.reason: "\(error)"])
                    continue
                }
                do {
                    let runner = try DrainRunner(
                        id: binding.id, app: binding.app, name: binding.name, url: url, settings: settings,
                        group: group, logger: logger, metrics: metrics,
                        report: { app, text in store.ingestNotice(app: app, text: text) })
                    let task = Task { await runner.run() }
                    state.runners[binding.id] = (binding, runner, task)
                    started.append(binding)
                } catch {
                    logger.error(
                        "drain could not be set up; it is skipped",
                        metadata: [LogKeys.drain: "\(binding.id)", LogKeys.appID: "\(binding.app)", LogKeys.error: "\(error)"])
                }
            }
            // Replaced: a new runner of the same id started (its series are the same).
            stopped = stopped.map { ($0.runner, state.runners[$0.runner.id] != nil) }
            state.applied += 1
            return Dictionary(grouping: state.runners.values.map(\.runner), by: \.app).mapValues { $0.map { $0 as any EnvelopeTap } }
        }
        store.setTaps(byApp)
        for (runner, replaced) in stopped {
            runner.stop()
            // A binding changed in place has a new runner with the same
            // series: only a removed one's gauges go.
            if !replaced { runner.removeGauges() }
            logger.info("drain removed", metadata: [LogKeys.drain: "\(runner.id)", LogKeys.appID: "\(runner.app)"])
        }
        for binding in started {
            logger.info(
                "drain added",
                metadata: [LogKeys.drain: "\(binding.id)", LogKeys.appID: "\(binding.app)", LogKeys.url: "\(binding.redactedURL)"])
        }
    }
}
