/// Writing the fields of an RFC 5424 line: what a field may hold, and how
/// a structured-data parameter is escaped.
public enum SyslogFormat {
    /// PRINTUSASCII (33–126), at most `maxLength`; anything else becomes `_`.
    public static func appendToken(_ text: String, maxLength: Int, to out: inout [UInt8]) {
        var written = 0
        for byte in text.utf8 where written < maxLength {
            out.append(byte > 0x20 && byte < 0x7F ? byte : UInt8(ascii: "_"))
            written += 1
        }
        if written == 0 { out.append(UInt8(ascii: "-")) }
    }

    /// ` NAME="VALUE"`: an SD-PARAM. The name is PRINTUSASCII but `=`, space,
    /// `]` and `"`, at most 32 bytes, others becoming `_`; in the value `"`,
    /// `\` and `]` are escaped with a backslash.
    public static func appendParam(name: some Sequence<UInt8>, value: some Sequence<UInt8>, to out: inout [UInt8]) {
        out.append(0x20)
        var written = 0
        for byte in name where written < 32 {
            let allowed = byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "=") && byte != UInt8(ascii: "]")
                && byte != UInt8(ascii: "\"")
            out.append(allowed ? byte : UInt8(ascii: "_"))
            written += 1
        }
        out.append(UInt8(ascii: "="))
        out.append(UInt8(ascii: "\""))
        for byte in value {
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "]") {
                out.append(UInt8(ascii: "\\"))
            }
            out.append(byte)
        }
        out.append(UInt8(ascii: "\""))
    }
}
