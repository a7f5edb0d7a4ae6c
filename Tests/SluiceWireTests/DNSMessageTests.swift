import SluiceWire
import Testing

/// DNS messages as a controller asks for its buffer servers and reads the
/// answers (RFC 1035, 2782, 6891).
struct DNSMessageTests {
    static func name(_ text: String) -> [UInt8] {
        text.split(separator: ".").flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) } + [0]
    }

    static func u16(_ value: Int) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }

    static func record(_ owner: [UInt8], type: Int, ttl: Int = 30, data: [UInt8]) -> [UInt8] {
        owner + u16(type) + u16(1) + u16(ttl >> 16) + u16(ttl & 0xFFFF) + u16(data.count) + data
    }

    static func answer(
        id: Int = 0x1234, flags: Int = 0x8180, question: [UInt8], answers: [[UInt8]], additional: [[UInt8]] = []
    ) -> [UInt8] {
        u16(id) + u16(flags) + u16(1) + u16(answers.count) + u16(0) + u16(additional.count) + question
            + answers.flatMap { $0 } + additional.flatMap { $0 }
    }

    static let srvQuestion = name("_sluice._tcp.z1.Sluice.test") + u16(33) + u16(1)

    @Test func aQueryAsksOneQuestionWithEDNS() throws {
        let query = try DNSMessage.query(id: 0xBEEF, name: "s1.sluice.test.", type: .srv)
        #expect(
            query
                == [0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1] + Self.name("s1.sluice.test") + [0, 33, 0, 1]
                + [0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0])
        #expect(throws: DNSError.self) { try DNSMessage.query(id: 1, name: "a..b", type: .a) }
        #expect(throws: DNSError.self) { try DNSMessage.query(id: 1, name: String(repeating: "x", count: 64), type: .a) }
    }

    @Test func anSRVAnswerWithCompressedNamesAndAddressesIsRead() throws {
        let target1 = Self.name("s1.sluice.test")
        let bytes = Self.answer(
            question: Self.srvQuestion,
            answers: [
                // Owner: a pointer to the question's name (offset 12).
                Self.record([0xC0, 12], type: 33, data: Self.u16(0) + Self.u16(5) + Self.u16(9001) + target1),
                Self.record([0xC0, 12], type: 33, data: Self.u16(0) + Self.u16(5) + Self.u16(9002) + Self.name("s2.sluice.test")),
            ],
            additional: [
                Self.record(Self.name("S1.sluice.test"), type: 1, data: [127, 0, 0, 1]),
                Self.record(Self.name("s2.sluice.test"), type: 28, data: [0xFD, 0] + Array(repeating: 0, count: 13) + [1]),
                Self.record([0], type: 41, data: []),
            ])
        let answer = try DNSMessage.parse(bytes)
        #expect(answer.id == 0x1234 && answer.rcode == 0 && !answer.truncated)
        #expect(
            answer.answers == [
                .init(name: "_sluice._tcp.z1.sluice.test", ttl: 30, data: .srv(priority: 0, weight: 5, port: 9001, target: "s1.sluice.test")),
                .init(name: "_sluice._tcp.z1.sluice.test", ttl: 30, data: .srv(priority: 0, weight: 5, port: 9002, target: "s2.sluice.test")),
            ])
        #expect(
            answer.additional == [
                .init(name: "s1.sluice.test", ttl: 30, data: .address("127.0.0.1")),
                .init(name: "s2.sluice.test", ttl: 30, data: .address("fd00:0:0:0:0:0:0:1")),
            ])
    }

    @Test func flagsAreRead() throws {
        let nxdomain = try DNSMessage.parse(Self.answer(flags: 0x8183, question: Self.srvQuestion, answers: []))
        #expect(nxdomain.rcode == 3 && nxdomain.answers.isEmpty)
        let truncated = try DNSMessage.parse(Self.answer(flags: 0x8380, question: Self.srvQuestion, answers: []))
        #expect(truncated.truncated)
    }

    @Test func malformedAnswersAreRefused() {
        func refused(_ bytes: [UInt8], _ reason: String) {
            do {
                _ = try DNSMessage.parse(bytes)
                Issue.record("taken: \(reason)")
            } catch {
                #expect(error.description.contains(reason), "\(error)")
            }
        }
        let good = Self.answer(
            question: Self.srvQuestion,
            answers: [Self.record([0xC0, 12], type: 1, data: [10, 0, 0, 1])])
        refused(Array(good.dropLast()), "runs past")
        refused(Self.answer(flags: 0x0100, question: Self.srvQuestion, answers: []), "not an answer")
        // A pointer to itself, and one forward.
        refused(Self.answer(question: Self.srvQuestion, answers: [Self.record([0xC0, 0x2D], type: 1, data: [10, 0, 0, 1])]), "point back")
        refused(Self.answer(question: Self.srvQuestion, answers: [Self.record([0xC0, 0x60], type: 1, data: [10, 0, 0, 1])]), "point back")
        refused(Self.answer(question: Self.srvQuestion, answers: [Self.record([0xC0, 12], type: 1, data: [10, 0, 1])]), "A record of 3 bytes")
        refused(Self.answer(question: Self.srvQuestion, answers: [Self.record([0x80, 1], type: 1, data: [10, 0, 0, 1])]), "unknown kind")
        // Pointers each further back would be fine; two that bounce are not.
        let head: [UInt8] = [0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]
        let bounce: [UInt8] = head + [0xC0, 14, 0xC0, 12] + Self.u16(1) + Self.u16(1) + [0xC0, 12]
            + Self.u16(1) + Self.u16(1) + Self.u16(0) + Self.u16(0) + Self.u16(4) + [1, 2, 3, 4]
        refused(bounce, "point back")
        let label: [UInt8] = [60] + Array(repeating: UInt8(ascii: "a"), count: 60)
        let long: [UInt8] = Array(repeating: label, count: 5).flatMap { $0 } + [0]
        refused(Self.answer(question: long + Self.u16(1) + Self.u16(1), answers: []), "longer than 255")
    }
}
