import CZlib
import Foundation
import LockscopeCore
import Testing

/// Fixture profiles and golden files under Fixtures/. Run the tests with LOCKSCOPE_UPDATE_GOLDEN=1 to
/// rewrite the golden files from the current output (then review the diff).
enum Fixtures {
    static func profile(_ name: String = "mount-storm") throws -> Profile {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures"))
        return try Profile.load(path: url.path)
    }

    /// Checks `actual` against the golden file `name`, or rewrites it when LOCKSCOPE_UPDATE_GOLDEN=1.
    static func expectGolden(_ actual: String, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        if ProcessInfo.processInfo.environment["LOCKSCOPE_UPDATE_GOLDEN"] == "1" {
            let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)")
            try Data(actual.utf8).write(to: source)
            return
        }
        let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"),
                               "golden file Fixtures/\(name) is missing: run with LOCKSCOPE_UPDATE_GOLDEN=1",
                               sourceLocation: sourceLocation)
        let expected = try String(contentsOf: url, encoding: .utf8)
        #expect(actual == expected, "output differs from Fixtures/\(name); run with LOCKSCOPE_UPDATE_GOLDEN=1 and review the diff",
                sourceLocation: sourceLocation)
    }

    /// The profile's totals: the sum of its locks' own statistics.
    static func totals(_ profile: Profile) -> (contentions: UInt64, waitNs: UInt64) {
        profile.locks.reduce((0, 0)) { ($0.0 + $1.stats.contentions, $0.1 + $1.stats.totalWaitNs) }
    }
}

/// Decompresses a gzip member (what pprof files hold).
func gunzip(_ data: Data) throws -> Data {
    var stream = z_stream()
    guard inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
        throw UserError("inflateInit2 failed")
    }
    defer { inflateEnd(&stream) }
    var input = [UInt8](data)
    var output = Data()
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    var status: Int32 = Z_OK
    try input.withUnsafeMutableBufferPointer { inputBuffer in
        stream.next_in = inputBuffer.baseAddress
        stream.avail_in = uInt(inputBuffer.count)
        while status != Z_STREAM_END {
            let chunkSize = chunk.count
            status = chunk.withUnsafeMutableBufferPointer { chunkBuffer in
                stream.next_out = chunkBuffer.baseAddress
                stream.avail_out = uInt(chunkSize)
                return inflate(&stream, Z_NO_FLUSH)
            }
            guard status == Z_OK || status == Z_STREAM_END else { throw UserError("inflate failed: \(status)") }
            output.append(contentsOf: chunk.prefix(chunkSize - Int(stream.avail_out)))
        }
    }
    return output
}

/// A small profile built in code, for edge cases the fixture does not have.
func makeProfile(locks: [LockProfile], topology: Topology? = nil) -> Profile {
    Profile(hostname: "test", kernel: "6.1.0", startedAt: "2026-11-20T10:15:00Z", durationNs: 1_000_000_000, events: 0,
            drops: Drops(), recording: Recording(), topology: topology, containers: [], mounts: nil, locks: locks)
}

func makeStats(_ contentions: UInt64, _ waitNs: UInt64) -> WaitStats {
    WaitStats(contentions: contentions, totalWaitNs: waitNs, minWaitNs: 0, maxWaitNs: 0, p50WaitNs: 0, p90WaitNs: 0,
              p99WaitNs: 0, p999WaitNs: 0, histogram: [])
}
