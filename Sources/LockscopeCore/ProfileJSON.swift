import Foundation

/// The JSON reader behind `Profile.decode`: any `Decodable`, read straight from the bytes with
/// snake_case keys (`totalWaitNs` reads `total_wait_ns`, as `Profile.makeEncoder` writes them).
///
/// Unlike Foundation's JSONDecoder it says where a value is wrong (`locks[3].contentions is -1`): an
/// integer field takes only a whole number its type holds, and every error names its JSON path. It
/// checks the syntax in one pass, then indexes each object only when it is decoded, so it needs the
/// bytes, what it decodes, and the keys of the objects being decoded, nothing per value besides.
enum ProfileJSON {
    /// Deeper nesting is refused: no lockscope document comes near it.
    static let maxDepth = 512

    /// Decodes `body` from the document's root, after checking the whole document's syntax.
    static func withRoot<Result>(of data: Data, _ body: (JSONValueDecoder) throws -> Result) throws -> Result {
        try data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var start = 0
            if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { start = 3 }  // a UTF-8 byte order mark
            let root = try JSONSyntax(bytes).check(from: start)
            return try body(JSONValueDecoder(document: JSONDocument(bytes), start: root, path: nil))
        }
    }
}

/// What is wrong with a JSON document, and where: what `Profile.decode` turns into one line.
struct JSONProblem: Error, Equatable {
    enum Kind: Equatable {
        /// Not JSON at all: the first byte offset where it went wrong.
        case syntax(String, offset: Int)
        /// `found` describes the value (`-1`, `"abc"`, `an array`); `expected` what it should be (`a string`).
        case wrongType(found: String, expected: String)
        /// A number that is not a whole number in the integer type's range, or not a finite double.
        case badNumber(text: String, requirement: String)
        /// An object lacks a field its type needs.
        case missingField(String)
    }

    /// JSON keys and array indices from the root.
    var path: [JSONPathComponent]
    var kind: Kind
}

enum JSONPathComponent: Equatable {
    case key(String)
    case index(Int)

    /// `locks[3].contentions`; empty for the root.
    static func render(_ path: [JSONPathComponent]) -> String {
        var text = ""
        for component in path {
            switch component {
            case .key(let key): text += (text.isEmpty ? "" : ".") + key
            case .index(let index): text += "[\(index)]"
            }
        }
        return text
    }

    /// A `Decodable`'s coding path as JSON: keys in snake_case, as they are written.
    static func from(_ codingPath: [CodingKey]) -> [JSONPathComponent] {
        codingPath.map { key in key.intValue.map(JSONPathComponent.index) ?? .key(SnakeCase.convert(key.stringValue)) }
    }
}

/// Foundation's `convertToSnakeCase`, which profiles are written with: `p999WaitNs` → `p999_wait_ns`,
/// `myURLKey` → `my_url_key` (the same algorithm: words end before an uppercase letter, and a run of
/// uppercase letters is a word up to the one before the next lowercase letter).
enum SnakeCase {
    static func convert(_ key: String) -> String {
        let characters = Array(key)
        guard !characters.isEmpty else { return key }
        var words: [Range<Int>] = []
        var wordStart = 0
        var searchStart = 1
        while let upper = characters[searchStart...].firstIndex(where: \.isUppercase) {
            words.append(wordStart..<upper)
            guard let lower = characters[upper...].firstIndex(where: { !$0.isUppercase }) else {
                wordStart = upper
                searchStart = characters.count
                break
            }
            if lower == upper + 1 {
                wordStart = upper
            } else {
                words.append(upper..<(lower - 1))
                wordStart = lower - 1
            }
            searchStart = lower
        }
        words.append(wordStart..<characters.count)
        return words.map { String(characters[$0]).lowercased() }.joined(separator: "_")
    }

    /// The inverse, for `allKeys`: `total_wait_ns` → `totalWaitNs`.
    static func camelCase(_ key: String) -> String {
        let parts = key.split(separator: "_", omittingEmptySubsequences: true)
        guard parts.count > 1, let head = parts.first else { return key }
        let leading = key.prefix { $0 == "_" }
        let trailing = String(key.reversed().prefix { $0 == "_" })
        return leading + head + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined() + trailing
    }
}

private extension UInt8 {
    static let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\"), colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ","), openBrace = UInt8(ascii: "{"), closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "["), closeBracket = UInt8(ascii: "]"), minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+"), dot = UInt8(ascii: "."), digit0 = UInt8(ascii: "0"), digit9 = UInt8(ascii: "9")

    var isJSONWhitespace: Bool { self == 0x20 || self == 0x0A || self == 0x0D || self == 0x09 }
    var isDigit: Bool { self >= .digit0 && self <= .digit9 }
    var isExponent: Bool { self == UInt8(ascii: "e") || self == UInt8(ascii: "E") }
}

/// One pass over a document that finds its first syntax error (RFC 8259), or the offset of its root value.
private struct JSONSyntax {
    let bytes: UnsafeBufferPointer<UInt8>

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    private func fail(_ problem: String, at offset: Int) -> JSONProblem {
        JSONProblem(path: [], kind: .syntax(offset >= bytes.count ? "it ends early" : problem, offset: offset))
    }

    private func skipWhitespace(_ i: inout Int) {
        while i < bytes.count && bytes[i].isJSONWhitespace { i += 1 }
    }

    private func expect(_ byte: UInt8, _ what: String, at i: inout Int) throws {
        guard i < bytes.count && bytes[i] == byte else { throw fail("expected \(what)", at: i) }
        i += 1
    }

    /// The root value's offset, when the whole document from `start` is one JSON value.
    func check(from start: Int) throws -> Int {
        var containers: [UInt8] = []  // the open `{` and `[`, innermost last
        var i = start
        skipWhitespace(&i)
        let root = i
        var expectingValue = true
        while true {
            if expectingValue {
                guard i < bytes.count else { throw fail("it ends early", at: i) }
                switch bytes[i] {
                case .openBrace, .openBracket:
                    guard containers.count < ProfileJSON.maxDepth else {
                        throw fail("it nests more than \(ProfileJSON.maxDepth) levels deep", at: i)
                    }
                    containers.append(bytes[i])
                    i += 1
                    skipWhitespace(&i)
                    if i < bytes.count && (bytes[i] == .closeBrace || bytes[i] == .closeBracket) {
                        try close(&containers, at: &i)
                        expectingValue = false
                    } else if containers.last == .openBrace {
                        try member(at: &i)
                    }
                case .quote: i = try string(at: i)
                    expectingValue = false
                case .minus, UInt8.digit0 ... UInt8.digit9: i = try number(at: i)
                    expectingValue = false
                case UInt8(ascii: "t"): try literal("true", at: &i)
                    expectingValue = false
                case UInt8(ascii: "f"): try literal("false", at: &i)
                    expectingValue = false
                case UInt8(ascii: "n"): try literal("null", at: &i)
                    expectingValue = false
                default:
                    throw fail("unexpected character \(describe(bytes[i]))", at: i)
                }
                continue
            }
            skipWhitespace(&i)
            guard let innermost = containers.last else { break }
            guard i < bytes.count else { throw fail("it ends early", at: i) }
            if bytes[i] == .comma {
                i += 1
                skipWhitespace(&i)
                if innermost == .openBrace { try member(at: &i) }
                expectingValue = true
            } else {
                try close(&containers, at: &i)
            }
        }
        guard i == bytes.count else { throw fail("unexpected data after the end of the document", at: i) }
        return root
    }

    /// Closes the innermost container at `i`, which must hold its closing bracket.
    private func close(_ containers: inout [UInt8], at i: inout Int) throws {
        let isObject = containers.last == .openBrace
        try expect(isObject ? .closeBrace : .closeBracket, isObject ? "\",\" or \"}\"" : "\",\" or \"]\"", at: &i)
        containers.removeLast()
    }

    /// An object member's key and colon, leaving `i` at its value.
    private func member(at i: inout Int) throws {
        guard i < bytes.count && bytes[i] == .quote else { throw fail("expected a quoted key", at: i) }
        i = try string(at: i)
        skipWhitespace(&i)
        try expect(.colon, "\":\"", at: &i)
        skipWhitespace(&i)
    }

    private func literal(_ word: StaticString, at i: inout Int) throws {
        let text = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        for byte in text {
            guard i < bytes.count && bytes[i] == byte else { throw fail("expected \(word)", at: i) }
            i += 1
        }
    }

    /// The offset after the string that starts at `start`.
    private func string(at start: Int) throws -> Int {
        var i = start + 1
        while i < bytes.count {
            switch bytes[i] {
            case .quote: return i + 1
            case .backslash:
                guard i + 1 < bytes.count else { throw fail("it ends early", at: i + 1) }
                switch bytes[i + 1] {
                case .quote, .backslash, UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
                     UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 2
                case UInt8(ascii: "u"):
                    for offset in 2..<6 {
                        guard i + offset < bytes.count, hexValue(bytes[i + offset]) != nil else {
                            throw fail("a \\u escape needs four hex digits", at: i + offset)
                        }
                    }
                    i += 6
                default: throw fail("a backslash before \(describe(bytes[i + 1])), which is no escape", at: i)
                }
            case 0..<0x20: throw fail("a control character (\(describe(bytes[i]))) inside a string", at: i)
            default: i += 1
            }
        }
        throw fail("it ends early", at: i)
    }

    /// The offset after the number that starts at `start`: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    private func number(at start: Int) throws -> Int {
        var i = start
        if bytes[i] == .minus { i += 1 }
        func digits(_ what: String) throws {
            guard i < bytes.count && bytes[i].isDigit else { throw fail("expected \(what)", at: i) }
            while i < bytes.count && bytes[i].isDigit { i += 1 }
        }
        if i < bytes.count && bytes[i] == .digit0 {
            i += 1
        } else {
            try digits("a digit")
        }
        if i < bytes.count && bytes[i] == .dot {
            i += 1
            try digits("a digit after the decimal point")
        }
        if i < bytes.count && bytes[i].isExponent {
            i += 1
            if i < bytes.count && (bytes[i] == .plus || bytes[i] == .minus) { i += 1 }
            try digits("an exponent")
        }
        return i
    }

    private func describe(_ byte: UInt8) -> String {
        byte >= 0x21 && byte < 0x7F ? "'\(Character(Unicode.Scalar(byte)))'" : String(format: "0x%02x", byte)
    }
}

private func hexValue(_ byte: UInt8) -> UInt32? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
    case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
    case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
    default: nil
    }
}

/// The bytes of a document whose syntax is checked, and what decoding it shares.
final class JSONDocument {
    let bytes: UnsafeBufferPointer<UInt8>
    /// Each coding key's JSON spelling, converted once.
    private var jsonKeys: [String: [UInt8]] = [:]

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func jsonKey(_ key: CodingKey) -> [UInt8] {
        if let known = jsonKeys[key.stringValue] { return known }
        let converted = Array(SnakeCase.convert(key.stringValue).utf8)
        jsonKeys[key.stringValue] = converted
        return converted
    }

    // MARK: Finding ends (the syntax is known to be right)

    func skipWhitespace(from start: Int) -> Int {
        var i = start
        while i < bytes.count && bytes[i].isJSONWhitespace { i += 1 }
        return i
    }

    /// The offset after the value that starts at `start`.
    func end(ofValueAt start: Int) -> Int {
        switch bytes[start] {
        case .quote:
            return end(ofStringAt: start)
        case .openBrace, .openBracket:
            var depth = 0
            var i = start
            while true {
                // `{` and `[` are 0x7B and 0x5B, `}` and `]` 0x7D and 0x5D: one comparison each once 0x20 is set.
                switch bytes[i] | 0x20 {
                case .openBrace: depth += 1
                case .closeBrace:
                    depth -= 1
                    if depth == 0 { return i + 1 }
                case .quote:  // 0x02 becomes 0x22 too, but a control character cannot stand outside a string
                    i = end(ofStringAt: i)
                    continue
                default: break
                }
                i += 1
            }
        default:
            var i = start
            while i < bytes.count {
                switch bytes[i] {
                case .comma, .closeBrace, .closeBracket, 0x20, 0x0A, 0x0D, 0x09: return i
                default: i += 1
                }
            }
            return i
        }
    }

    /// The offset after the string whose opening quote is at `start`: the first quote after it that
    /// an even number of backslashes precede.
    func end(ofStringAt start: Int) -> Int {
        let base = bytes.baseAddress!
        var i = start + 1
        while true {
            let quote = UnsafeRawPointer(memchr(base + i, Int32(UInt8.quote), bytes.count - i)!)
                .assumingMemoryBound(to: UInt8.self) - base
            var backslashes = 0
            while base[quote - 1 - backslashes] == .backslash { backslashes += 1 }
            if backslashes % 2 == 0 { return quote + 1 }
            i = quote + 1
        }
    }

    // MARK: Values

    /// How an error names the value at `start`: its text for numbers, strings and literals, else its kind.
    func describeValue(at start: Int) -> String {
        switch bytes[start] {
        case .openBrace: return "an object"
        case .openBracket: return "an array"
        case .quote:
            let text = string(at: start)
            let shown = text.count > 40 ? text.prefix(40) + "…" : Substring(text)
            return "\"" + TerminalText.escaped(String(shown)) + "\""
        default:
            let end = end(ofValueAt: start)
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<min(end, start + 40)]), as: UTF8.self)
            return end - start > 40 ? text + "… (\(end - start) characters)" : text
        }
    }

    func wrongType(at start: Int, expected: String, path: [JSONPathComponent]) -> JSONProblem {
        JSONProblem(path: path, kind: .wrongType(found: describeValue(at: start), expected: expected))
    }

    /// The string at `start` (a string's quote), escapes decoded, invalid UTF-8 repaired.
    func string(at start: Int) -> String {
        let end = end(ofStringAt: start)
        let content = UnsafeBufferPointer(rebasing: bytes[(start + 1)..<(end - 1)])
        guard content.contains(.backslash) else { return String(decoding: content, as: UTF8.self) }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(content.count)
        var i = 0
        func hex4(at offset: Int) -> UInt32 {
            (0..<4).reduce(0) { $0 << 4 | hexValue(content[offset + $1])! }
        }
        while i < content.count {
            let byte = content[i]
            guard byte == .backslash else {
                decoded.append(byte)
                i += 1
                continue
            }
            let escape = content[i + 1]
            i += 2
            switch escape {
            case UInt8(ascii: "b"): decoded.append(0x08)
            case UInt8(ascii: "f"): decoded.append(0x0C)
            case UInt8(ascii: "n"): decoded.append(0x0A)
            case UInt8(ascii: "r"): decoded.append(0x0D)
            case UInt8(ascii: "t"): decoded.append(0x09)
            case UInt8(ascii: "u"):
                var unit = hex4(at: i)
                i += 4
                if (0xD800..<0xDC00).contains(unit), i + 6 <= content.count, content[i] == .backslash,
                   content[i + 1] == UInt8(ascii: "u"), case let low = hex4(at: i + 2), (0xDC00..<0xE000).contains(low) {
                    unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                }
                decoded.append(contentsOf: String(Unicode.Scalar(unit) ?? "\u{FFFD}").utf8)  // a lone surrogate is U+FFFD
            default: decoded.append(escape)  // \" \\ \/
            }
        }
        return String(decoding: decoded, as: UTF8.self)
    }

    func string(at start: Int, path: @autoclosure () -> [JSONPathComponent]) throws -> String {
        guard bytes[start] == .quote else { throw wrongType(at: start, expected: "a string", path: path()) }
        return string(at: start)
    }

    func bool(at start: Int, path: @autoclosure () -> [JSONPathComponent]) throws -> Bool {
        switch bytes[start] {
        case UInt8(ascii: "t"): return true
        case UInt8(ascii: "f"): return false
        default: throw wrongType(at: start, expected: "true or false", path: path())
        }
    }

    func double(at start: Int, path: @autoclosure () -> [JSONPathComponent]) throws -> Double {
        guard bytes[start] == .minus || bytes[start].isDigit else {
            throw wrongType(at: start, expected: "a number", path: path())
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end(ofValueAt: start)]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else {
            throw JSONProblem(path: path(), kind: .badNumber(text: describeValue(at: start),
                                                             requirement: "numbers must be finite"))
        }
        return value
    }

    /// An integer field: a whole number in `Integer`'s range (`-0`, `1e3` and `12.0` are whole too).
    func integer<Integer: FixedWidthInteger>(_ type: Integer.Type, at start: Int,
                                             path: @autoclosure () -> [JSONPathComponent]) throws -> Integer {
        guard bytes[start] == .minus || bytes[start].isDigit else {
            throw wrongType(at: start, expected: "a number", path: path())
        }
        let end = end(ofValueAt: start)
        let negative = bytes[start] == .minus
        if let magnitude = wholeMagnitude(UnsafeBufferPointer(rebasing: bytes[(negative ? start + 1 : start)..<end])) {
            if !negative, let value = Integer(exactly: magnitude) { return value }
            if negative, magnitude == 0 { return 0 }
            if negative, Integer.isSigned, magnitude <= UInt64(Integer.max) + 1 {
                return magnitude == UInt64(Integer.max) + 1 ? Integer.min : 0 - Integer(magnitude)
            }
        }
        throw JSONProblem(path: path(), kind: .badNumber(text: describeValue(at: start),
                                                         requirement: "it must be a whole number from \(Self.range(of: Integer.self))"))
    }

    /// `0 to 2^64-1`, `-2^31 to 2^31-1`.
    static func range<Integer: FixedWidthInteger>(of type: Integer.Type) -> String {
        Integer.isSigned ? "-2^\(Integer.bitWidth - 1) to 2^\(Integer.bitWidth - 1)-1" : "0 to 2^\(Integer.bitWidth)-1"
    }

    /// The value of an unsigned JSON number (`digits[.digits][e[+-]digits]`) when it is whole and below 2^64.
    private func wholeMagnitude(_ number: UnsafeBufferPointer<UInt8>) -> UInt64? {
        if number.count <= 19 && number.allSatisfy(\.isDigit) {  // what writers write: below 10^19, so no overflow
            return number.reduce(0) { $0 * 10 + UInt64($1 - .digit0) }
        }
        var digitsEnd = 0
        while digitsEnd < number.count && (number[digitsEnd].isDigit || number[digitsEnd] == .dot) { digitsEnd += 1 }
        let mantissa = UnsafeBufferPointer(rebasing: number[..<digitsEnd])
        var exponent = 0
        if digitsEnd < number.count {  // an exponent, saturated far beyond any whole UInt64
            var i = digitsEnd + 1
            let negativeExponent = number[i] == .minus
            if number[i] == .minus || number[i] == .plus { i += 1 }
            while i < number.count {
                exponent = min(exponent * 10 + Int(number[i] - .digit0), 1_000_000)
                i += 1
            }
            if negativeExponent { exponent = -exponent }
        }
        // The digits without the point, and the power of ten they are scaled by.
        let fractionDigits = mantissa.firstIndex(of: .dot).map { mantissa.count - $0 - 1 } ?? 0
        let digits = mantissa.filter { $0 != .dot }.drop(while: { $0 == .digit0 })
        var scale = exponent - fractionDigits
        var significant = Array(digits)
        if significant.isEmpty { return 0 }
        while scale < 0, significant.last == .digit0 {
            significant.removeLast()
            scale += 1
        }
        guard scale >= 0, significant.count + scale <= 20 else { return nil }
        var value: UInt64 = 0
        for digit in significant + [UInt8](repeating: .digit0, count: scale) {
            let (times10, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times10.addingReportingOverflow(UInt64(digit - .digit0))
            guard !overflow, !carry else { return nil }
            value = sum
        }
        return value
    }

    /// Primitive types decoded without a decoder of their own; nil for any other type.
    func primitive<T>(_ type: T.Type, at start: Int, path: @autoclosure () -> [JSONPathComponent]) throws -> T? {
        switch type {
        case is String.Type: return try string(at: start, path: path()) as? T
        case is UInt64.Type: return try integer(UInt64.self, at: start, path: path()) as? T
        case is Int.Type: return try integer(Int.self, at: start, path: path()) as? T
        case is Int32.Type: return try integer(Int32.self, at: start, path: path()) as? T
        case is UInt32.Type: return try integer(UInt32.self, at: start, path: path()) as? T
        case is Bool.Type: return try bool(at: start, path: path()) as? T
        case is Double.Type: return try double(at: start, path: path()) as? T
        default: return nil
        }
    }
}

/// A coding key for an array element in a coding path.
private struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { "\(intValue ?? 0)" }
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.intValue = intValue }
}

/// A decoding path, from the value back to the root.
final class JSONPathNode {
    let parent: JSONPathNode?
    let key: CodingKey

    init(_ parent: JSONPathNode?, _ key: CodingKey) {
        self.parent = parent
        self.key = key
    }

    static func codingPath(_ node: JSONPathNode?) -> [CodingKey] {
        var keys: [CodingKey] = []
        var node = node
        while let current = node {
            keys.append(current.key)
            node = current.parent
        }
        return keys.reversed()
    }

    static func json(_ node: JSONPathNode?, then key: CodingKey? = nil) -> [JSONPathComponent] {
        JSONPathComponent.from(codingPath(node) + (key.map { [$0] } ?? []))
    }
}

/// Decodes one value of a document.
final class JSONValueDecoder: Decoder {
    let document: JSONDocument
    /// The value's first byte.
    let start: Int
    let path: JSONPathNode?
    /// The offset after the value, once something has scanned that far.
    fileprivate(set) var end: Int?
    /// The object's members, once indexed (a value's decoder can be asked for its container more than once).
    private var members: [JSONMember]?

    init(document: JSONDocument, start: Int, path: JSONPathNode?) {
        self.document = document
        self.start = start
        self.path = path
    }

    var codingPath: [CodingKey] { JSONPathNode.codingPath(path) }
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    var jsonPath: [JSONPathComponent] { JSONPathNode.json(path) }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(JSONKeyedContainer<Key>(decoder: self, members: try objectMembers()))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard document.bytes[start] == .openBracket else {
            throw document.wrongType(at: start, expected: "an array", path: jsonPath)
        }
        return JSONUnkeyedContainer(decoder: self)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { JSONSingleValueContainer(decoder: self) }

    /// The decoder of a value inside this one.
    func child(at start: Int, key: CodingKey) -> JSONValueDecoder {
        JSONValueDecoder(document: document, start: start, path: JSONPathNode(path, key))
    }

    func decode<T: Decodable>(_ type: T.Type, at start: Int, key: CodingKey) throws -> (value: T, end: Int?) {
        if let value = try document.primitive(type, at: start, path: JSONPathNode.json(path, then: key)) {
            return (value, nil)
        }
        let child = child(at: start, key: key)
        return (try T(from: child), child.end)
    }

    private func objectMembers() throws -> [JSONMember] {
        if let members { return members }
        let bytes = document.bytes
        guard bytes[start] == .openBrace else { throw document.wrongType(at: start, expected: "an object", path: jsonPath) }
        var found: [JSONMember] = []
        var i = document.skipWhitespace(from: start + 1)
        while bytes[i] != .closeBrace {
            let keyEnd = document.end(ofStringAt: i)
            let value = document.skipWhitespace(from: document.skipWhitespace(from: keyEnd) + 1)
            found.append(JSONMember(key: (i + 1)..<(keyEnd - 1), value: value))
            i = document.skipWhitespace(from: document.end(ofValueAt: value))
            if bytes[i] == .comma { i = document.skipWhitespace(from: i + 1) }
        }
        end = i + 1
        members = found
        return found
    }
}

/// An object member: where its key's characters and its value are.
struct JSONMember {
    var key: Range<Int>
    var value: Int

    /// Whether the key is `name` (the JSON spelling of a coding key).
    func hasKey(_ name: [UInt8], in document: JSONDocument) -> Bool {
        let bytes = document.bytes
        if key.count == name.count {
            var offset = 0
            while offset < name.count && bytes[key.lowerBound + offset] == name[offset] { offset += 1 }
            return offset == name.count
        }
        // Only an escaped key (`\u0069d` for `id`) is longer than the name it spells.
        return key.count > name.count && bytes[key].contains(.backslash)
            && Array(document.string(at: key.lowerBound - 1).utf8) == name
    }
}

private struct JSONKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: JSONValueDecoder
    let members: [JSONMember]

    var codingPath: [CodingKey] { decoder.codingPath }
    private var document: JSONDocument { decoder.document }

    var allKeys: [Key] {
        members.compactMap { Key(stringValue: SnakeCase.camelCase(document.string(at: $0.key.lowerBound - 1))) }
    }

    /// The first member with this key (a repeated key's later values are ignored).
    private func value(for key: Key) -> Int? {
        let name = document.jsonKey(key)
        for member in members where member.hasKey(name, in: document) { return member.value }
        return nil
    }

    private func required(_ key: Key) throws -> Int {
        guard let value = value(for: key) else {
            throw JSONProblem(path: decoder.jsonPath, kind: .missingField(String(decoding: document.jsonKey(key), as: UTF8.self)))
        }
        return value
    }

    private func path(_ key: Key) -> [JSONPathComponent] { JSONPathNode.json(decoder.path, then: key) }

    func contains(_ key: Key) -> Bool { value(for: key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { document.bytes[try required(key)] == UInt8(ascii: "n") }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try document.bool(at: try required(key), path: path(key)) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try document.string(at: try required(key), path: path(key)) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try document.double(at: try required(key), path: path(key)) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { Float(try decode(Double.self, forKey: key)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try integer(key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try integer(key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try integer(key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try integer(key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try integer(key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try integer(key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(key) }

    private func integer<Integer: FixedWidthInteger>(_ key: Key) throws -> Integer {
        try document.integer(Integer.self, at: try required(key), path: path(key))
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decoder.decode(type, at: try required(key), key: key).value
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type,
                                               forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try decoder.child(at: try required(key), key: key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try decoder.child(at: try required(key), key: key).unkeyedContainer()
    }

    func superDecoder() throws -> Decoder {
        try superDecoder(forKey: Key(stringValue: "super")!)
    }

    func superDecoder(forKey key: Key) throws -> Decoder {
        decoder.child(at: try required(key), key: key)
    }
}

private struct JSONUnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: JSONValueDecoder
    /// The next element's first byte, or the closing bracket.
    private var position: Int
    private(set) var currentIndex = 0

    init(decoder: JSONValueDecoder) {
        self.decoder = decoder
        position = decoder.document.skipWhitespace(from: decoder.start + 1)
        if isAtEnd { decoder.end = position + 1 }
    }

    var codingPath: [CodingKey] { decoder.codingPath }
    /// Unknown until the elements are read: counting them would scan the array once more.
    var count: Int? { nil }
    var isAtEnd: Bool { decoder.document.bytes[position] == .closeBracket }

    private var document: JSONDocument { decoder.document }

    /// The element at `position`, failing at the end of the array.
    private func element() throws -> Int {
        guard !isAtEnd else {
            throw JSONProblem(path: decoder.jsonPath, kind: .missingField("[\(currentIndex)]"))
        }
        return position
    }

    /// Moves past the element at `position`, which ends at `end` (scanned for when not known).
    private mutating func advance(end: Int?) {
        var i = document.skipWhitespace(from: end ?? document.end(ofValueAt: position))
        if document.bytes[i] == .comma { i = document.skipWhitespace(from: i + 1) }
        position = i
        currentIndex += 1
        if isAtEnd { decoder.end = position + 1 }
    }

    mutating func decodeNil() throws -> Bool {
        guard document.bytes[try element()] == UInt8(ascii: "n") else { return false }
        advance(end: nil)
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (value, end) = try decoder.decode(type, at: try element(), key: IndexKey(currentIndex))
        advance(end: end)
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let child = decoder.child(at: try element(), key: IndexKey(currentIndex))
        let container = try child.container(keyedBy: type)
        advance(end: child.end)
        return container
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        let child = decoder.child(at: try element(), key: IndexKey(currentIndex))
        let container = try child.unkeyedContainer()
        advance(end: nil)
        return container
    }

    mutating func superDecoder() throws -> Decoder {
        let child = decoder.child(at: try element(), key: IndexKey(currentIndex))
        advance(end: nil)
        return child
    }
}

private struct JSONSingleValueContainer: SingleValueDecodingContainer {
    let decoder: JSONValueDecoder

    var codingPath: [CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool { decoder.document.bytes[decoder.start] == UInt8(ascii: "n") }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if let value = try decoder.document.primitive(type, at: decoder.start, path: decoder.jsonPath) { return value }
        return try T(from: decoder)
    }

    func decode(_ type: Bool.Type) throws -> Bool { try decoder.document.bool(at: decoder.start, path: decoder.jsonPath) }
    func decode(_ type: String.Type) throws -> String { try decoder.document.string(at: decoder.start, path: decoder.jsonPath) }
    func decode(_ type: Double.Type) throws -> Double { try decoder.document.double(at: decoder.start, path: decoder.jsonPath) }
    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }
    func decode(_ type: Int.Type) throws -> Int { try integer() }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer() }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer() }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer() }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer() }
    func decode(_ type: UInt.Type) throws -> UInt { try integer() }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer() }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer() }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer() }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer() }

    private func integer<Integer: FixedWidthInteger>() throws -> Integer {
        try decoder.document.integer(Integer.self, at: decoder.start, path: decoder.jsonPath)
    }
}
