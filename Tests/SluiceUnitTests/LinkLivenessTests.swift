import NIOCore
import SluiceTransport
import Testing

/// `LinkLiveness`: heartbeats on an idle link, and when a silent peer is dead.
@Suite struct LinkLivenessTests {
    static let settings = LinkLiveness.Settings(
        heartbeat: .milliseconds(500), silence: .seconds(1), checkInterval: .milliseconds(250))
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func anIdleLinkThatIsAnsweredProbesEveryHalfSecondAndStaysUp() {
        var liveness = LinkLiveness(Self.settings, now: Self.start)
        var actions: [Int64] = []
        var ms: Int64 = 250
        while ms <= 3000 {
            let now = Self.start + .milliseconds(ms)
            let action = liveness.check(now: now, waiting: false)
            #expect(action != .dead(silentFor: .zero))
            if action == .probe {
                actions.append(ms)
                // The probe goes out and the peer answers at once.
                liveness.sent(now: now)
                liveness.heard(now: now)
            }
            ms += 250
        }
        #expect(actions == [500, 1000, 1500, 2000, 2500, 3000])
    }

    @Test func aLinkThatOnlyReadsStillProbesSoThatItsPeerHearsIt() {
        var liveness = LinkLiveness(Self.settings, now: Self.start)
        var probes: [Int64] = []
        var ms: Int64 = 250
        while ms <= 2000 {
            let now = Self.start + .milliseconds(ms)
            // The peer streams all the time; this side sends nothing but probes.
            liveness.heard(now: now)
            if liveness.check(now: now, waiting: false) == .probe {
                probes.append(ms)
                liveness.sent(now: now)
            }
            ms += 250
        }
        #expect(probes == [500, 1000, 1500, 2000])
    }

    @Test func anIdleLinkCutOffSilentlyIsDeadWithinTwoSeconds() {
        var liveness = LinkLiveness(Self.settings, now: Self.start)
        var probed: Int64?
        var dead: (ms: Int64, silent: TimeAmount)?
        var ms: Int64 = 250
        while ms <= 5000, dead == nil {
            let now = Self.start + .milliseconds(ms)
            switch liveness.check(now: now, waiting: probed != nil) {
            case .probe:
                probed = ms
                liveness.startedWaiting(now: now)
            case .dead(let silent):
                dead = (ms, silent)
            case .none:
                break
            }
            ms += 250
        }
        #expect(probed == 500)
        // A second and a quarter after the probe went out unanswered.
        #expect(dead?.ms == 1750)
        #expect(dead?.silent == .milliseconds(1250))
    }

    @Test func aBusyLinkIsDeadASecondAfterItLastHeardWhileOwed() {
        var liveness = LinkLiveness(Self.settings, now: Self.start)
        // Batches go out all the time; answers stop after 2 s.
        liveness.startedWaiting(now: Self.start)
        var dead: (ms: Int64, action: LinkLiveness.Action)?
        var ms: Int64 = 250
        while ms <= 5000, dead == nil {
            let now = Self.start + .milliseconds(ms)
            if ms <= 2000 { liveness.heard(now: now) }
            let action = liveness.check(now: now, waiting: true)
            if action != .none { dead = (ms, action) }
            ms += 250
        }
        #expect(dead?.ms == 3250)
        #expect(dead?.action == .dead(silentFor: .milliseconds(1250)))
    }

    @Test func aLateCheckCountsNothingAgainstThePeer() {
        var liveness = LinkLiveness(Self.settings, now: Self.start)
        liveness.startedWaiting(now: Self.start)
        // The event loop was busy for 3 s: the first check after it is late.
        #expect(liveness.check(now: Self.start + .seconds(3), waiting: true) == .none)
        // On time again: now the silence counts.
        #expect(liveness.check(now: Self.start + .milliseconds(3250), waiting: true) == .dead(silentFor: .milliseconds(3250)))
    }

    @Test func aNewConnectionStartsTheCountAfresh() {
        var liveness = LinkLiveness(Self.settings, now: Self.start)
        #expect(liveness.check(now: Self.start + .milliseconds(250), waiting: true) == .none)
        liveness.connected(now: Self.start + .milliseconds(400))
        #expect(liveness.check(now: Self.start + .milliseconds(500), waiting: true) == .none)
        #expect(liveness.check(now: Self.start + .milliseconds(750), waiting: true) == .none)
        #expect(liveness.check(now: Self.start + .milliseconds(1000), waiting: true) == .none)
        #expect(liveness.check(now: Self.start + .milliseconds(1250), waiting: true) == .none)
        #expect(liveness.check(now: Self.start + .milliseconds(1500), waiting: true) == .dead(silentFor: .milliseconds(1100)))
    }
}
