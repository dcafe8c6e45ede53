import Foundation
import LockscopeCore
import XCTest

@testable import LockscopeCompare
@testable import LockscopeExport
@testable import LockscopeReport

/// Seeded mutations of a profile that has every section, each decoded and, when it decodes, handed to
/// every reader in-process: the report in each format, every exporter, the flame graph, comparisons
/// rendered as check and diff print them, and a budget. A trap kills the test process, so any trap fails.
final class ReaderFuzzTests: XCTestCase {
    private static let iterations = 100

    /// Numbers a crafted profile may hold: the edges of the integer types its fields have (mostly, so that
    /// the profile still decodes and reaches the readers), and what no field takes.
    private static let extremes = ["0", "1", "-0", "12.0", "1e3", "65535", "2147483647", "4294967295", "9223372036854775807",
                                   "9223372036854775808", "18446744073709551615"]
    private static let invalid = ["-1", "2.5", "1e308", "1e999999999", "-1e-7", "65536", "2147483648", "-2147483649",
                                  "18446744073709551616", String(repeating: "9", count: 400)]
    /// Strings: control characters, separators the exporters rely on, nothing, and a lot.
    private static let strings = [#"\u001b]0;x\u0007\u001b[2J"#, #"\u0000"#, "", ";", "a;b c\\\\n", "[lock] x", "1e999",
                                  String(repeating: "s", count: 5_000), #"\ud800"#, "caf\u{e9} \u{202e}"]

    /// Where `json`'s number tokens (with the key they are under), string values (without their quotes)
    /// and non-empty arrays' openings are.
    private static func tokens(_ json: [UInt8]) -> (numbers: [(range: Range<Int>, key: String)], strings: [Range<Int>], arrays: [Int]) {
        var numbers: [(range: Range<Int>, key: String)] = [], strings: [Range<Int>] = [], arrays: [Int] = []
        var key = ""
        var i = 0
        while i < json.count {
            switch json[i] {
            case UInt8(ascii: "\""):
                var end = i + 1
                while json[end] != UInt8(ascii: "\"") { end += json[end] == UInt8(ascii: "\\") ? 2 : 1 }
                if json[end + 1] == UInt8(ascii: ":") {
                    key = String(decoding: json[(i + 1)..<end], as: UTF8.self)
                } else {
                    strings.append((i + 1)..<end)
                }
                i = end + 1
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                var end = i + 1
                while end < json.count && "0123456789.eE+-".utf8.contains(json[end]) { end += 1 }
                numbers.append((i..<end, key))
                i = end
            case UInt8(ascii: "["):
                if json[i + 1] != UInt8(ascii: "]") { arrays.append(i) }
                i += 1
            default:
                i += 1
            }
        }
        return (numbers, strings, arrays)
    }

    /// The offset after the JSON value at `start` (the document is valid).
    private static func end(ofValueAt start: Int, in json: [UInt8]) -> Int {
        var depth = 0, i = start, inString = false
        repeat {
            let byte = json[i]
            if inString {
                if byte == UInt8(ascii: "\\") { i += 1 } else if byte == UInt8(ascii: "\"") { inString = false }
            } else if byte == UInt8(ascii: "\"") {
                inString = true
            } else if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
                depth += 1
            } else if byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") {
                depth -= 1
            } else if depth == 0 && (byte == UInt8(ascii: ",")) {
                return i
            }
            i += 1
        } while depth > 0 || inString || (i < json.count && !",]}".utf8.contains(json[i]))
        return i
    }

    /// An extreme that most fields take, else one that none does.
    private static func number(_ random: inout Xorshift) -> String {
        (Int.random(in: 0..<6, using: &random) > 0 ? extremes : invalid).randomElement(using: &random)!
    }

    /// `json` with each of `ranges` (not overlapping) replaced by `replacement`, from the last so that offsets stay right.
    private static func replacing(_ ranges: [Range<Int>], in json: [UInt8], with replacement: () -> String) -> [UInt8] {
        var json = json
        for range in ranges.sorted(by: { $0.lowerBound > $1.lowerBound }) { json.replaceSubrange(range, with: replacement().utf8) }
        return json
    }

    private func mutate(_ json: [UInt8], _ random: inout Xorshift) -> [UInt8] {
        var json = json
        let (numbers, strings, arrays) = Self.tokens(json)
        switch Int.random(in: 0..<10, using: &random) {
        case 0, 1:  // a few numbers to extremes
            let picked = Set((0..<Int.random(in: 1...3, using: &random)).map { _ in Int.random(in: numbers.indices, using: &random) })
            json = Self.replacing(picked.map { numbers[$0].range }, in: json) { Self.number(&random) }
        case 2..<6:  // every number under a few keys (every count, every total_wait_ns...) to a large value: sums overflow
            let keys = Set(numbers.map(\.key)).sorted().shuffled(using: &random).prefix(Int.random(in: 1...3, using: &random))
            let value = ["9223372036854775808", "18446744073709551615", "9223372036854775807", "0"].randomElement(using: &random)!
            json = Self.replacing(numbers.filter { keys.contains($0.key) }.map(\.range), in: json) { value }
        case 6, 7:  // an array's first element many times over
            let start = arrays.randomElement(using: &random)! + 1
            let element = Array(json[start..<Self.end(ofValueAt: start, in: json)])
            let copies = [1, 2, 100, 2_000].randomElement(using: &random)!
            guard element.count * copies < 4_000_000 else { break }
            json.insert(contentsOf: Array(repeating: [UInt8(ascii: ",")] + element, count: copies).joined(), at: start + element.count)
        case 8:  // a string
            json.replaceSubrange(strings.randomElement(using: &random)!, with: Self.strings.randomElement(using: &random)!.utf8)
        default:  // bytes: truncated, flipped or spliced
            let at = Int.random(in: 0..<json.count, using: &random)
            switch Int.random(in: 0..<3, using: &random) {
            case 0: json.removeSubrange(at...)
            case 1: json[at] = UInt8.random(in: 0...255, using: &random)
            default: json.insert(contentsOf: Array("{}[]\",:-0e.9".utf8).shuffled(using: &random).prefix(3), at: at)
            }
        }
        return json
    }

    /// A profile with no count at 0, so that any one at 2^64-1 overflows a sum it is in, and two locks that
    /// share a name (as per-CPU locks named after their caller do), which comparisons merge.
    private static func baseProfile() -> Profile {
        var base = ReaderFixtures.rich(locks: 4)
        base.drops.ringbufFull = 5
        base.dropped = 5
        base.locks[3].name = base.locks[1].name
        return base
    }

    /// Decodes `json` and, when it is a profile, runs every reader on it; returns whether it decoded.
    private func decodeAndRead(_ json: [UInt8], other: Profile, variant: Int, context: String) throws -> Bool {
        let profile: Profile
        do {
            profile = try Profile.decode(Data(json), source: "fuzz.json")
        } catch let error as UserError {
            XCTAssertFalse(error.description.contains("\n"), error.description)
            XCTAssertTrue(error.description.hasPrefix("fuzz.json"), error.description)
            return false
        }
        try readEverything(profile, other: other, variant: variant, context: context)
        return true
    }

    /// Every number under each key, in turn, at the largest values its type holds and at 0: the way the
    /// profiles that crashed the readers were made (events at 2^64-1, two locks at 2^63, everything at 2^64-1).
    func testEveryReaderSurvivesEachFieldAtItsExtremes() throws {
        let base = Self.baseProfile()
        let valid = Array(try base.encoded(pretty: false))
        let numbers = Self.tokens(valid).numbers
        var decoded = 0
        for (index, key) in Set(numbers.map(\.key)).sorted().enumerated() {
            for (variant, value) in ["18446744073709551615", "9223372036854775808", "0"].enumerated() {
                let json = Self.replacing(numbers.filter { $0.key == key }.map(\.range), in: valid) { value }
                if try decodeAndRead(json, other: base, variant: index + variant, context: "every \(key) at \(value)") { decoded += 1 }
            }
        }
        XCTAssertGreaterThan(decoded, 40)
    }

    func testEveryReaderSurvivesMutatedProfiles() throws {
        let base = Self.baseProfile()
        let valid = Array(try base.encoded(pretty: false))
        var random = Xorshift(seed: 24)
        var decoded = 0
        for iteration in 0..<Self.iterations
        where try decodeAndRead(mutate(valid, &random), other: base, variant: iteration, context: "iteration \(iteration)") {
            decoded += 1
        }
        XCTAssertGreaterThan(decoded, Self.iterations / 4, "most mutations should still be profiles, to reach the readers")
    }

    /// Every reader on `profile`; `other` is the other side of comparisons. `variant` picks among their
    /// options, so that runs together cover every grouping, weight and sort.
    private func readEverything(_ profile: Profile, other: Profile, variant: Int, context: String) throws {
        for (format, top) in [(ReportFormat.table, 0), (.json, 2), (.csv, 0)] {
            let options = ReportOptions(top: top, sort: ReportSort.allCases[variant % 4], format: format,
                                        by: ReportDimension.allCases, mounts: true)
            let text = ReportRenderer(profile: profile, options: options).render()
            if format == .table { assertNoRawControlCharacters(text, context) }
            if format == .json { XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(text.utf8)), context) }
        }
        let groupings = [StackGrouping.lock, .none, StackGrouping([.container, .cpu]), StackGrouping([.socket, .container, .lock])]
        var grouping = groupings[variant % groupings.count]
        if profile.topology == nil && grouping.dimensions.contains(.socket) { grouping = .lock }
        let weight = ExportWeight.allCases[variant % 2]
        for format in ExportFormat.allCases {
            let data = try ProfileExporter.export(profile, format: format, weight: weight, grouping: grouping)
            if format == .speedscope { XCTAssertNoThrow(try JSONSerialization.jsonObject(with: data), context) }
            if format == .folded {
                for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                    XCTAssertNotNil(UInt64(line.split(separator: " ").last ?? ""), "\(context): \(line)")
                }
            }
        }
        let options = FlameGraphSVG.Options(weight: weight, grouping: grouping, coloring: FlameColoring.allCases[variant % 2],
                                            icicle: variant % 3 == 0)
        XCTAssertTrue(try FlameGraphSVG.render(profile, options: options).hasSuffix("</svg>\n"), context)
        let settings = ComparisonSettings(minContentions: 1, grouping: Grouping.allCases[variant % 2])
        for (base, current) in [(profile, other), (other, profile)] {
            let comparison: Comparison
            do {
                comparison = try Comparison(base: base, current: current, baseSource: "base.json", currentSource: "current.json",
                                            settings: settings)
            } catch let error as UserError {
                XCTAssertFalse(error.description.contains("\n"), error.description)
                continue
            }
            assertNoRawControlCharacters(DiffTable.render(comparison), context)
            assertNoRawControlCharacters(MarkdownReport.render(CheckResult(comparison: comparison), for: .diff), context)
            XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(try DiffJSON.render(comparison).utf8)), context)
            let budget = Budget(locks: ["*": [.p99: 1_000, .total: 5, .rate: 1], "namespace_sem": [.max: 10]], mountOpsPerContainer: 10)
            let evaluation = try? BudgetEvaluation(budget: budget, source: "budget.json", profile: current,
                                                   profileSource: "current.json", minContentions: 1, lockNames: nil)
            let result = CheckResult(comparison: comparison, budget: evaluation)
            assertNoRawControlCharacters(CheckReport.render(result), context)
            XCTAssertTrue(JUnitReport.render(result).hasSuffix("</testsuites>\n"), context)
        }
    }

    private func assertNoRawControlCharacters(_ text: String, _ context: String, line: UInt = #line) {
        let raw = text.unicodeScalars.first { ($0.value < 0x20 && $0 != "\n") || (0x7F..<0xA0).contains($0.value) }
        XCTAssertNil(raw, "\(context): a raw control character \(raw.map { String($0.value, radix: 16) } ?? "")", line: line)
    }
}

/// xorshift64*: a small seeded generator, so that a failure repeats.
struct Xorshift: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed | 1 }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}
