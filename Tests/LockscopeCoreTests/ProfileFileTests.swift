import XCTest

@testable import LockscopeCore

final class ProfileFileTests: XCTestCase {
    private func sampleProfile() -> Profile {
        var aggregator = Aggregator(topology: nil)
        aggregator.record(WaitEvent(flags: AggregatorTests.rwsemWrite, waitNs: 1_500, lockAddress: AggregatorTests.sem,
                                    cgroupID: 5, ownerPid: 77, stackID: 1, comm: "umount", ownerComm: "mount"))
        aggregator.record(SyscallEvent(syscall: .moveMount, latencyNs: 9_000, cgroupID: 5))
        var drops = Drops()
        drops.ringbufFull = 3
        drops.stackFailed = 1
        return aggregator.profile(AggregatorTests.inputs(drops: drops))
    }

    func testRoundTripIsLossless() throws {
        let profile = sampleProfile()
        let decoded = try Profile.decode(try profile.encoded())
        XCTAssertEqual(decoded, profile)
        XCTAssertEqual(decoded.dropped, 3)
    }

    func testRequiredFieldNamesAreSnakeCase() throws {
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: try sampleProfile().encoded()) as? [String: Any])
        for key in ["schema", "hostname", "kernel", "started_at", "duration_ns", "events", "dropped", "locks"] {
            XCTAssertNotNil(json[key], key)
        }
        XCTAssertEqual(json["schema"] as? String, "lockscope.profile/1")
        let lock = try XCTUnwrap((json["locks"] as? [[String: Any]])?.first)
        for key in ["name", "identity", "kind", "address", "contentions", "total_wait_ns", "max_wait_ns", "p50_wait_ns",
                    "p90_wait_ns", "p99_wait_ns", "p999_wait_ns", "histogram", "stacks", "by_cpu", "by_container",
                    "handoffs", "owners"] {
            XCTAssertNotNil(lock[key], key)
        }
        XCTAssertEqual(lock["address"] as? String, "0xffffffff83001000")
        let owner = try XCTUnwrap((lock["owners"] as? [[String: Any]])?.first)
        XCTAssertEqual(owner["owner_pid"] as? Int, 77)
        XCTAssertEqual(owner["owner_comm"] as? String, "mount")
    }

    func testUnknownMinorFieldsAreIgnoredAndOtherMajorsRefused() throws {
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: try sampleProfile().encoded()) as? [String: Any])
        object["added_in_a_later_minor"] = ["x": 1]
        object["schema"] = "lockscope.profile/1.3"
        XCTAssertNoThrow(try Profile.decode(try JSONSerialization.data(withJSONObject: object)))
        object["schema"] = "lockscope.profile/2"
        XCTAssertThrowsError(try Profile.decode(try JSONSerialization.data(withJSONObject: object), source: "p.json")) {
            XCTAssertEqual("\($0)", "p.json uses schema lockscope.profile/2; this lockscope reads lockscope.profile/1: use a lockscope that matches the profile")
        }
    }

    func testBadFilesGiveOneClearLine() throws {
        let cases: [(String, String)] = [
            ("", "p.json is empty: record a profile with `lockscope record -o p.json`"),
            ("{\"schema\": \"lockscope.profile/1\", \"hostname\": ", "p.json is not valid JSON (truncated or corrupted?)"),
            ("[1, 2]", "p.json: the top level is an array, not a lockscope profile object"),
            ("{\"hello\": 1}", "p.json is not a lockscope profile (no \"schema\" field)"),
            ("{\"schema\": \"pprof\"}", "p.json is not a lockscope profile (schema \"pprof\")"),
            ("{\"schema\": \"lockscope.profile/1\"}", "p.json is not a valid lockscope.profile/1 profile: missing field"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try Profile.decode(Data(text.utf8), source: "p.json")) { error in
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix(expected), "\(message) should start with \(expected)")
                XCTAssertFalse(message.contains("\n"), "one line: \(message)")
            }
        }
    }

    func testAtomicWriteReplacesWholeFileAndRefusesBadPaths() throws {
        let directory = NSTemporaryDirectory() + "lockscope-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/p.json"
        try sampleProfile().write(to: path)
        XCTAssertEqual(try Profile.load(path: path), sampleProfile())
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["p.json"], "no temp file left")
        // Written a lock at a time, yet byte for byte what encoding the whole profile gives.
        var twoLocks = sampleProfile()
        twoLocks.locks.append(twoLocks.locks[0])
        twoLocks.locks[1].name = "mount_lock"
        try twoLocks.write(to: path)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), try twoLocks.encoded(pretty: false))
        XCTAssertEqual(try Profile.load(path: path).locks.map(\.name), [twoLocks.locks[0].name, "mount_lock"])
        try sampleProfile().write(to: path)
        // A body that fails leaves the old file and no temporary one.
        struct Interrupted: Error {}
        XCTAssertThrowsError(try AtomicFile.write(to: path) { append in
            try append(Data("{\"half\":".utf8))
            throw Interrupted()
        })
        XCTAssertEqual(try Profile.load(path: path), sampleProfile())
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["p.json"], "no temp file left")
        XCTAssertThrowsError(try AtomicFile.checkWritable(directory + "/missing/p.json"))
        XCTAssertThrowsError(try AtomicFile.checkWritable(directory))
        XCTAssertNoThrow(try AtomicFile.checkWritable(path))
        XCTAssertThrowsError(try Profile.load(path: directory + "/missing.json")) {
            XCTAssertEqual("\($0)", "cannot read \(directory)/missing.json: No such file or directory; check the path")
        }
    }

    /// Only regular files are read, at once, and only up to the size limit.
    func testInputsThatAreNotRegularFilesOrTooLargeAreRefusedAtOnce() throws {
        let directory = NSTemporaryDirectory() + "lockscope-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fifo = directory + "/fifo"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let hint = "give a profile written by `lockscope record -o FILE`"
        for (path, what) in [(fifo, "a FIFO (named pipe)"), ("/dev/zero", "a character device"), (directory, "a directory")] {
            let started = Date()
            XCTAssertThrowsError(try Profile.load(path: path)) {
                XCTAssertEqual("\($0)", "cannot read \(path): it is \(what), not a regular file; \(hint)")
            }
            XCTAssertLessThan(Date().timeIntervalSince(started), 1)
        }
        let path = directory + "/p.json"
        try sampleProfile().write(to: path)
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        XCTAssertEqual(try InputFile.read(path, kind: "profile", hint: hint, environment: [InputFile.maxSizeVariable: "\(size)"]).count, size)
        XCTAssertThrowsError(try InputFile.read(path, kind: "profile", hint: hint, environment: [InputFile.maxSizeVariable: "1K"])) {
            XCTAssertEqual("\($0)", "cannot read \(path): it is \(size) bytes, more than the 1 KiB a profile may have; if it is one, "
                           + "raise the limit with LOCKSCOPE_MAX_INPUT_SIZE (e.g. LOCKSCOPE_MAX_INPUT_SIZE=4K): "
                           + "reading a profile takes about twice its size in memory (docs/profile-format.md)")
        }
        XCTAssertThrowsError(try InputFile.read(path, kind: "profile", hint: hint, environment: [InputFile.maxSizeVariable: "lots"])) {
            XCTAssertEqual("\($0)", "LOCKSCOPE_MAX_INPUT_SIZE=lots is not a size: write it like 4G, 512M or 1000000 (bytes)")
        }
        // A name that was not UTF-8 reaches lockscope with U+FFFD in it: say so rather than "no such file".
        XCTAssertThrowsError(try Profile.load(path: directory + "/caf\u{FFFD}.json")) {
            XCTAssertEqual("\($0)", "cannot read \(directory)/caf\u{FFFD}.json: the file name is not valid UTF-8 (shown with \u{FFFD}), "
                           + "and lockscope can only open names that are; rename the file or give a symbolic link with a UTF-8 name")
        }
        // Control characters in a name are not printed raw.
        XCTAssertThrowsError(try Profile.load(path: directory + "/\u{1b}]0;x\u{7}.json")) {
            XCTAssertEqual("\($0)", "cannot read \(directory)/\\x1b]0;x\\x07.json: No such file or directory; check the path")
        }
    }
}
