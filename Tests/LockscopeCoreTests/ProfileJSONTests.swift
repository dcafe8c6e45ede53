import Foundation
import XCTest

@testable import LockscopeCore

/// The profile reader: values validated with their JSON path, whole numbers only in integer fields,
/// one line for every problem.
final class ProfileJSONTests: XCTestCase {
    /// A lock whose `contentions` is `contentions` (JSON text).
    static func lock(_ name: String = "mount_lock", contentions: String = "3") -> String {
        #"{"name":"\#(name)","identity":"inferred","kind":"spinlock","address":"0xffffffff8300b784","contentions":\#(contentions),"#
            + #""total_wait_ns":300,"min_wait_ns":50,"max_wait_ns":200,"p50_wait_ns":60,"p90_wait_ns":190,"p99_wait_ns":200,"#
            + #""p999_wait_ns":200,"histogram":[{"lower_ns":32,"upper_ns":64,"count":2},{"lower_ns":128,"upper_ns":256,"count":1}]}"#
    }

    /// A complete profile; `fields` replaces or adds top-level fields (`"events":5`).
    static func profile(locks: [String] = [lock()], fields: String = "") -> String {
        var top = [
            "schema": #""lockscope.profile/1""#, "hostname": #""node""#, "kernel": #""6.1""#,
            "started_at": #""2026-11-26T10:00:00Z""#, "duration_ns": "1000000000", "events": "3", "dropped": "0",
            "drops": "{}", "containers": "[]",
            "recording": #"{"locks":"all","lock_addresses":[],"min_wait_ns":0,"pids":[],"containers":[],"command":[]}"#,
        ]
        for field in fields.split(separator: ";") {
            let parts = field.split(separator: ":", maxSplits: 1).map(String.init)
            top[parts[0]] = parts[1]
        }
        let members = top.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }
        return "{" + (members + ["\"locks\":[" + locks.joined(separator: ",") + "]"]).joined(separator: ",") + "}"
    }

    private func decode(_ text: String) throws -> Profile { try Profile.decode(Data(text.utf8), source: "bad.json") }

    private func expectError(_ text: String, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try decode(text), file: file, line: line) { error in
            XCTAssertEqual("\(error)", message, file: file, line: line)
        }
    }

    func testTheHandWrittenProfileDecodes() throws {
        let profile = try decode(Self.profile())
        XCTAssertEqual(profile.locks.map(\.name), ["mount_lock"])
        XCTAssertEqual(profile.locks[0].stats.histogram[1], HistogramBucket(lowerNs: 128, upperNs: 256, count: 1))
        XCTAssertEqual(profile.durationNs, 1_000_000_000)
    }

    func testBadNumbersNameTheirField() {
        let locks = (0..<3).map { Self.lock("lock\($0)") }
        for bad in ["-1", "2.5", "18446744073709551616", "1e308", "1e-5", "-9223372036854775808", "1e20"] {
            expectError(Self.profile(locks: locks + [Self.lock(contentions: bad)]),
                        "bad.json: locks[3].contentions is \(bad): it must be a whole number from 0 to 2^64-1")
        }
        expectError(Self.profile(fields: "events:-5"), "bad.json: events is -5: it must be a whole number from 0 to 2^64-1")
        expectError(Self.profile(fields: #"drops:{"ringbuf_full":1.5}"#),
                    "bad.json: drops.ringbuf_full is 1.5: it must be a whole number from 0 to 2^64-1")
        let long = String(repeating: "9", count: 100)
        expectError(Self.profile(fields: "events:\(long)"),
                    "bad.json: events is \(long.prefix(40))… (100 characters): it must be a whole number from 0 to 2^64-1")
        // Int32 and Int fields say their own range.
        let pid = #"{"locks":"all","lock_addresses":[],"min_wait_ns":0,"pids":[1,2147483648],"containers":[],"command":[]}"#
        expectError(Self.profile(fields: "recording:\(pid)"),
                    "bad.json: recording.pids[1] is 2147483648: it must be a whole number from -2^31 to 2^31-1")
    }

    func testWholeNumbersInAnySpellingAndTheExtremesDecode() throws {
        for (text, value) in [("18446744073709551615", UInt64.max), ("1e2", 100), ("12.000", 12), ("-0", 0), ("0.0e5", 0),
                              ("1.5e1", 15), ("184467440737095516.15e2", UInt64.max), ("0", 0)] {
            XCTAssertEqual(try decode(Self.profile(fields: "events:\(text)")).events, value, text)
        }
        let pids = #"{"locks":"all","lock_addresses":[],"min_wait_ns":0,"pids":[-2147483648,2147483647,-1],"containers":[],"command":[]}"#
        XCTAssertEqual(try decode(Self.profile(fields: "recording:\(pids)")).recording.pids, [Int32.min, Int32.max, -1])
    }

    func testWrongTypesAndShapes() {
        expectError("[]", "bad.json: the top level is an array, not a lockscope profile object")
        expectError("42", "bad.json: the top level is 42, not a lockscope profile object")
        expectError(#""lockscope.profile/1""#, #"bad.json: the top level is "lockscope.profile/1", not a lockscope profile object"#)
        expectError(#"{"schema":1}"#, #"bad.json: schema is 1, not a string like "lockscope.profile/1": this is not a lockscope profile"#)
        expectError(#"{"schema":["lockscope.profile/1"]}"#,
                    #"bad.json: schema is an array, not a string like "lockscope.profile/1": this is not a lockscope profile"#)
        expectError(Self.profile(fields: "hostname:7"), "bad.json: hostname is 7, not a string")
        expectError(Self.profile(fields: "hostname:null"), "bad.json: hostname is null, not a string")
        expectError(Self.profile(fields: #"events:"12""#), #"bad.json: events is "12", not a number"#)
        expectError(Self.profile(fields: "locks:{}"), "bad.json: locks is an object, not an array")
        expectError(Self.profile(locks: ["[]"]), "bad.json: locks[0] is an array, not an object")
        expectError(Self.profile(locks: [Self.lock().replacingOccurrences(of: #""kind":"spinlock","#, with: "")]),
                    #"bad.json is not a valid lockscope.profile/1 profile: missing field "kind" at locks[0]"#)
        expectError(Self.profile(locks: [Self.lock().replacingOccurrences(of: #""kind":"spinlock""#, with: #""kind":"sema\u001b[2J""#)]),
                    #"bad.json is not a valid lockscope.profile/1 profile: locks[0].kind: Cannot initialize LockKind from invalid String value sema\x1b[2J"#)
        expectError(Self.profile(locks: [Self.lock().replacingOccurrences(of: #""lower_ns":128"#, with: #""lower_ns":1024"#)]),
                    "bad.json: locks[0].histogram[1] has lower_ns 1024 above upper_ns 256: a bucket's lower bound cannot be above its upper bound")
    }

    func testSyntaxErrorsSayWhereAndStayOneLine() {
        let valid = Self.profile()
        expectError(String(valid.dropLast(5)), "bad.json is not valid JSON (truncated or corrupted?): it ends early at byte \(valid.utf8.count - 5)")
        expectError(#"{"schema": tru}"#, "bad.json is not valid JSON (truncated or corrupted?): expected true at byte 14")
        expectError(#"{"a":1,}"#, "bad.json is not valid JSON (truncated or corrupted?): expected a quoted key at byte 7")
        expectError(#"{"a":[1 2]}"#, #"bad.json is not valid JSON (truncated or corrupted?): expected "," or "]" at byte 8"#)
        expectError("{\"a\":\"x\ny\"}", "bad.json is not valid JSON (truncated or corrupted?): a control character (0x0a) inside a string at byte 7")
        expectError(#"{"a":"\x"}"#, #"bad.json is not valid JSON (truncated or corrupted?): a backslash before 'x', which is no escape at byte 6"#)
        expectError(#"{"a":01}"#, #"bad.json is not valid JSON (truncated or corrupted?): expected "," or "}" at byte 6"#)
        expectError("{} {}", "bad.json is not valid JSON (truncated or corrupted?): unexpected data after the end of the document at byte 3")
        expectError(String(repeating: "[", count: 100_000), "bad.json is not valid JSON (truncated or corrupted?): it nests more than 512 levels deep at byte 512")
        expectError("\u{1b}[31m", "bad.json is not valid JSON (truncated or corrupted?): unexpected character 0x1b at byte 0")
    }

    func testStringsKeysAndUnknownFields() throws {
        let name = #"a\"b\\c\/d\u00e9\ud83d\ude00\ud800x\n"#  // escapes, a surrogate pair, a lone surrogate
        let escapedKey = #"\u0068ostname"#  // "hostname" spelled with an escape
        let unknown = #"later_field:{"deep":[[[{"x":"]}"}]]],"n":-1.5e300}"#
        let text = Self.profile(locks: [Self.lock(name)], fields: unknown).replacingOccurrences(of: "\"hostname\"", with: "\"\(escapedKey)\"")
        let profile = try decode(text)
        XCTAssertEqual(profile.locks[0].name, "a\"b\\c/d\u{e9}\u{1F600}\u{FFFD}x\n")
        XCTAssertEqual(profile.hostname, "node")
        // Invalid UTF-8 inside a string is repaired, not refused; a byte order mark is skipped.
        var bytes = Array(Self.profile(locks: [Self.lock("ab")]).utf8)
        let at = bytes.firstIndex(of: UInt8(ascii: "b"))!
        bytes[at] = 0xFF
        XCTAssertEqual(try Profile.decode(Data([0xEF, 0xBB, 0xBF] + bytes)).locks[0].name, "a\u{FFFD}")
    }

    func testSnakeCaseMatchesFoundation() throws {
        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        struct OneKey: Encodable {
            var key: String
            func encode(to encoder: Encoder) throws {
                var container = encoder.container(keyedBy: Key.self)
                try container.encode(1, forKey: Key(stringValue: key))
            }
        }
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        for key in ["p999WaitNs", "byLlc", "smtSiblings", "podUid", "myURLKey", "a1B2", "lowerNs", "_private", "trailing_",
                    "ABC", "x", "already_snake", "HTTPServer2Go"] {
            let json = String(decoding: try encoder.encode(OneKey(key: key)), as: UTF8.self)
            XCTAssertEqual("{\"\(SnakeCase.convert(key))\":1}", json, key)
        }
        XCTAssertEqual(SnakeCase.camelCase("total_wait_ns"), "totalWaitNs")
    }

    /// What record writes reads back the same, through the new reader.
    func testEveryFieldOfARecordedProfileRoundTrips() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../LockscopeExportTests/Fixtures/mount-storm.json").standardized
        let profile = try Profile.load(path: url.path)
        XCTAssertEqual(try Profile.decode(try profile.encoded(pretty: false)), profile)
        XCTAssertEqual(try Profile.decode(try profile.encoded(pretty: true)), profile)
        let foundation = Profile.makeDecoder()
        XCTAssertEqual(try foundation.decode(Profile.self, from: try Data(contentsOf: url)), profile)
    }
}
