import Foundation
import LockscopeCore
import LockscopeKernel
import LockscopeTestSupport
import XCTest

/// `ELFReader` against real binaries, checked with the toolchains' own symbol listers (`nm`, `go tool nm`).
final class ELFReaderTests: XCTestCase {
    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "lockscope-elf-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// Function addresses as an `nm`-style lister prints them: `ADDRESS TYPE NAME` lines, text symbols only.
    private func textSymbols(_ listing: String) -> [String: UInt64] {
        var symbols: [String: UInt64] = [:]
        for line in listing.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 3, ["T", "t"].contains(fields[1]), let address = UInt64(fields[0], radix: 16) else { continue }
            symbols[String(fields[2])] = address
        }
        return symbols
    }

    /// The C helper, PIE: `.symtab` names its functions at nm's addresses; stripped, only `.dynsym` is left,
    /// which has none of them.
    func testCSymbolsAgreeWithNm() throws {
        guard ExternalTool.shouldRun("cc"), ExternalTool.shouldRun("nm"), ExternalTool.shouldRun("strip") else {
            throw XCTSkip("cc, nm or strip is not installed (apt-get install gcc binutils)")
        }
        let directory = try temporaryDirectory()
        try IdmapHelper.source.write(toFile: "\(directory)/helper.c", atomically: true, encoding: .utf8)
        _ = try ExternalTool.check("cc", ["-O1", "-fno-omit-frame-pointer", "-o", "\(directory)/helper", "\(directory)/helper.c"],
                                   install: "apt-get install gcc")
        let nm = textSymbols(try ExternalTool.check("nm", ["\(directory)/helper"], install: "apt-get install binutils"))
        let image = try XCTUnwrap(ELFReader.image(path: "\(directory)/helper"))
        XCTAssertNotNil(image.buildID, "gcc writes a GNU build id")
        for name in ["main", "run_worker", "prepare_idmapped_overlay", "do_prepare_idmapped_overlay", "issue_syscall"] {
            let address = try XCTUnwrap(nm[name], name)
            XCTAssertEqual(image.symbols.lookup(address + 1)?.symbol.name, name)
            XCTAssertEqual(image.symbols.lookup(address)?.offset, 0)
        }
        _ = try ExternalTool.check("strip", ["\(directory)/helper"], install: "apt-get install binutils")
        let stripped = try XCTUnwrap(ELFReader.image(path: "\(directory)/helper"))
        XCTAssertEqual(stripped.buildID, image.buildID, "strip keeps the build id")
        XCTAssertNil(stripped.symbols.lookup(try XCTUnwrap(nm["prepare_idmapped_overlay"]) + 1))
        // The file offset of a function, through the PT_LOAD segments, is where nm's address lies in the file.
        let address = try XCTUnwrap(nm["issue_syscall"])
        let segment = try XCTUnwrap(image.segments.first { address >= $0.virtualAddress && address < $0.virtualAddress + $0.fileSize })
        XCTAssertEqual(image.virtualAddress(ofFileOffset: address - segment.virtualAddress + segment.fileOffset), address)
    }

    /// A Go binary stripped of `.symtab`: its functions are named from `.gopclntab`, at `go tool nm`'s
    /// addresses of the unstripped build.
    func testStrippedGoBinaryIsNamedFromItsFunctionTable() throws {
        guard ExternalTool.shouldRun("go"), ExternalTool.shouldRun("strip") else {
            throw XCTSkip("go or strip is not installed (apt-get install golang-go binutils)")
        }
        let directory = try temporaryDirectory()
        try """
            package main

            import "os"

            //go:noinline
            func doPrepareIDMappedOverlay(n int) int { return n * 3 }

            //go:noinline
            func prepareIDMappedOverlay(n int) int { return doPrepareIDMappedOverlay(n) + 1 }

            func main() { os.Exit(prepareIDMappedOverlay(len(os.Args)) - 7) }
            """.write(toFile: "\(directory)/main.go", atomically: true, encoding: .utf8)
        try "module overlay\n\ngo 1.18\n".write(toFile: "\(directory)/go.mod", atomically: true, encoding: .utf8)
        let go = try XCTUnwrap(ExternalTool.path(of: "go"))
        let build = try ExternalTool.run("/usr/bin/env", ["-C", directory, "GOCACHE=\(directory)/cache", "GOFLAGS=-mod=mod",
                                                          go, "build", "-o", "\(directory)/overlay", "."])
        XCTAssertEqual(build.status, 0, build.stderr)
        let nm = textSymbols(try ExternalTool.check("go", ["tool", "nm", "\(directory)/overlay"], install: "apt-get install golang-go"))
        _ = try ExternalTool.check("strip", ["\(directory)/overlay"], install: "apt-get install binutils")
        let image = try XCTUnwrap(ELFReader.image(path: "\(directory)/overlay"))
        for name in ["main.prepareIDMappedOverlay", "main.doPrepareIDMappedOverlay", "main.main", "runtime.main"] {
            let address = try XCTUnwrap(nm[name], name)
            XCTAssertEqual(image.symbols.lookup(address + 1)?.symbol.name, name)
        }
        XCTAssertGreaterThan(image.symbols.count, 1000, "the runtime's functions too")
    }
}
