import CLockscopeBPF
import XCTest

@testable import LockscopeCore

final class UserStacksTests: XCTestCase {
    /// /proc/PID/maps of a PIE with a shared library, as Linux writes it (columns padded before the path).
    static let maps = """
        5581f2a00000-5581f2a01000 r--p 00000000 fd:01 1311                       /tmp/idmap helper
        5581f2a01000-5581f2a02000 r-xp 00001000 fd:01 1311                       /tmp/idmap helper
        5581f2a02000-5581f2a03000 r--p 00002000 fd:01 1311                       /tmp/idmap helper
        5581f3c4e000-5581f3c6f000 rw-p 00000000 00:00 0                          [heap]
        7f2b1c228000-7f2b1c3bd000 r-xp 00028000 fd:01 2098                       /usr/lib/x86_64-linux-gnu/libc.so.6
        7f2b1c400000-7f2b1c401000 r-xp 00000000 fd:01 4242                       /tmp/gone (deleted)
        7f2b1c5fe000-7f2b1c600000 r-xp 00000000 00:00 0
        7ffd4b1f0000-7ffd4b1f2000 r-xp 00000000 00:00 0                          [vdso]
        not a line
        """

    func testMapsKeepExecutableFileMappingsOnly() {
        let mappings = ProcessMaps.parse(Self.maps)
        XCTAssertEqual(mappings, [
            ProcessMapping(start: 0x5581_f2a0_1000, end: 0x5581_f2a0_2000, fileOffset: 0x1000, device: "fd:01", inode: 1311,
                           path: "/tmp/idmap helper"),
            ProcessMapping(start: 0x7f2b_1c22_8000, end: 0x7f2b_1c3b_d000, fileOffset: 0x28000, device: "fd:01", inode: 2098,
                           path: "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            ProcessMapping(start: 0x7f2b_1c40_0000, end: 0x7f2b_1c40_1000, fileOffset: 0, device: "fd:01", inode: 4242,
                           path: "/tmp/gone (deleted)"),
        ])
        XCTAssertEqual(mappings[2].basename, "gone")
        XCTAssertEqual(ProcessMaps.mapping(of: 0x7f2b_1c22_8000, in: mappings)?.inode, 2098)
        XCTAssertEqual(ProcessMaps.mapping(of: 0x7f2b_1c3b_cfff, in: mappings)?.inode, 2098)
        XCTAssertNil(ProcessMaps.mapping(of: 0x7f2b_1c3b_d000, in: mappings))
        XCTAssertNil(ProcessMaps.mapping(of: 0x1000, in: mappings))
    }

    /// libc's text: mapped from file offset 0x28000, which its PT_LOAD puts at virtual address 0x28000; a
    /// library whose text segment's virtual address differs from its file offset (a gap the linker left).
    func testPIEAndLibraryAddressesGoThroughTheirLoadSegments() {
        let libc = ProcessMapping(start: 0x7f2b_1c22_8000, end: 0x7f2b_1c3b_d000, fileOffset: 0x28000, device: "fd:01",
                                  inode: 2098, path: "/usr/lib/x86_64-linux-gnu/libc.so.6")
        XCTAssertEqual(libc.fileOffset(of: 0x7f2b_1c24_f24a), 0x4f24a)
        let shifted = ELFImage(buildID: nil, segments: [
            ELFLoadSegment(fileOffset: 0, virtualAddress: 0, fileSize: 0x27e40),
            ELFLoadSegment(fileOffset: 0x28000, virtualAddress: 0x29000, fileSize: 0x195000),
        ], symbols: SymbolTable([]))
        XCTAssertEqual(shifted.virtualAddress(ofFileOffset: 0x4f24a), 0x5024a)
        XCTAssertEqual(shifted.virtualAddress(ofFileOffset: 0x100), 0x100)
        XCTAssertNil(shifted.virtualAddress(ofFileOffset: 0x27f00), "between segments")
        XCTAssertNil(shifted.virtualAddress(ofFileOffset: 0x1bd000), "past the last segment")
    }

    func testSymbolLookup() {
        let table = SymbolTable([
            ELFSymbol(name: "run_worker", address: 0x1400, size: 0x80),
            ELFSymbol(name: "main", address: 0x1500, size: 0x40),
            ELFSymbol(name: "main_alias", address: 0x1500, size: 0x40),
            ELFSymbol(name: "_start", address: 0x1100, size: 0),
            ELFSymbol(name: "undefined", address: 0, size: 0),
        ])
        XCTAssertEqual(table.count, 3)
        XCTAssertEqual(table.lookup(0x1400)?.symbol.name, "run_worker")
        XCTAssertEqual(table.lookup(0x147f)?.offset, 0x7f)
        XCTAssertNil(table.lookup(0x1480), "past run_worker's size, before main")
        XCTAssertEqual(table.lookup(0x1520)?.symbol.name, "main", "the first name of an address is kept")
        XCTAssertEqual(table.lookup(0x1300)?.symbol.name, "_start", "no size: up to the next symbol")
        XCTAssertNil(table.lookup(0x10ff))
        XCTAssertNil(table.lookup(0x1540))
    }

    /// A file the fixture "opens": counts how often its symbols are read.
    final class FixtureFile: ELFSource {
        let buildID: String?
        let loaded: ELFImage
        var reads = 0
        init(buildID: String?, _ image: ELFImage) { self.buildID = buildID; loaded = image }
        func image() -> ELFImage? { reads += 1; return loaded }
    }

    /// A symbolizer over fixture maps and files: what it reads, and when.
    final class Fixture {
        var mapsReads: [UInt32] = []
        var opened: [String] = []
        let helper = FixtureFile(buildID: "abcd", ELFImage(
            buildID: "abcd", segments: [ELFLoadSegment(fileOffset: 0x1000, virtualAddress: 0x1000, fileSize: 0x1000)],
            symbols: SymbolTable([ELFSymbol(name: "issue_syscall", address: 0x1200, size: 0x30),
                                  ELFSymbol(name: "prepare_idmapped_overlay", address: 0x1230, size: 0x20),
                                  ELFSymbol(name: "$s15LockscopeStress4mainyyF", address: 0x1250, size: 0x20)])))
        let libc = FixtureFile(buildID: nil, ELFImage(
            buildID: nil, segments: [ELFLoadSegment(fileOffset: 0x28000, virtualAddress: 0x28000, fileSize: 0x195000)],
            symbols: SymbolTable([])))
        /// The helper's build id again, from another path (a copy in a container's root).
        let helperCopy = FixtureFile(buildID: "abcd", ELFImage(buildID: "abcd", segments: [], symbols: SymbolTable([])))

        lazy var symbolizer = UserStackSymbolizer(
            readMaps: { [unowned self] pid in
                mapsReads.append(pid)
                switch pid {
                case 99: return nil
                case 50: return "7f0000001000-7f0000002000 r-xp 00001000 fd:02 77 /containers/1/rootfs/idmap helper"
                default: return UserStacksTests.maps
                }
            },
            openFile: { [unowned self] _, mapping in
                opened.append(mapping.path)
                switch mapping.inode {
                case 1311: return helper
                case 77: return helperCopy
                case 2098: return libc
                default: return nil
                }
            },
            demangle: { $0.hasPrefix("$s") ? "LockscopeStress.main() -> ()" : $0 })
    }

    func testFramesNamedUnsymbolizedOrUnknownNeverDropped() {
        let fixture = Fixture()
        let symbolizer = fixture.symbolizer
        for pid: UInt32 in [7, 7, 8, 99, 50] { symbolizer.sawProcess(pid) }
        XCTAssertEqual(fixture.mapsReads, [7, 8, 99, 50], "maps read once per process")
        XCTAssertEqual(fixture.opened, ["/tmp/idmap helper", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/tmp/gone (deleted)",
                                        "/containers/1/rootfs/idmap helper"], "each file opened once, whatever the process")
        XCTAssertEqual(symbolizer.filesOpened, 2, "the copy with the helper's build id is the helper's file")
        XCTAssertEqual(fixture.helper.reads, 0, "symbols are read when frames need them")
        let frames = symbolizer.frames(pid: 8, addresses: [
            0x5581_f2a0_1210,  // innermost: inside issue_syscall
            0x5581_f2a0_1230,  // a return address just past issue_syscall's end: the call was in issue_syscall
            0x5581_f2a0_1240,  // inside prepare_idmapped_overlay
            0x5581_f2a0_1251,  // a Swift function, demangled
            0x7f2b_1c24_f24a,  // libc, no symbol: file+offset
            0x7f2b_1c40_0010,  // a file that could not be opened
            0x7f2b_1c5f_e010,  // anonymous memory
        ])
        XCTAssertEqual(frames, ["issue_syscall", "issue_syscall", "prepare_idmapped_overlay", "LockscopeStress.main() -> ()",
                                "libc.so.6+0x4f24a", "gone+0x10", "0x7f2b1c5fe010"])
        XCTAssertEqual(symbolizer.frames(pid: 50, addresses: [0x7f00_0000_1210]), ["issue_syscall"],
                       "another file with the same build id: the symbols already read")
        XCTAssertEqual(fixture.helper.reads, 1)
        XCTAssertEqual(fixture.libc.reads, 1)
        XCTAssertEqual(symbolizer.imagesLoaded, 2)
        XCTAssertEqual(symbolizer.processesUnknown, 0)
        XCTAssertEqual(symbolizer.frames(pid: 99, addresses: [0x5581_f2a0_1210, 0x1]), ["[unknown]", "[unknown]"])
        XCTAssertEqual(symbolizer.frames(pid: 1234, addresses: [0x5581_f2a0_1210]), ["[unknown]"], "never seen: unknown")
        XCTAssertEqual(symbolizer.processesUnknown, 2)
    }

    /// Waits are kept apart by their user stack as well as their kernel stack, and user stacks (of different
    /// processes: different ids) that name the same frames are one stack. Each process is announced once.
    func testAggregatorKeysWaitsByUserStackAndJoinsThemByFrames() {
        var seen: [UInt32] = []
        var aggregator = Aggregator(topology: nil, sawUserStackProcess: { seen.append($0) })
        let sem: UInt64 = 0xffff_ffff_8300_1000
        for (pid, userStack, ns) in [(10, 0, 100), (10, 0, 200), (11, 1, 400), (12, 2, 800), (12, -1, 1_600)] as [(UInt32, Int32, UInt64)] {
            aggregator.record(WaitEvent(flags: 4, waitNs: ns, lockAddress: sem, pid: pid, stackID: 2, userStackID: userStack))
        }
        XCTAssertEqual(seen, [10, 11, 12])
        var inputs = AggregatorTests.inputs()
        inputs.userFrames = { id in
            switch id {
            case 0, 2: return ["issue_syscall", "prepare_idmapped_overlay", "main"]
            case 1: return ["mount", "other_caller", "main"]
            default: return nil
            }
        }
        let stacks = aggregator.profile(inputs).locks[0].stacks
        let byUser = Dictionary(uniqueKeysWithValues: stacks.map { ($0.userFrames?.joined(separator: ";") ?? "-", $0.totalWaitNs) })
        XCTAssertEqual(byUser, ["issue_syscall;prepare_idmapped_overlay;main": 1_100, "mount;other_caller;main": 400, "-": 1_600])
        XCTAssertTrue(stacks.allSatisfy { $0.frames == stacks[0].frames }, "one kernel stack under every user stack")
    }

    /// A Go 1.20 `.gopclntab` laid out by hand: header, function table (entry offset, function offset) with
    /// its end entry, two `_func` records and the name table.
    func testGoFunctionTable() throws {
        var bytes = [UInt8](repeating: 0, count: 0x100)
        func put32(_ value: UInt32, at offset: Int) { withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<offset + 4, with: $0) } }
        func put64(_ value: UInt64, at offset: Int) { withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<offset + 8, with: $0) } }
        put32(0xffff_fff1, at: 0)
        bytes[6] = 1  // minLC
        bytes[7] = 8  // ptrSize
        put64(2, at: 8)          // nfunc
        put64(0x401000, at: 24)  // textStart
        put64(0xc0, at: 32)      // funcnameOffset
        put64(0x80, at: 64)      // pcOffset: the function table
        // entries: (0x0, func at +0x20), (0x40, func at +0x28), end 0x70
        put32(0x00, at: 0x80); put32(0x20, at: 0x84)
        put32(0x40, at: 0x88); put32(0x28, at: 0x8c)
        put32(0x70, at: 0x90)
        put32(0x00, at: 0xa0); put32(0, at: 0xa4)   // _func: entryOff, nameOff
        put32(0x40, at: 0xa8); put32(10, at: 0xac)
        let names = Array("main.main\0main.prepareIDMappedOverlay\0".utf8)
        bytes.replaceSubrange(0xc0..<0xc0 + names.count, with: names)
        let symbols = try XCTUnwrap(bytes.withUnsafeBytes { GoFunctionTable.symbols($0, textSectionAddress: 0) })
        XCTAssertEqual(symbols, [ELFSymbol(name: "main.main", address: 0x401000, size: 0x40),
                                 ELFSymbol(name: "main.prepareIDMappedOverlay", address: 0x401040, size: 0x30)])
        bytes[0] = 0xfa  // Go 1.16's magic: another layout
        XCTAssertNil(bytes.withUnsafeBytes { GoFunctionTable.symbols($0, textSectionAddress: 0) })
        bytes[0] = 0xf1
        put64(0x1000, at: 64)  // a function table past the section's end
        XCTAssertNil(bytes.withUnsafeBytes { GoFunctionTable.symbols($0, textSectionAddress: 0) })
    }

    /// A wait record with the user stack after it: the reader keeps each distinct (process, addresses)
    /// once; a plain wait record, or one decoded without a table, has none.
    func testWaitRecordsWithUserStacksDecodeIntoTheTable() throws {
        func record(pid: UInt32, frames: [UInt64]) -> [UInt8] {
            var raw = lockscope_wait_user_event()
            raw.event.type = UInt32(LOCKSCOPE_EVENT_WAIT.rawValue)
            raw.event.pid = pid
            raw.event.wait_ns = 100
            raw.event.user_frames = UInt32(frames.count)
            withUnsafeMutableBytes(of: &raw.user_stack) { stack in
                frames.withUnsafeBytes { stack.copyMemory(from: $0) }
            }
            return withUnsafeBytes(of: raw) { Array($0) }
        }
        let table = UserStackTable()
        func decode(_ bytes: [UInt8], table: UserStackTable? = table) -> WaitEvent? {
            guard case .wait(let event) = bytes.withUnsafeBytes({ KernelEvent.decode($0, userStacks: table) }) else { return nil }
            return event
        }
        let a = try XCTUnwrap(decode(record(pid: 7, frames: [0x1234, 0x5678, 0x9abc])))
        let again = try XCTUnwrap(decode(record(pid: 7, frames: [0x1234, 0x5678, 0x9abc])))
        let otherProcess = try XCTUnwrap(decode(record(pid: 8, frames: [0x1234, 0x5678, 0x9abc])))
        let shorter = try XCTUnwrap(decode(record(pid: 7, frames: [0x1234, 0x5678])))
        XCTAssertEqual([a.userStackID, again.userStackID, otherProcess.userStackID, shorter.userStackID], [0, 0, 1, 2])
        XCTAssertEqual(table.stack(0), UserStackTable.Stack(pid: 7, addresses: [0x1234, 0x5678, 0x9abc]))
        XCTAssertEqual(table.stack(1)?.pid, 8)
        XCTAssertEqual(table.stack(2)?.addresses, [0x1234, 0x5678])
        XCTAssertNil(table.stack(3))
        XCTAssertEqual(decode(record(pid: 7, frames: []))?.userStackID, -1)
        XCTAssertEqual(decode(record(pid: 7, frames: [0x1]), table: nil)?.userStackID, -1)
        // A record cut before its stack keeps the event, without the stack.
        let cut = Array(record(pid: 9, frames: [0x1]).prefix(MemoryLayout<lockscope_wait_event>.size))
        XCTAssertEqual(decode(cut)?.userStackID, -1)
        XCTAssertEqual(table.count, 3)
    }
}
