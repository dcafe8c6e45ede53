import Foundation

/// Kernel symbols from /proc/kallsyms: functions for symbolizing stacks, data objects for naming locks.
///
/// Many kernels export only function symbols (CONFIG_KALLSYMS_ALL off); then `hasDataSymbols` is false
/// and locks are named from their call paths instead.
public struct Kallsyms: Sendable {
    /// A resolved address: `function+0xoffset [module]`.
    public struct Symbol: Sendable, Equatable {
        public var name: String
        public var offset: UInt64
        public var module: String?

        /// `name+0xoff`, like perf prints a caller.
        public var nameWithOffset: String { "\(name)+0x\(String(offset, radix: 16))" }
    }

    private struct Entry: Sendable {
        var address: UInt64
        var name: String
        var module: String?
    }

    /// Sorted by address.
    private let functions: [Entry]
    private let data: [Entry]
    /// Address ranges of the kernel's lock and scheduler text sections, where lock primitives live.
    private let lockTextRanges: [Range<UInt64>]

    public var functionCount: Int { functions.count }
    public var hasDataSymbols: Bool { !data.isEmpty }

    /// Reads /proc/kallsyms (or a copy of it). Addresses all zero mean kptr_restrict hides them.
    public static func load(path: String = "/proc/kallsyms") throws -> Kallsyms {
        // procfs reports size 0, so read to the end rather than by the file's size.
        guard let handle = FileHandle(forReadingAtPath: path), let data = try? handle.readToEnd() ?? Data(),
              let text = String(data: data, encoding: .utf8) else {
            throw UserError("cannot read \(path): run as root, or check that the kernel exposes kallsyms")
        }
        let symbols = Kallsyms(parsing: text)
        if symbols.functions.isEmpty {
            throw UserError("\(path) lists no usable addresses (kptr_restrict?): run as root or set kernel.kptr_restrict=0")
        }
        return symbols
    }

    /// Parses kallsyms text: `ffffffff8170f1d0 T path_umount` or `... t name\t[module]`.
    /// Works on UTF-8 bytes: splitting its 120k lines by Character took about a second, most of
    /// `lockscope record`'s start-up.
    public init(parsing text: String) {
        var functions: [Entry] = []
        var data: [Entry] = []
        functions.reserveCapacity(128 * 1024)
        var markers: [String: UInt64] = [:]
        var text = text
        text.withUTF8 { bytes in
            for line in bytes.split(separator: UInt8(ascii: "\n")) {
                let fields = line.split(maxSplits: 3, whereSeparator: Self.isBlank)
                guard fields.count >= 3, let address = Self.hexValue(fields[0]), address != 0,
                      let type = fields[1].first else { continue }
                let name = String(decoding: fields[2], as: UTF8.self)
                var module: String?
                if fields.count == 4 {
                    var raw = fields[3]
                    while let first = raw.first, Self.isBlank(first) { raw = raw.dropFirst() }
                    while let last = raw.last, Self.isBlank(last) { raw = raw.dropLast() }
                    if raw.count >= 2, raw.first == UInt8(ascii: "["), raw.last == UInt8(ascii: "]") {
                        module = String(decoding: raw.dropFirst().dropLast(), as: UTF8.self)
                    }
                }
                switch Unicode.Scalar(type) {
                case "t", "T", "w", "W":
                    functions.append(Entry(address: address, name: name, module: module))
                    if name.hasSuffix("_text_start") || name.hasSuffix("_text_end") {
                        markers[name] = address
                    }
                case "d", "D", "b", "B", "r", "R", "g", "G", "s", "S", "v", "V":
                    // Section markers (__start_rodata, __stop___param...) are listed even without
                    // CONFIG_KALLSYMS_ALL; they are boundaries, not objects.
                    if name.hasPrefix("__start") || name.hasPrefix("__stop") || name.hasPrefix("__end")
                        || name.hasPrefix("__init_") { continue }
                    data.append(Entry(address: address, name: name, module: module))
                default:
                    continue
                }
            }
        }
        functions.sort { $0.address < $1.address }
        data.sort { $0.address < $1.address }
        self.functions = functions
        self.data = data
        lockTextRanges = ["lock", "sched"].compactMap { section in
            guard let start = markers["__\(section)_text_start"], let end = markers["__\(section)_text_end"],
                  start < end else { return nil }
            return start..<end
        }
    }

    private static func isBlank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    /// A hex number of at most 16 digits, nil for anything else.
    private static func hexValue<Digits: Collection<UInt8>>(_ digits: Digits) -> UInt64? {
        guard !digits.isEmpty, digits.count <= 16 else { return nil }
        var value: UInt64 = 0
        for digit in digits {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = value << 4 | UInt64(digit - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = value << 4 | UInt64(digit - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = value << 4 | UInt64(digit - UInt8(ascii: "A") + 10)
            default: return nil
            }
        }
        return value
    }

    /// True when a function or data symbol has this name.
    public func hasSymbol(named name: String) -> Bool {
        functions.contains { $0.name == name } || data.contains { $0.name == name }
    }

    /// The function containing `address`, or nil if it is below every symbol.
    public func function(at address: UInt64) -> Symbol? {
        Kallsyms.lookup(address, in: functions, maxDistance: 1 << 20)
    }

    /// The data object containing `address`: the nearest data symbol at or below it, if the address lies
    /// before the next data symbol and within `maxObjectSize` bytes of it.
    public func dataObject(at address: UInt64, maxObjectSize: UInt64 = 4096) -> Symbol? {
        Kallsyms.lookup(address, in: data, maxDistance: maxObjectSize)
    }

    /// True for addresses in the kernel's lock or scheduler text (spin_lock, down_write, schedule...).
    public func isLockText(_ address: UInt64) -> Bool {
        lockTextRanges.contains { $0.contains(address) }
    }

    private static func lookup(_ address: UInt64, in entries: [Entry], maxDistance: UInt64) -> Symbol? {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].address <= address { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let entry = entries[low - 1]
        let offset = address - entry.address
        if offset >= maxDistance { return nil }
        return Symbol(name: entry.name, offset: offset, module: entry.module)
    }
}
