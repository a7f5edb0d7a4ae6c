import SluiceSyslog
import SluiceWire
import Testing

@Suite struct SyslogMessage3164Tests {
    @Test func withoutHostnameTheTagIsStillTheApp() throws {
        let source = "<13>Nov 24 10:00:00 myapp[12]: hi there"
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc3164)
        #expect(message.hostname == nil)
        #expect(message.appName == "myapp")
        #expect(message.procID == "12")
        #expect(Syslog.text(message, of: source) == "hi there")
        let plain = "<13>Nov 24 10:00:00 myapp: no pid"
        let withoutPID = try #require(Syslog.parse(plain))
        #expect(withoutPID.appName == "myapp")
        #expect(Syslog.text(withoutPID, of: plain) == "no pid")
    }

    @Test func classicBSDMessage() throws {
        let source = "<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick on /dev/pts/8"
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc3164)
        #expect(message.facility == 4)
        #expect(message.severity == 2)
        #expect(message.isError)
        #expect(message.timestamp == nil)
        #expect(message.hostname == "mymachine")
        #expect(message.appName == "su")
        #expect(message.procID == "123")
        #expect(message.msgID == nil)
        #expect(message.structuredData.isEmpty)
        #expect(Syslog.text(message, of: source) == "'su root' failed for lonvick on /dev/pts/8")
    }

    @Test func spacePaddedDay() throws {
        let source = "<13>Oct  1 09:05:07 host cron[42]: job ran\n"
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc3164)
        #expect(message.hostname == "host")
        #expect(message.appName == "cron")
        #expect(message.procID == "42")
        #expect(Syslog.text(message, of: source) == "job ran")
    }

    @Test func tagWithoutPID() throws {
        let source = "<13>Oct 11 22:14:15 box sshd: accepted"
        let message = try #require(Syslog.parse(source))
        #expect(message.hostname == "box")
        #expect(message.appName == "sshd")
        #expect(message.procID == nil)
        #expect(Syslog.text(message, of: source) == "accepted")
    }

    @Test func withoutTimestamp() throws {
        let source = "<13>myapp: hi"
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc3164)
        #expect(message.facility == 1)
        #expect(message.severity == 5)
        #expect(message.hostname == nil)
        #expect(message.appName == "myapp")
        #expect(message.procID == nil)
        #expect(Syslog.text(message, of: source) == "hi")
    }

    @Test func withoutTagTheWholeRestIsTheMessage() throws {
        let bare = "<13>just some words, no tag"
        let message = try #require(Syslog.parse(bare))
        #expect(message.format == .rfc3164)
        #expect(message.appName == nil)
        #expect(message.procID == nil)
        #expect(message.hostname == nil)
        #expect(Syslog.text(message, of: bare) == "just some words, no tag")

        let stamped = "<13>Oct 11 22:14:15 mymachine hello world"
        let second = try #require(Syslog.parse(stamped))
        #expect(second.hostname == "mymachine")
        #expect(second.appName == nil)
        #expect(Syslog.text(second, of: stamped) == "hello world")

        let empty = try #require(Syslog.parse("<13>"))
        #expect(empty.format == .rfc3164)
        #expect(empty.appName == nil)
        #expect(empty.message.isEmpty)
    }

    @Test(arguments: [
        "", "hello", "<>", "<>hello", "<13", "<13x>hi", "<-1>hi", "<192>1 - - - - - -", "<999>hi", "<1000>hi",
        " <13>hi",
    ])
    func notSyslogGivesNil(text: String) {
        #expect(Syslog.parse(text) == nil)
    }

    @Test func highestPriority() throws {
        let message = try #require(Syslog.parse("<191>x"))
        #expect(message.facility == 23)
        #expect(message.severity == 7)
        let lowest = try #require(Syslog.parse("<0>x"))
        #expect(lowest.facility == 0)
        #expect(lowest.severity == 0)
        #expect(lowest.isError)
    }

    @Test func randomBytesNeverCrashAndStayInBounds() {
        var generator = SeededGenerator(seed: 5424)
        let specials: [UInt8] = [0x0A, 0x0D, 0xEF, 0xBB, 0xBF, 0x00, 0x7F, 0xFF]
        let alphabet = Array(#"<>0123456789 -[]"=\:.TZ+tzOct@/"#.utf8) + specials
        let template = Array(Syslog.full.utf8)
        var parsed = 0
        for round in 0..<4000 {
            var bytes: [UInt8] = []
            var priority: Int?
            switch round % 3 {
            case 0:
                // A PRI, valid or not, then noise.
                let value = Int.random(in: 0...255, using: &generator)
                priority = value
                bytes = Array("<\(value)>".utf8)
            case 1:
                // A real message cut short and with a few bytes changed.
                bytes = Array(template[..<Int.random(in: 0...template.count, using: &generator)])
                for _ in 0..<Int.random(in: 0...3, using: &generator) where !bytes.isEmpty {
                    let at = Int.random(in: 0..<bytes.count, using: &generator)
                    bytes[at] = alphabet.randomElement(using: &generator)!
                }
            default:
                break
            }
            for _ in 0..<Int.random(in: 0...60, using: &generator) {
                let byte =
                    Bool.random(using: &generator)
                    ? alphabet.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator)
                bytes.append(byte)
            }

            let message = Syslog.parse(bytes)
            if let priority {
                #expect((message != nil) == (priority <= 191), "\(bytes)")
            }
            guard let message else { continue }
            parsed += 1
            #expect(bytes.first == UInt8(ascii: "<"), "\(bytes)")
            #expect(message.message.lowerBound >= 0, "\(bytes)")
            #expect(message.message.upperBound <= bytes.count, "\(bytes)")
            let value = Int(message.facility) * 8 + Int(message.severity)
            #expect(message.severity <= 7, "\(bytes)")
            #expect(value <= 191, "\(bytes)")
            if let priority {
                #expect(value == priority, "\(bytes)")
            }
            if let last = message.message.last, message.message.upperBound <= bytes.count {
                #expect(bytes[last] != 0x0A && bytes[last] != 0x0D, "\(bytes)")
            }
        }
        // The generator does reach the parser's insides.
        #expect(parsed > 1000)
    }
}
