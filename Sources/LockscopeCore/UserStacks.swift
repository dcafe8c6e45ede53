/// User-space stacks (`record --user-stacks`): the kernel records a waiter's user call path as return
/// addresses (walked by frame pointer) under an id; the addresses mean something only with the mappings
/// of the process they were taken in. This file holds the pure part of naming them: reading
/// /proc/PID/maps, turning an address into a file offset and then into the ELF file's virtual address
/// (which handles PIE and shared libraries alike), and looking that up in a sorted symbol table. The ELF
/// files themselves are read by LockscopeKernel's `ELFReader`.

/// The user stacks the kernel sent with waits, each distinct (process, addresses) kept once under an
/// id: the ring buffer reader fills it, the profile builder reads it. The process is part of a stack:
/// its addresses mean something only with that process's mappings.
public final class UserStackTable {
    public struct Stack: Hashable, Sendable {
        public var pid: UInt32
        /// Return addresses, innermost first.
        public var addresses: [UInt64]
    }
    private var ids: [Stack: Int32] = [:]
    private var stacks: [Stack] = []

    public init() {}

    /// How many distinct stacks are kept.
    public var count: Int { stacks.count }

    /// The id of the stack `addresses` (little-endian u64s, innermost first) of process `pid`, added when new.
    public func id(pid: UInt32, addresses bytes: UnsafeRawBufferPointer) -> Int32 {
        var addresses = [UInt64](repeating: 0, count: bytes.count / MemoryLayout<UInt64>.size)
        addresses.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes.prefix($0.count))) }
        let key = Stack(pid: pid, addresses: addresses)
        if let id = ids[key] { return id }
        let id = Int32(truncatingIfNeeded: stacks.count)
        stacks.append(key)
        ids[key] = id
        return id
    }

    /// Stack `id`; nil for an id never given.
    public func stack(_ id: Int32) -> Stack? {
        id >= 0 && Int(id) < stacks.count ? stacks[Int(id)] : nil
    }
}

/// One file-backed executable mapping of a process (a line of /proc/PID/maps).
public struct ProcessMapping: Equatable, Sendable {
    public var start: UInt64
    public var end: UInt64
    /// Where in the file the mapping starts.
    public var fileOffset: UInt64
    /// The file's device ("fd:01") and inode: with the path, what identifies the file.
    public var device: String
    public var inode: UInt64
    public var path: String

    public init(start: UInt64, end: UInt64, fileOffset: UInt64, device: String, inode: UInt64, path: String) {
        self.start = start
        self.end = end
        self.fileOffset = fileOffset
        self.device = device
        self.inode = inode
        self.path = path
    }

    /// The offset in the file of `address` (which must be in the mapping).
    public func fileOffset(of address: UInt64) -> UInt64 { address - start + fileOffset }

    /// The file's name without its directories, as unsymbolized frames show it.
    public var basename: String {
        let name = path.hasSuffix(" (deleted)") ? String(path.dropLast(" (deleted)".count)) : path
        return name.split(separator: "/").last.map(String.init) ?? name
    }

    /// What identifies the file across processes (the symbol cache's key when it has no build id).
    public var fileKey: String { "\(device):\(inode):\(path)" }
}

public enum ProcessMaps {
    /// The executable, file-backed mappings in the text of /proc/PID/maps, by start address.
    /// `start-end perms offset dev inode path`; anonymous mappings, [vdso], [stack] and the like are left
    /// out (their frames show as bare addresses), and so are lines that do not parse.
    public static func parse(_ text: String) -> [ProcessMapping] {
        var mappings: [ProcessMapping] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6, fields[1].count >= 3, fields[1].dropFirst(2).first == "x" else { continue }
            let path = fields[5].trimmingLeadingSpaces
            guard path.hasPrefix("/") else { continue }
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16),
                  start < end, let offset = UInt64(fields[2], radix: 16), let inode = UInt64(fields[4]) else { continue }
            mappings.append(ProcessMapping(start: start, end: end, fileOffset: offset, device: String(fields[3]),
                                           inode: inode, path: path))
        }
        return mappings.sorted { $0.start < $1.start }
    }

    /// The mapping that holds `address`, in mappings sorted by start.
    public static func mapping(of address: UInt64, in mappings: [ProcessMapping]) -> ProcessMapping? {
        var low = 0, high = mappings.count
        while low < high {
            let middle = (low + high) / 2
            if mappings[middle].start <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0, address < mappings[low - 1].end else { return nil }
        return mappings[low - 1]
    }
}

extension Substring {
    fileprivate var trimmingLeadingSpaces: String { String(drop { $0 == " " }) }
}

/// A PT_LOAD segment of an ELF file: where its bytes are in the file and where it wants them in memory.
public struct ELFLoadSegment: Equatable, Sendable {
    public var fileOffset: UInt64
    public var virtualAddress: UInt64
    public var fileSize: UInt64

    public init(fileOffset: UInt64, virtualAddress: UInt64, fileSize: UInt64) {
        self.fileOffset = fileOffset
        self.virtualAddress = virtualAddress
        self.fileSize = fileSize
    }
}

/// A symbol: the function at [address, address + size) in the ELF file's virtual addresses.
public struct ELFSymbol: Equatable, Sendable {
    public var name: String
    public var address: UInt64
    public var size: UInt64

    public init(name: String, address: UInt64, size: UInt64) {
        self.name = name
        self.address = address
        self.size = size
    }
}

/// Function symbols sorted by address, for lookups by address.
public struct SymbolTable: Sendable {
    private let symbols: [ELFSymbol]

    /// Duplicates at one address (aliases) keep the first name given: pass `.symtab` before `.dynsym`.
    public init(_ symbols: [ELFSymbol]) {
        var seen = Set<UInt64>()
        self.symbols = symbols.filter { $0.address != 0 && seen.insert($0.address).inserted }.sorted { $0.address < $1.address }
    }

    public var count: Int { symbols.count }

    /// The function that contains `address`, and the offset into it; nil between functions or outside all.
    /// A symbol without a size covers up to the next symbol.
    public func lookup(_ address: UInt64) -> (symbol: ELFSymbol, offset: UInt64)? {
        var low = 0, high = symbols.count
        while low < high {
            let middle = (low + high) / 2
            if symbols[middle].address <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0 else { return nil }
        let symbol = symbols[low - 1]
        if symbol.size > 0, address >= symbol.address + symbol.size { return nil }
        return (symbol, address - symbol.address)
    }
}

/// What lockscope keeps of an ELF file to name addresses in it.
public struct ELFImage: Sendable {
    /// The GNU build id, in hex; nil when the file has none.
    public var buildID: String?
    public var segments: [ELFLoadSegment]
    public var symbols: SymbolTable

    public init(buildID: String?, segments: [ELFLoadSegment], symbols: SymbolTable) {
        self.buildID = buildID
        self.segments = segments
        self.symbols = symbols
    }

    /// The virtual address (as the symbol table has it) of the byte at `fileOffset`: through the PT_LOAD
    /// segment holding it. For a PIE or shared library the load bias drops out: the mapping gives the file
    /// offset, the segment the address the linker gave that offset.
    public func virtualAddress(ofFileOffset fileOffset: UInt64) -> UInt64? {
        guard let segment = segments.first(where: { fileOffset >= $0.fileOffset && fileOffset < $0.fileOffset + $0.fileSize })
        else { return nil }
        return fileOffset - segment.fileOffset + segment.virtualAddress
    }
}

/// A mapped file opened when its process was first seen (so it can be read after the process exits),
/// read only when a frame needs it.
public protocol ELFSource: AnyObject {
    /// The GNU build id, in hex (read when the file is opened, from its notes: the cache's key); nil without one.
    var buildID: String? { get }
    /// The file's segments and symbols; nil when it is not ELF.
    func image() -> ELFImage?
}

/// Names user stacks: reads each process's mappings the first time it shows up with a user stack
/// (`sawProcess`) and opens each mapped file it has not opened yet, then, when the profile is built, loads
/// the symbols of the files frames point into, once per build id (or per device, inode and path when a file
/// has none), and turns (process, addresses) into frames. Seeing a process costs a read of its maps and an
/// open per new file: the many short-lived processes of a storm are seen before they exit.
///
/// A frame is `function` when the file's `.symtab` or `.dynsym` names it, `file+0xoffset` (the file
/// offset) when it does not, `0xaddress` outside every file mapping, and `[unknown]` when the process was
/// gone before its mappings could be read. Nothing is dropped.
public final class UserStackSymbolizer {
    public static let unknownFrame = "[unknown]"

    /// The text of /proc/PID/maps, nil when the process is gone.
    private let readMaps: (UInt32) -> String?
    /// Opens a mapped file (through the process, which may see it in another mount namespace); nil when it
    /// cannot be opened.
    private let openFile: (UInt32, ProcessMapping) -> ELFSource?
    /// Turns a symbol's name into what frames show (a Swift name demangled).
    private let demangle: (String) -> String

    private var mappings: [UInt32: [ProcessMapping]] = [:]
    /// Processes whose mappings were gone when first looked for.
    private var gone = Set<UInt32>()
    /// File key to the opened file; nil: it could not be opened. Files with one build id share one source
    /// (the copies of a binary in many containers' roots are one file open).
    private var files: [String: ELFSource?] = [:]
    private var filesByBuildID: [String: ELFSource] = [:]
    /// Loaded images by build id (or file key); nil: not ELF.
    private var images: [String: ELFImage?] = [:]
    private var demangled: [String: String] = [:]

    public init(readMaps: @escaping (UInt32) -> String?, openFile: @escaping (UInt32, ProcessMapping) -> ELFSource?,
                demangle: @escaping (String) -> String = { $0 }) {
        self.readMaps = readMaps
        self.openFile = openFile
        self.demangle = demangle
    }

    /// Processes whose user stacks were named `[unknown]` (by `frames`): they exited before their
    /// mappings were read.
    public var processesUnknown: UInt64 { UInt64(unknown.count) }
    private var unknown = Set<UInt32>()
    /// Distinct files opened, and distinct images (by build id) whose symbols were loaded.
    public var filesOpened: Int { Set(files.values.compactMap { $0.map(ObjectIdentifier.init) }).count }
    public var imagesLoaded: Int { images.values.filter { $0 != nil }.count }

    /// Reads the process's mappings and opens every file it maps that is not open yet, now, while it runs.
    public func sawProcess(_ pid: UInt32) {
        guard mappings[pid] == nil, !gone.contains(pid) else { return }
        guard let text = readMaps(pid) else {
            gone.insert(pid)
            return
        }
        let parsed = ProcessMaps.parse(text)
        mappings[pid] = parsed
        for mapping in parsed where files[mapping.fileKey] == nil {
            var file = openFile(pid, mapping)
            if let opened = file, let buildID = opened.buildID {
                if let known = filesByBuildID[buildID] { file = known } else { filesByBuildID[buildID] = opened }
            }
            files[mapping.fileKey] = .some(file)
        }
    }

    /// The image of a mapped file, loaded the first time one of its build id is asked for.
    private func image(_ mapping: ProcessMapping) -> ELFImage? {
        guard let file = files[mapping.fileKey] ?? nil else { return nil }
        let key = file.buildID.map { "build-id:" + $0 } ?? mapping.fileKey
        if let known = images[key] { return known }
        let image = file.image()
        images[key] = .some(image)
        return image
    }

    /// The frames of `addresses` (innermost first, as the kernel gives them) taken in process `pid`.
    public func frames(pid: UInt32, addresses: [UInt64]) -> [String] {
        guard let mapped = mappings[pid] else {
            unknown.insert(pid)
            return addresses.map { _ in Self.unknownFrame }
        }
        return addresses.enumerated().map { index, address in
            guard let mapping = ProcessMaps.mapping(of: address, in: mapped) else { return "0x" + String(address, radix: 16) }
            let offset = mapping.fileOffset(of: address)
            // A return address points after its call, which can be the next function's first byte: every
            // frame but the innermost (the interrupted instruction) is looked up one byte back.
            let lookupOffset = index == 0 || offset == 0 ? offset : offset - 1
            if let image = image(mapping), let address = image.virtualAddress(ofFileOffset: lookupOffset),
               let found = image.symbols.lookup(address) {
                return name(found.symbol.name)
            }
            return "\(mapping.basename)+0x\(String(offset, radix: 16))"
        }
    }

    private func name(_ symbol: String) -> String {
        if let known = demangled[symbol] { return known }
        let name = demangle(symbol)
        demangled[symbol] = name
        return name
    }
}

/// Go's own function table (`.gopclntab`), which a stripped Go binary keeps: Go needs it at run time for
/// its tracebacks, so `go build -ldflags=-s` and `strip` leave it. Read for Go 1.18 and later (the header
/// magics 0xfffffff0 and 0xfffffff1): the header, then a table of (entry offset, function offset) pairs
/// sorted by entry, each function's name in the name table. Nil for another version or a malformed table.
public enum GoFunctionTable {
    public static func symbols(_ table: UnsafeRawBufferPointer, textSectionAddress: UInt64) -> [ELFSymbol]? {
        guard table.count >= 8 else { return nil }
        let magic = table.loadUnaligned(as: UInt32.self)
        guard magic == 0xffff_fff0 || magic == 0xffff_fff1, table[4] == 0, table[5] == 0, table[7] == 8 else { return nil }
        func word(_ index: Int) -> UInt64? {
            let offset = 8 + index * 8
            return offset + 8 <= table.count ? table.loadUnaligned(fromByteOffset: offset, as: UInt64.self) : nil
        }
        guard let functionCount = word(0), let headerText = word(2), let namesOffset = word(3), let tableOffset = word(7),
              functionCount < 1 << 24 else { return nil }
        let textStart = headerText != 0 ? headerText : textSectionAddress
        let count = Int(functionCount)
        // count + 1 entries: the last one's entry offset is where the last function ends.
        guard tableOffset <= UInt64(table.count), Int(tableOffset) + (count + 1) * 8 <= table.count else { return nil }
        func u32(_ offset: Int) -> UInt32 { table.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
        var symbols: [ELFSymbol] = []
        symbols.reserveCapacity(count)
        for index in 0..<count {
            let entry = Int(tableOffset) + index * 8
            let start = u32(entry), end = u32(entry + 8), function = Int(tableOffset) + Int(u32(entry + 4))
            guard function + 8 <= table.count, end >= start else { return nil }
            let nameOffset = Int(namesOffset) + Int(Int32(bitPattern: u32(function + 4)))
            guard nameOffset >= 0, nameOffset < table.count else { return nil }
            let nameBytes = table[nameOffset...].prefix { $0 != 0 }
            symbols.append(ELFSymbol(name: String(decoding: nameBytes, as: UTF8.self), address: textStart + UInt64(start),
                                     size: UInt64(end - start)))
        }
        return symbols
    }
}
