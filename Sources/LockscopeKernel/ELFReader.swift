import CLibelf
import Foundation
import LockscopeCore

/// Reads what `UserStackSymbolizer` keeps of an ELF file, with libelf: the PT_LOAD segments, the GNU
/// build id, and the function symbols of `.symtab` and then `.dynsym` (a stripped file still has its
/// exported functions in `.dynsym`). Go's `.gopclntab` is not read: a stripped Go binary's frames show
/// as `binary+0xoffset`.
public enum ELFReader {
    /// The ELF file mapped at `mapping` in process `pid`: through /proc/PID/map_files (the very file
    /// mapped, even when deleted or in another mount namespace), else through the process's root, else
    /// by its path. Nil when none can be read or it is not ELF.
    public static func image(pid: UInt32, mapping: ProcessMapping) -> ELFImage? {
        let mapFile = "/proc/\(pid)/map_files/\(String(mapping.start, radix: 16))-\(String(mapping.end, radix: 16))"
        for path in [mapFile, "/proc/\(pid)/root\(mapping.path)", mapping.path] {
            if let image = image(path: path) { return image }
        }
        return nil
    }

    /// The ELF file at `path`; nil when it cannot be opened or is not ELF.
    public static func image(path: String) -> ELFImage? {
        guard elf_version(UInt32(EV_CURRENT)) != UInt32(EV_NONE) else { return nil }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard let elf = elf_begin(fd, ELF_C_READ_MMAP, nil) else { return nil }
        defer { elf_end(elf) }
        guard elf_kind(elf) == ELF_K_ELF else { return nil }
        var symtab: [ELFSymbol] = []
        var dynsym: [ELFSymbol] = []
        var buildID: String?
        var section = elf_nextscn(elf, nil)
        while let current = section {
            var header = GElf_Shdr()
            if gelf_getshdr(current, &header) != nil {
                switch Int32(bitPattern: header.sh_type) {
                case SHT_SYMTAB: symtab = symbols(elf, current, header)
                case SHT_DYNSYM: dynsym = symbols(elf, current, header)
                case SHT_NOTE: if buildID == nil { buildID = gnuBuildID(current) }
                default: break
                }
            }
            section = elf_nextscn(elf, current)
        }
        return ELFImage(buildID: buildID, segments: loadSegments(elf), symbols: SymbolTable(symtab + dynsym))
    }

    private static func loadSegments(_ elf: OpaquePointer) -> [ELFLoadSegment] {
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
    private static func symbols(_ elf: OpaquePointer, _ section: OpaquePointer, _ header: GElf_Shdr) -> [ELFSymbol] {
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
    private static func gnuBuildID(_ section: OpaquePointer) -> String? {
        guard let data = elf_getdata(section, nil), let base = data.pointee.d_buf else { return nil }
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
