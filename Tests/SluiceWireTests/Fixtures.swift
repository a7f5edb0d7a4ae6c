import Foundation
import SluiceProto
import SwiftProtobuf

/// A small seeded generator (SplitMix64) so that "random" tests are repeatable.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Envelope builders shared by the tests.
enum Fixture {
    static func log(
        source: String = "app-1",
        timestamp: Int64 = 1_541_999_631_950_000_000,
        payload: [UInt8] = Array("hello".utf8),
        type: Loggregator_V2_Log.TypeEnum = .out,
        instance: String = "0",
        tags: [String: String] = ["source_type": "APP/PROC/WEB"]
    ) -> Loggregator_V2_Envelope {
        var envelope = Loggregator_V2_Envelope()
        envelope.sourceID = source
        envelope.timestamp = timestamp
        envelope.instanceID = instance
        envelope.tags = tags
        var log = Loggregator_V2_Log()
        log.payload = Data(payload)
        log.type = type
        envelope.log = log
        return envelope
    }

    static func counter(source: String = "app-2", timestamp: Int64 = 42) -> Loggregator_V2_Envelope {
        var envelope = Loggregator_V2_Envelope()
        envelope.sourceID = source
        envelope.timestamp = timestamp
        var counter = Loggregator_V2_Counter()
        counter.name = "requests"
        counter.delta = 3
        counter.total = UInt64.max
        envelope.counter = counter
        return envelope
    }

    static func gauge(source: String = "app-3", timestamp: Int64 = 7) -> Loggregator_V2_Envelope {
        var envelope = Loggregator_V2_Envelope()
        envelope.sourceID = source
        envelope.timestamp = timestamp
        envelope.instanceID = "2"
        var gauge = Loggregator_V2_Gauge()
        for (name, unit, value) in [("cpu", "percentage", 12.5), ("memory", "bytes", 1.5e9), ("disk", "bytes", 0.0)] {
            var metric = Loggregator_V2_GaugeValue()
            metric.unit = unit
            metric.value = value
            gauge.metrics[name] = metric
        }
        envelope.gauge = gauge
        return envelope
    }

    static func timer(source: String = "app-4", timestamp: Int64 = -5) -> Loggregator_V2_Envelope {
        var envelope = Loggregator_V2_Envelope()
        envelope.sourceID = source
        envelope.timestamp = timestamp
        var timer = Loggregator_V2_Timer()
        timer.name = "http"
        timer.start = 1_541_999_631_000_000_000
        timer.stop = 1_541_999_631_250_000_000
        envelope.timer = timer
        return envelope
    }

    static func event(source: String = "app-5", timestamp: Int64 = 1) -> Loggregator_V2_Envelope {
        var envelope = Loggregator_V2_Envelope()
        envelope.sourceID = source
        envelope.timestamp = timestamp
        var event = Loggregator_V2_Event()
        event.title = "app crashed"
        event.body = "exit status 137"
        envelope.event = event
        return envelope
    }

    static func text(_ value: String) -> Loggregator_V2_Value {
        var v = Loggregator_V2_Value()
        v.text = value
        return v
    }

    static func integer(_ value: Int64) -> Loggregator_V2_Value {
        var v = Loggregator_V2_Value()
        v.integer = value
        return v
    }

    static func decimal(_ value: Double) -> Loggregator_V2_Value {
        var v = Loggregator_V2_Value()
        v.decimal = value
        return v
    }

    static func batch(_ envelopes: [Loggregator_V2_Envelope]) throws -> [UInt8] {
        var batch = Loggregator_V2_EnvelopeBatch()
        batch.batch = envelopes
        return try batch.serializedBytes()
    }
}
