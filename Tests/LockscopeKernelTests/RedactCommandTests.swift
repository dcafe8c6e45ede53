import Foundation
import LockscopeCore
import LockscopeTestSupport
import XCTest

/// `lockscope redact` as users run it: redacted profiles still diff like the originals, and bad
/// input is one line and status 2. Needs no privileges.
final class RedactCommandTests: XCTestCase {
    func testRedactedProfilesOfOneMachineDiffLikeTheOriginals() throws {
        let directory = try temporaryDirectory()
        try Data("shared by the CI machines\n".utf8).write(to: URL(fileURLWithPath: "\(directory)/key"))
        // Two recordings of the baseline fixtures, each with a per-object lock named by its address.
        for (name, contentions) in [("base", UInt64(400)), ("regressed", UInt64(4_000))] {
            var profile = try Profile.load(path: compareFixture("\(name).json"))
            let wait = WaitStats(contentions: contentions, totalWaitNs: contentions * 50_000, minWaitNs: 10_000, maxWaitNs: 90_000,
                                 p50WaitNs: 50_000, p90WaitNs: 80_000, p99WaitNs: 90_000, p999WaitNs: 90_000,
                                 histogram: [HistogramBucket(lowerNs: 32_768, upperNs: 65_536, count: contentions)])
            profile.locks.append(LockProfile(name: "0xffff8880ff001000", identity: .caller, kind: .spinlock,
                                             address: "0xffff8880ff001000", stats: wait))
            try profile.write(to: "\(directory)/\(name).json")
            let run = try LockscopeRun.run(["redact", "\(directory)/\(name).json", "-o", "\(directory)/\(name)-redacted.json",
                                     "--key-file", "\(directory)/key"])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertEqual(run.stdout + run.stderr, "")
        }
        let original = try Profile.load(path: "\(directory)/base.json")
        let redacted = try Profile.load(path: "\(directory)/base-redacted.json")
        XCTAssertEqual(redacted.recording.redacted, true)
        XCTAssertEqual(redacted.locks.last?.name.hasPrefix("addr-"), true)
        // What each original name became (redaction keeps the order of locks and containers).
        var pseudonyms = Dictionary(zip(original.locks.map(\.name), redacted.locks.map(\.name)), uniquingKeysWith: { first, _ in first })
        for (before, after) in zip(original.locks, redacted.locks) {
            for (key, redactedKey) in zip(before.byContainer.map(\.key), after.byContainer.map(\.key)) { pseudonyms[key] = redactedKey }
        }

        for grouping in ["lock", "container"] {
            let plain = try diffSubjects("\(directory)/base.json", "\(directory)/regressed.json", by: grouping)
            let hidden = try diffSubjects("\(directory)/base-redacted.json", "\(directory)/regressed-redacted.json", by: grouping)
            XCTAssertEqual(hidden.count, plain.count, grouping)
            // Six named locks and the one named by its address; namespace_sem in the container and in the host.
            XCTAssertEqual(plain.count, grouping == "lock" ? 7 : 2, grouping)
            let renamed = try plain.map { subject in
                var subject = subject
                var names = try XCTUnwrap(subject["subject"] as? [String: String])
                for (field, value) in names { names[field] = pseudonyms[value] ?? value }
                subject["subject"] = names
                return try canonical(subject)
            }
            XCTAssertEqual(Set(try hidden.map(canonical)), Set(renamed), grouping)
        }
    }

    func testDefaultKeyIsTheMachineIDAndAnotherKeyGivesOtherPseudonyms() throws {
        let directory = try temporaryDirectory()
        let fixture = compareFixture("base.json")
        XCTAssertEqual(try LockscopeRun.run(["redact", fixture, "-o", "\(directory)/default.json"]).status, 0)
        XCTAssertEqual(try LockscopeRun.run(["redact", fixture, "-o", "\(directory)/machine-id.json", "--key-file", "/etc/machine-id"]).status, 0)
        try Data("another secret".utf8).write(to: URL(fileURLWithPath: "\(directory)/key"))
        XCTAssertEqual(try LockscopeRun.run(["redact", fixture, "-o", "\(directory)/other.json", "--key-file", "\(directory)/key"]).status, 0)

        let byDefault = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/default.json"))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(directory)/machine-id.json")), byDefault)
        let first = try Profile.load(path: "\(directory)/default.json")
        let other = try Profile.load(path: "\(directory)/other.json")
        XCTAssertTrue(first.hostname.wholeMatch(of: /host-[0-9a-f]{6}/) != nil, first.hostname)
        XCTAssertNotEqual(other.hostname, first.hostname)
        XCTAssertNotEqual(other.locks.map(\.address), first.locks.map(\.address))
        XCTAssertEqual(other.locks.map(\.name), first.locks.map(\.name))
    }

    func testBadInputIsOneLineAndStatusTwo() throws {
        let directory = try temporaryDirectory()
        let notAProfile = compareFixture("not-a-profile.json")
        let cases: [([String], String)] = [
            (["redact", notAProfile, "-o", "\(directory)/out.json"],
             "lockscope: \(notAProfile) is not a lockscope profile (no \"schema\" field)\n"),
            (["redact", "\(directory)/missing.json", "-o", "\(directory)/out.json"],
             "lockscope: cannot read \(directory)/missing.json: No such file or directory; check the path\n"),
            (["redact", compareFixture("base.json"), "-o", "\(directory)/out.json", "--key-file", "\(directory)/no-key"],
             "lockscope: cannot read the redaction key \(directory)/no-key: No such file or directory; pass --key-file FILE with a readable secret\n"),
            (["redact", compareFixture("base.json"), "-o", "\(directory)/no/out.json"],
             "lockscope: cannot write \(directory)/no/out.json: directory \(directory)/no does not exist; create it or choose another path\n"),
        ]
        for (arguments, message) in cases {
            let run = try LockscopeRun.run(arguments)
            XCTAssertEqual(run.status, 2, arguments.joined(separator: " "))
            XCTAssertEqual(run.stderr, message)
            XCTAssertEqual(run.stdout, "")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), [])
    }

    // MARK: Helpers

    private func compareFixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../LockscopeCompareTests/Fixtures/\(name)").standardized.path
    }

    /// The `subjects` of `lockscope diff --format json`.
    private func diffSubjects(_ base: String, _ current: String, by grouping: String) throws -> [[String: Any]] {
        let run = try LockscopeRun.run(["diff", base, current, "--by", grouping, "--format", "json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        return try XCTUnwrap(document["subjects"] as? [[String: Any]])
    }

    private func canonical(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "lockscope-redact-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }
}
