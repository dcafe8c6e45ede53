import CLibelf
import Foundation
import LockscopeCore

/// Reads what `UserStackSymbolizer` keeps of an ELF file, with libelf: the PT_LOAD segments, the GNU
/// build id, and the function symbols of `.symtab` and then `.dynsym` (a stripped file still has its
/// exported functions in `.dynsym`), or, for a Go binary without `.symtab`, Go's `.gopclntab`. Files are
/// opened when their process is first seen and read at the end.
public enum ELFReader {
    /// The ELF file mapped at `mapping` in process `pid`, opened now: through /proc/PID/map_files (the very
    /// file mapped, even when deleted or in another mount namespace), else through the process's root, else
    /// by its path. Nil when none can be opened or it is not ELF.
    public static func open(pid: UInt32, mapping: ProcessMapping) -> ELFFile? {
        let mapFile = "/proc/\(pid)/map_files/\(String(mapping.start, radix: 16))-\(String(mapping.end, radix: 16))"
        for path in [mapFile, "/proc/\(pid)/root\(mapping.path)", mapping.path] {
            if let file = ELFFile(path: path) { return file }
        }
        return nil
    }

    /// The ELF file at `path`, read at once; nil when it cannot be opened or is not ELF.
    public static func image(path: String) -> ELFImage? { ELFFile(path: path)?.image() }
}

/// An open ELF file: its build id read when opened, its segments and symbols when asked for.
public final class ELFFile: ELFSource {
    private let fd: Int32
    private let elf: OpaquePointer
    public private(set) var buildID: String?

    init?(path: String) {
        guard elf_version(UInt32(EV_CURRENT)) != UInt32(EV_NONE) else { return nil }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        guard let elf = elf_begin(fd, ELF_C_READ_MMAP, nil) else {
            close(fd)
            return nil
        }
        guard elf_kind(elf) == ELF_K_ELF else {
            elf_end(elf)
            close(fd)
            return nil
        }
        self.fd = fd
        self.elf = elf
        buildID = sections(SHT_NOTE).lazy.compactMap(Self.gnuBuildID).first
    }

    deinit {
        elf_end(elf)
        close(fd)
    }

    public func image() -> ELFImage? {
        var symtab = sections(SHT_SYMTAB).flatMap(symbols)
        if symtab.isEmpty { symtab = goFunctions() ?? [] }  // a stripped Go binary still has its own table
        let dynsym = sections(SHT_DYNSYM).flatMap(symbols)
        return ELFImage(buildID: buildID, segments: loadSegments(), symbols: SymbolTable(symtab + dynsym))
    }

    /// The section with this name.
    private func section(named name: String) -> (OpaquePointer, GElf_Shdr)? {
        var names = 0
        guard elf_getshdrstrndx(elf, &names) == 0 else { return nil }
        var section = elf_nextscn(elf, nil)
        while let current = section {
            var header = GElf_Shdr()
            if gelf_getshdr(current, &header) != nil, let found = elf_strptr(elf, names, Int(header.sh_name)),
               String(cString: found) == name {
                return (current, header)
            }
            section = elf_nextscn(elf, current)
        }
        return nil
    }

    /// The functions of Go's `.gopclntab`, for a Go binary without `.symtab`.
    private func goFunctions() -> [ELFSymbol]? {
        guard let (table, _) = section(named: ".gopclntab"), let data = elf_getdata(table, nil), let bytes = data.pointee.d_buf
        else { return nil }
        let text = section(named: ".text")?.1.sh_addr ?? 0
        return GoFunctionTable.symbols(UnsafeRawBufferPointer(start: bytes, count: Int(data.pointee.d_size)), textSectionAddress: text)
    }

    /// The sections of a type, with their headers.
    private func sections(_ type: Int32) -> [(OpaquePointer, GElf_Shdr)] {
        var found: [(OpaquePointer, GElf_Shdr)] = []
        var section = elf_nextscn(elf, nil)
        while let current = section {
            var header = GElf_Shdr()
            if gelf_getshdr(current, &header) != nil, Int32(bitPattern: header.sh_type) == type { found.append((current, header)) }
            section = elf_nextscn(elf, current)
        }
        return found
    }

    private func loadSegments() -> [ELFLoadSegment] {
        var count = 0
        guard elf_getphdrnum(elf, &count) == 0 else { return [] }
        var segments: [ELFLoadSegment] = []
        for index in 0..<Int32(count) {
            var header = GElf_Phdr()
            guard gelf_getphdr(elf, index, &header) != nil, header.p_type == UInt32(PT_LOAD) else { continue }
            segments.append(ELFLoadSegment(fileOffset: header.p_offset, virtualAddress: header.p_vaddr, fileSize: header.p_filesz))
        }
        return segments
    }

    /// The defined functions of a symbol table section.
    private func symbols(_ section: OpaquePointer, _ header: GElf_Shdr) -> [ELFSymbol] {
        guard header.sh_entsize > 0, let data = elf_getdata(section, nil) else { return [] }
        let count = Int(header.sh_size / header.sh_entsize)
        var symbols: [ELFSymbol] = []
        symbols.reserveCapacity(count)
        for index in 0..<Int32(count) {
            var symbol = GElf_Sym()
            guard gelf_getsym(data, index, &symbol) != nil else { continue }
            let type = Int32(symbol.st_info & 0xf)
            guard type == STT_FUNC || type == STT_GNU_IFUNC, symbol.st_shndx != UInt16(SHN_UNDEF), symbol.st_value != 0,
                  let name = elf_strptr(elf, Int(header.sh_link), Int(symbol.st_name)) else { continue }
            symbols.append(ELFSymbol(name: String(cString: name), address: symbol.st_value, size: symbol.st_size))
        }
        return symbols
    }

    /// The GNU build id in a note section, in hex.
    private static func gnuBuildID(_ section: (OpaquePointer, GElf_Shdr)) -> String? {
        guard let data = elf_getdata(section.0, nil), let base = data.pointee.d_buf else { return nil }
        var offset = 0
        while true {
            var note = GElf_Nhdr()
            var nameOffset = 0, descriptorOffset = 0
            let next = gelf_getnote(data, offset, &note, &nameOffset, &descriptorOffset)
            guard next > 0 else { return nil }
            let name = base.advanced(by: nameOffset).assumingMemoryBound(to: CChar.self)
            if note.n_type == UInt32(NT_GNU_BUILD_ID), note.n_namesz == 4, strncmp(name, "GNU", 4) == 0 {
                let bytes = UnsafeRawBufferPointer(start: base.advanced(by: descriptorOffset), count: Int(note.n_descsz))
                return bytes.map { String(format: "%02x", $0) }.joined()
            }
            offset = next
        }
    }
}

/// Symbol names as people read them: Swift names demangled by the Swift runtime's own demangler (the
/// one `swift demangle` uses); other names as they are.
public enum SymbolNames {
    public static func demangle(_ name: String) -> String {
        guard name.hasPrefix("$s") || name.hasPrefix("_$s") || name.hasPrefix("$S") || name.hasPrefix("_T0") else { return name }
        return name.withCString { mangled in
            guard let demangled = swift_demangle(mangled, strlen(mangled), nil, nil, 0) else { return name }
            defer { free(demangled) }
            return String(cString: demangled)
        }
    }
}

/// The Swift runtime's demangler (exported by libswiftCore; declared in its SwiftShims' Demangle.h).
@_silgen_name("swift_demangle")
private func swift_demangle(_ mangledName: UnsafePointer<CChar>?, _ mangledNameLength: Int,
                            _ outputBuffer: UnsafeMutablePointer<CChar>?, _ outputBufferSize: UnsafeMutablePointer<Int>?,
                            _ flags: UInt32) -> UnsafeMutablePointer<CChar>?
