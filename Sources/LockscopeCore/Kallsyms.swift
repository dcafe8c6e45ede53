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

    /// 16 bytes per symbol: the name lives in `names`, the module in `modules`.
    private struct Entry: Sendable {
        var address: UInt64
        var nameStart: UInt32
        var nameLength: UInt16
        /// Index into `modules`, or `Entry.noModule` for the core kernel.
        var module: UInt16
        static let noModule = UInt16.max
    }

    /// Sorted by address.
    private let functions: [Entry]
    private let data: [Entry]
    /// Every symbol's name, back to back (120k names take about 3 MB this way, 10 MB as Strings).
    private let names: [UInt8]
    private let modules: [String]
    /// Address ranges of the kernel's lock and scheduler text sections, where lock primitives live.
    private let lockTextRanges: [Range<UInt64>]

    public var functionCount: Int { functions.count }
    /// The core kernel's function addresses (modules left out), in ascending order.
    public var kernelFunctionAddresses: [UInt64] {
        functions.lazy.filter { $0.module == Entry.noModule }.map(\.address)
    }
    public var hasDataSymbols: Bool { !data.isEmpty }

    /// Reads /proc/kallsyms (or a copy of it). Addresses all zero mean kptr_restrict hides them.
    public static func load(path: String = "/proc/kallsyms") throws -> Kallsyms {
        // procfs reports size 0, so read to the end rather than by the file's size.
        guard let handle = FileHandle(forReadingAtPath: path), let data = try? handle.readToEnd() ?? Data() else {
            throw UserError("cannot read \(path): run as root, or check that the kernel exposes kallsyms")
        }
        let symbols = data.withUnsafeBytes { Kallsyms(parsing: $0) }
        if symbols.functions.isEmpty {
            throw UserError("\(path) lists no usable addresses (kptr_restrict?): run as root or set kernel.kptr_restrict=0")
        }
        return symbols
    }

    /// Parses kallsyms text: `ffffffff8170f1d0 T path_umount` or `... t name\t[module]`.
    public init(parsing text: String) {
        var text = text
        self = text.withUTF8 { Kallsyms(parsing: UnsafeRawBufferPointer($0)) }
    }

    /// Parses kallsyms as UTF-8 bytes, a line at a time (splitting its 120k lines by Character took
    /// about a second, and holding them as Strings 30 MB).
    public init(parsing bytes: UnsafeRawBufferPointer) {
        var functions: [Entry] = []
        var data: [Entry] = []
        var names: [UInt8] = []
        var modules: [String] = []
        var moduleIndex: [Substring: UInt16] = [:]
        var markers: [String: UInt64] = [:]
        var lineStart = 0
        while lineStart < bytes.count {
            let lineEnd = bytes[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            let line = bytes[lineStart..<lineEnd]
            lineStart = lineEnd + 1
            let fields = line.split(maxSplits: 3, whereSeparator: Self.isBlank)
            guard fields.count >= 3, let address = Self.hexValue(fields[0]), address != 0,
                  let type = fields[1].first, fields[2].count <= Int(UInt16.max),
                  names.count + fields[2].count <= Int(UInt32.max) else { continue }
            let name = fields[2]
            var module = Entry.noModule
            if fields.count == 4 {
                var raw = fields[3]
                while let first = raw.first, Self.isBlank(first) { raw = raw.dropFirst() }
                while let last = raw.last, Self.isBlank(last) { raw = raw.dropLast() }
                if raw.count >= 2, raw.first == UInt8(ascii: "["), raw.last == UInt8(ascii: "]") {
                    let moduleName = Substring(decoding: raw.dropFirst().dropLast(), as: UTF8.self)
                    if let index = moduleIndex[moduleName] {
                        module = index
                    } else if modules.count < Int(Entry.noModule) {
                        module = UInt16(modules.count)
                        moduleIndex[moduleName] = module
                        modules.append(String(moduleName))
                    }
                }
            }
            let entry = Entry(address: address, nameStart: UInt32(names.count), nameLength: UInt16(name.count),
                              module: module)
            switch Unicode.Scalar(type) {
            case "t", "T", "w", "W":
                if Self.hasSuffix(name, "_text_start") || Self.hasSuffix(name, "_text_end") {
                    markers[String(decoding: name, as: UTF8.self)] = address
                }
                functions.append(entry)
            case "d", "D", "b", "B", "r", "R", "g", "G", "s", "S", "v", "V":
                // Section markers (__start_rodata, __stop___param...) are listed even without
                // CONFIG_KALLSYMS_ALL; they are boundaries, not objects.
                if ["__start", "__stop", "__end", "__init_"].contains(where: { Self.hasPrefix(name, $0) }) { continue }
                data.append(entry)
            default:
                continue
            }
            names.append(contentsOf: name)
        }
        functions.sort { $0.address < $1.address }
        data.sort { $0.address < $1.address }
        self.functions = functions
        self.data = data
        self.names = names
        self.modules = modules
        lockTextRanges = ["lock", "sched"].compactMap { section in
            guard let start = markers["__\(section)_text_start"], let end = markers["__\(section)_text_end"],
                  start < end else { return nil }
            return start..<end
        }
    }

    private static func hasPrefix(_ bytes: Slice<UnsafeRawBufferPointer>, _ prefix: String) -> Bool {
        bytes.starts(with: prefix.utf8)
    }

    private static func hasSuffix(_ bytes: Slice<UnsafeRawBufferPointer>, _ suffix: String) -> Bool {
        bytes.count >= suffix.utf8.count && bytes.suffix(suffix.utf8.count).elementsEqual(suffix.utf8)
    }

    private func name(of entry: Entry) -> String {
        let start = Int(entry.nameStart)
        return String(decoding: names[start..<(start + Int(entry.nameLength))], as: UTF8.self)
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
        let wanted = Array(name.utf8)
        func matches(_ entry: Entry) -> Bool {
            let start = Int(entry.nameStart)
            return Int(entry.nameLength) == wanted.count && names[start..<(start + wanted.count)].elementsEqual(wanted)
        }
        return functions.contains(where: matches) || data.contains(where: matches)
    }

    /// The function containing `address`, or nil if it is below every symbol.
    public func function(at address: UInt64) -> Symbol? {
        lookup(address, in: functions, maxDistance: 1 << 20)
    }

    /// The data object containing `address`: the nearest data symbol at or below it, if the address lies
    /// before the next data symbol and within `maxObjectSize` bytes of it.
    public func dataObject(at address: UInt64, maxObjectSize: UInt64 = 4096) -> Symbol? {
        lookup(address, in: data, maxDistance: maxObjectSize)
    }

    /// True for addresses in the kernel's lock or scheduler text (spin_lock, down_write, schedule...).
    public func isLockText(_ address: UInt64) -> Bool {
        lockTextRanges.contains { $0.contains(address) }
    }

    private func lookup(_ address: UInt64, in entries: [Entry], maxDistance: UInt64) -> Symbol? {
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
        return Symbol(name: name(of: entry), offset: offset,
                      module: entry.module == Entry.noModule ? nil : modules[Int(entry.module)])
    }
}
