/// Text from a profile (host names, lock names, frames, container ids, process names) made safe for a
/// terminal: a crafted profile must not move the cursor, retitle the window or hide text.
public enum TerminalText {
    /// `text` with every C0 control (NUL, ESC, tab and newline included), DEL and C1 control as a `\x1b`
    /// style escape, and the bidirectional and line-separator controls as `\u{202e}`; the rest unchanged.
    public static func escaped(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return text }
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0..<0x20, 0x7F..<0xA0:
                escaped += "\\x" + hex(scalar.value, digits: 2)
            case 0x061C, 0x200E, 0x200F, 0x2028...0x202E, 0x2066...0x2069:
                escaped += "\\u{" + hex(scalar.value, digits: 4) + "}"
            default:
                escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// Words joined by spaces into lines of at most `width` columns (a longer word gets a line of its
    /// own), the first one after `prefix`, the others indented as deep.
    public static func wrap(_ words: [String], prefix: String, width: Int = 80) -> [String] {
        let indent = String(repeating: " ", count: prefix.count)
        var lines: [String] = []
        var line = prefix
        for word in words {
            if line.count + 1 + word.count > width && line.count > prefix.count {
                lines.append(line)
                line = indent + word
            } else {
                line += (line.count > prefix.count ? " " : "") + word
            }
        }
        lines.append(line)
        return lines
    }

    private static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
