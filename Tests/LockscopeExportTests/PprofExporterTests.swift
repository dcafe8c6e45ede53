import Foundation
import LockscopeCore
import SwiftProtobuf
import Testing
@testable import LockscopeExport

@Suite struct PprofExporterTests {
    static func decode(_ data: Data) throws -> Perftools_Profiles_Profile {
        #expect(data.prefix(2) == Data([0x1f, 0x8b]), "gzip magic")
        return try Perftools_Profiles_Profile(serializedBytes: try gunzip(data))
    }

    @Test func goldenFileOfTheDecodedMessage() throws {
        let profile = try Fixtures.profile()
        let file = try PprofExporter.render(profile)
        #expect(try PprofExporter.render(profile) == file, "the same profile gives the same bytes")
        let decoded = try Self.decode(file)
        try Fixtures.expectGolden(decoded.textFormatString(), "mount-storm.pprof.txt")
    }

    @Test(arguments: ExportWeight.allCases)
    func decodesBackToTheProfileTotals(weight: ExportWeight) throws {
        let profile = try Fixtures.profile()
        let decoded = try Self.decode(try PprofExporter.render(profile, weight: weight, grouping: .lock))
        let strings = decoded.stringTable
        #expect(strings.first == "")
        #expect(decoded.sampleType.map { [strings[Int($0.type)], strings[Int($0.unit)]] } == [["contentions", "count"], ["delay", "nanoseconds"]])
        #expect(strings[Int(decoded.defaultSampleType)] == (weight == .wait ? "delay" : "contentions"))
        #expect(decoded.sample.reduce(0) { $0 + $1.value[0] } == 17)
        #expect(decoded.sample.reduce(0) { $0 + $1.value[1] } == 1_090_000)
        #expect(decoded.timeNanos == 1_795_169_700_250_000_000)
        #expect(decoded.durationNanos == 10_000_000_000)

        func label(_ sample: Perftools_Profiles_Sample, _ key: String) -> Perftools_Profiles_Label? {
            sample.label.first { strings[Int($0.key)] == key }
        }
        for lock in profile.locks {
            let samples = decoded.sample.filter { label($0, "lock").map { strings[Int($0.str)] } == lock.name }
            #expect(samples.reduce(0) { $0 + $1.value[0] } == Int64(lock.stats.contentions))
            #expect(samples.reduce(0) { $0 + $1.value[1] } == Int64(lock.stats.totalWaitNs))
            #expect(samples.allSatisfy { label($0, "lock_kind").map { strings[Int($0.str)] } == lock.kind.rawValue })
        }
        let containerA = decoded.sample.filter { label($0, "container").map { strings[Int($0.str)] }?.hasPrefix("3f2a9c1b7d4e") == true }
        #expect(containerA.reduce(0) { $0 + $1.value[1] } == 540_000)
        // Grouped by lock, stackless waits are split by container, so they carry no CPU or socket:
        // socket 1 has 450 µs of waits, 50 µs of them without a stack.
        #expect(decoded.sample.allSatisfy { sample in ["cpu", "socket"].allSatisfy { key in label(sample, key).map { $0.str == 0 && strings[Int($0.numUnit)] == key } ?? true } })
        let socket1 = decoded.sample.filter { label($0, "socket")?.num == 1 }
        #expect(socket1.reduce(0) { $0 + $1.value[1] } == 400_000)
        let byCPU = try Self.decode(try PprofExporter.render(profile, weight: weight, grouping: StackGrouping([.cpu])))
        let socket1ByCPU = byCPU.sample.filter { sample in
            sample.label.contains { byCPU.stringTable[Int($0.key)] == "socket" && $0.num == 1 }
        }
        #expect(socket1ByCPU.reduce(0) { $0 + $1.value[1] } == 450_000)
    }

    @Test func locationsAreLeafFirstWithOneFunctionEach() throws {
        let decoded = try Self.decode(try PprofExporter.render(try Fixtures.profile()))
        let strings = decoded.stringTable
        let functionNames = Dictionary(uniqueKeysWithValues: decoded.function.map { ($0.id, strings[Int($0.name)]) })
        let locationNames = Dictionary(uniqueKeysWithValues: decoded.location.map { ($0.id, functionNames[$0.line[0].functionID]!) })
        #expect(Set(decoded.location.map(\.mappingID)) == [1])
        #expect(strings[Int(decoded.mapping[0].filename)] == "[kernel.kallsyms]")
        let umount = try #require(decoded.sample.first { $0.locationID.map { locationNames[$0]! }.contains("path_umount") })
        #expect(umount.locationID.map { locationNames[$0]! }.first.map { ["down_write", "queued_spin_lock_slowpath"].contains($0) } == true)
        #expect(umount.locationID.map { locationNames[$0]! }.last?.hasPrefix("[lock] ") == true)
    }

    /// pprof writes a path's frames once per sample (their labels differ): 650 samples of a 100 000-frame
    /// stack are over 64 million, while folded stacks merge them into one line.
    @Test func samplesRepeatingADeepStackTooOftenAreRefused() throws {
        let contexts = (0..<650).map { StackContext(cpu: $0, container: "host", count: 1, totalWaitNs: 10) }
        let stack = StackProfile(frames: (0..<100_000).map { "f\($0)" }, count: 650, totalWaitNs: 6_500, maxWaitNs: 10,
                                 contexts: contexts)
        let profile = makeProfile(locks: [LockProfile(name: "deep", identity: .caller, kind: .mutex, address: "0x1",
                                                      stats: makeStats(650, 6_500), stacks: [stack])])
        #expect(throws: UserError("grouped by lock, the profile's call paths hold over 64000000 frames in all (each stack once "
                                  + "per CPU and container it is split by), more than lockscope writes: export folded stacks "
                                  + "or speedscope, which merge a path's samples")) {
            try PprofExporter.render(profile)
        }
        #expect(try FoldedExporter.render(profile).hasSuffix(";f0 6500\n"))
    }

    /// Input fed and output taken in pieces (zlib counts in 32 bits): the member decompresses to the input.
    @Test func gzipInPieces() throws {
        var state: UInt64 = 88_172_645_463_325_252
        let noise = Data((0..<3_000_000).map { _ in  // xorshift: incompressible, so more than one output piece
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        })
        let pieces = try Gzip.compress(noise, inputPiece: 700_001)
        #expect(pieces.count > Gzip.outputPiece)
        #expect(try gunzip(pieces) == noise)
        #expect(try gunzip(try Gzip.compress(noise)) == noise)
        #expect(try gunzip(try Gzip.compress(Data())) == Data())
    }

    @Test func startTimes() {
        #expect(PprofExporter.startNanoseconds("2026-11-20T10:15:00Z") == 1_795_169_700_000_000_000)
        #expect(PprofExporter.startNanoseconds("2026-11-20T10:15:00.123456Z") == 1_795_169_700_123_456_000)
        #expect(PprofExporter.startNanoseconds("2026-11-20T11:15:00.5+01:00") == 1_795_169_700_500_000_000)
        #expect(PprofExporter.startNanoseconds("2026-11-20T10:15:00.123456789Z") == 1_795_169_700_123_456_789)
        #expect(PprofExporter.startNanoseconds("yesterday") == 0)
        // The last nanosecond a 64-bit count since 1970 holds, and past it (which overflowed).
        #expect(PprofExporter.startNanoseconds("2262-04-11T23:47:16.854775807Z") == .max)
        #expect(PprofExporter.startNanoseconds("2262-04-11T23:47:16.854775808Z") == 0)
        #expect(PprofExporter.startNanoseconds("9999-12-31T23:59:59Z") == 0)
    }
}
