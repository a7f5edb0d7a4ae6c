import SluiceSyslog

/// The agent's HTTP input: a logplex-1 body checked whole, with a
/// `Logplex-Msg-Count` header taken from the first line of the input, then
/// each message parsed as the intake parses it.
enum LogplexTarget: FuzzTarget {
    static let name = "logplex"

    static func run(_ input: UnsafeRawBufferPointer) {
        var body = input
        var declared: String? = nil
        if let newline = input.firstIndex(of: 0x0A) {
            declared = String(decoding: input[..<newline], as: UTF8.self)
            body = UnsafeRawBufferPointer(rebasing: input[(newline + 1)...])
        }
        guard let messages = try? LogplexBody.messages(in: body, declaredCount: declared, maxMessageBytes: 4096) else {
            return
        }
        var end = 0
        for range in messages {
            guard range.lowerBound >= end, range.upperBound <= body.count else {
                fatalError("message \(range) overlaps the one before or runs past \(body.count) bytes")
            }
            end = range.upperBound
            _ = SyslogMessage.parse(UnsafeRawBufferPointer(rebasing: body[range]))
        }
    }
}
