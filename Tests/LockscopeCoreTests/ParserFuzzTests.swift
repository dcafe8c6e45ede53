import XCTest

@testable import LockscopeCore

/// Bounded, seeded fuzzing of every parser that reads outside input: a profile file, /proc/kallsyms,
/// cgroup paths and CPU lists. None may crash; profiles must fail with one clear line.
final class ParserFuzzTests: XCTestCase {
    private static let iterations = 3_000

    private func mutate(_ bytes: [UInt8], _ random: inout SplitMix) -> [UInt8] {
        var bytes = bytes
        switch random.next() % 5 {
        case 0 where !bytes.isEmpty:  // truncate
            bytes.removeLast(Int(random.next() % UInt64(bytes.count)))
        case 1 where !bytes.isEmpty:  // flip bytes
            for _ in 0..<(1 + random.next() % 8) {
                bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
            }
        case 2 where !bytes.isEmpty:  // splice a run of JSON punctuation and digits
            let tokens = Array("{}[]\",:0-9e.nulltruefalse\\".utf8)
            let position = Int(random.next() % UInt64(bytes.count))
            bytes.insert(contentsOf: (0..<(1 + random.next() % 6)).map { _ in tokens[Int(random.next() % UInt64(tokens.count))] },
                         at: position)
        case 3 where bytes.count > 2:  // duplicate a slice
            let start = Int(random.next() % UInt64(bytes.count - 1))
            let end = min(bytes.count, start + 1 + Int(random.next() % 64))
            bytes.insert(contentsOf: bytes[start..<end], at: end)
        default:  // random garbage
            bytes = (0..<(random.next() % 200)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        }
        return bytes
    }

    func testProfileDecoderNeverCrashesAndFailsWithOneLine() throws {
        var aggregator = Aggregator(topology: nil)
        aggregator.record(WaitEvent(flags: AggregatorTests.rwsemWrite, waitNs: 1_500, lockAddress: AggregatorTests.sem,
                                    cgroupID: 5, stackID: 1))
        aggregator.record(SyscallEvent(syscall: .openTree, latencyNs: 10, cgroupID: 5))
        let valid = Array(try aggregator.profile(AggregatorTests.inputs()).encoded(pretty: false))
        var random = SplitMix(seed: 7)
        var accepted = 0
        for _ in 0..<Self.iterations {
            let input = Data(mutate(valid, &random))
            do {
                _ = try Profile.decode(input, source: "fuzz.json")
                accepted += 1
            } catch let error as UserError {
                XCTAssertFalse(error.description.contains("\n"), error.description)
                XCTAssertTrue(error.description.hasPrefix("fuzz.json ") || error.description.hasPrefix("fuzz.json: "),
                              error.description)
            }
        }
        XCTAssertLessThan(accepted, Self.iterations, "mutations must mostly be rejected")
    }

    func testKallsymsParserNeverCrashes() {
        let valid = Array(AggregatorTests.kallsymsText.utf8)
        var random = SplitMix(seed: 11)
        for _ in 0..<Self.iterations {
            let text = String(decoding: mutate(valid, &random), as: UTF8.self)
            let symbols = Kallsyms(parsing: text)
            _ = symbols.function(at: random.next())
            _ = symbols.dataObject(at: random.next())
            _ = symbols.isLockText(random.next())
        }
    }

    func testCgroupPathParserNeverCrashesAndAlwaysNamesSomething() {
        let id = String(repeating: "ab", count: 32)
        let valid = Array("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234_5678.slice/cri-containerd-\(id).scope/init".utf8)
        var random = SplitMix(seed: 13)
        for _ in 0..<Self.iterations {
            let path = "/" + String(decoding: mutate(valid, &random), as: UTF8.self)
            let container = ContainerIdentity.parse(cgroupPath: path)
            XCTAssertFalse(container.id.isEmpty, path)
            XCTAssertFalse(container.runtime.isEmpty, path)
        }
    }

    func testCPUListParserNeverCrashes() {
        let valid = Array("0-3,8,10-11\n".utf8)
        var random = SplitMix(seed: 17)
        for _ in 0..<Self.iterations {
            let text = String(decoding: mutate(valid, &random), as: UTF8.self)
            if let cpus = try? parseCPUList(text) {
                XCTAssertEqual(cpus, cpus.sorted(), text)
            }
        }
    }
}
