import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LockscopeCore
import LockscopeStress
import LockscopeTestSupport
import XCTest

/// `lockscope agent` against its real peers: a Prometheus server (Debian's) scraping it during a
/// containerd-shaped storm and queried through its HTTP API, `promtool check metrics` on a /metrics body
/// taken during the storm, `go tool pprof -raw` on /debug/pprof/mutex compared with the same window's
/// profile file, then /healthz, a 404, and SIGTERM: exit 0, programs gone from the kernel, the last
/// window written. Needs root; the tools are required with LOCKSCOPE_REQUIRE_TOOLS=1 (`.ci/run`).
final class AgentTests: XCTestCase {
    /// Everything the test starts, stopped whatever happens.
    private var started: [Process] = []
    private var directory = ""

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-agent-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        for process in started where process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    func testAgentScrapedByPrometheusDuringAStorm() throws {
        try requireBPF()
        for tool in ["prometheus", "promtool", "go"] {
            guard ExternalTool.shouldRun(tool) else { throw XCTSkip("\(tool) is not installed (apt-get install prometheus golang-go)") }
        }
        let prometheusPath = try XCTUnwrap(ExternalTool.path(of: "prometheus"), "prometheus is not installed: apt-get install prometheus")
        let windows = directory + "/windows"
        try FileManager.default.createDirectory(atPath: windows, withIntermediateDirectories: true)

        // The agent, on a port the kernel picks (it says which). No container is summed under "other": other
        // storms on the machine (other test runs) must not fill the table before this one's containers come.
        let agent = try LockscopeProcess(["agent", "--listen", "127.0.0.1:0", "--window", "2s", "--output-dir", windows,
                                          "--keep", "1000", "--max-containers", "1000000"], directory: directory)
        started.append(agent.process)
        XCTAssertTrue(agent.waitUntilAttached(), agent.stderr)
        let port = try XCTUnwrap(agent.stderr.firstMatch(of: /serving http:\/\/127\.0\.0\.1:(\d+)/).map { String($0.1) },
                                 agent.stderr)
        let base = "http://127.0.0.1:\(port)"
        let programIDs = Self.programIDs(of: agent.pid)
        XCTAssertFalse(programIDs.isEmpty, "the agent holds no BPF program")

        // Prometheus, scraping it every second.
        let prometheusPort = try Self.freePort()
        let config = directory + "/prometheus.yml"
        try """
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: lockscope
                static_configs:
                  - targets: ['127.0.0.1:\(port)']
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let prometheus = Process()
        prometheus.executableURL = URL(fileURLWithPath: prometheusPath)
        prometheus.arguments = ["--config.file=\(config)", "--storage.tsdb.path=\(directory)/tsdb",
                                "--web.listen-address=127.0.0.1:\(prometheusPort)"]
        prometheus.standardOutput = FileHandle.nullDevice
        let prometheusLog = directory + "/prometheus.log"
        FileManager.default.createFile(atPath: prometheusLog, contents: nil)
        prometheus.standardError = FileHandle(forWritingAtPath: prometheusLog)
        try prometheus.run()
        started.append(prometheus)
        let prometheusBase = "http://127.0.0.1:\(prometheusPort)"
        try Self.waitFor("Prometheus to be ready", timeout: 60) { (try? Self.get(prometheusBase + "/-/ready").status) == 200 }

        // The storm, with /metrics read while it runs.
        let stress = try LockscopeProcess(["stress", "--runtime", "containerd", "--containers", "12", "--containers-per-pod", "3",
                                           "--layers", "6", "--parallel", "4", "--json"], directory: directory)
        started.append(stress.process)
        var duringStorm: Data?
        while stress.process.isRunning {
            if let body = try? Self.get(base + "/metrics"), body.status == 200, stress.process.isRunning { duringStorm = body.data }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTAssertEqual(stress.waitForExit(), 0, stress.stderr)
        let stormEnded = Date().timeIntervalSince1970
        let result = try JSONDecoder().decode(StressResult.self, from: Data(stress.stdout.utf8))
        XCTAssertEqual(result.failures, 0)

        // promtool on the body taken during the storm.
        let body = try XCTUnwrap(duringStorm, "no /metrics body was read during the storm")
        let metricsFile = directory + "/metrics.txt"
        try body.write(to: URL(fileURLWithPath: metricsFile))
        let promtool = try XCTUnwrap(ExternalTool.path(of: "promtool"))
        let check = try Self.run(promtool, ["check", "metrics"], stdin: metricsFile)
        XCTAssertEqual(check.status, 0, "promtool check metrics: \(check.stdout) \(check.stderr)")

        // A window that ended a whole window after the storm, and a scrape of it.
        var windowEnd = 0.0
        try Self.waitFor("a window ending after the storm", timeout: 30) {
            windowEnd = (try? Self.sample("lockscope_window_end_timestamp_seconds", in: Self.get(base + "/metrics").data)) ?? 0
            return windowEnd > stormEnded + 2
        }
        try Self.waitFor("Prometheus to scrape that window", timeout: 30) {
            let value = try? Self.query(prometheusBase, "lockscope_window_end_timestamp_seconds").first?.value
            return (value ?? 0) >= windowEnd
        }
        let namespaceSem = try Self.query(prometheusBase, #"sum(lockscope_lock_contentions_total{lock="namespace_sem"})"#)
        XCTAssertGreaterThan(namespaceSem.first?.value ?? 0, 0, "no namespace_sem contention in Prometheus")
        let byContainer = Dictionary(
            try Self.query(prometheusBase, "sum by (container) (lockscope_container_mount_syscalls_total)")
                .map { ($0.labels["container"] ?? "", $0.value) }, uniquingKeysWith: +)
        for container in result.containerList {
            let issued = Double(try XCTUnwrap(container.mountOpsBySyscall).values.reduce(0, +))
            XCTAssertEqual(byContainer[container.id], issued, "container \(container.id)")
        }
        for shim in try XCTUnwrap(result.shims) {
            XCTAssertEqual(byContainer["pod:" + shim.firstTaskID], Double(shim.mountOpsBySyscall.values.reduce(0, +)),
                           "shim \(shim.pid)")
        }

        // Every panel of deploy/grafana-dashboard.json has data: its metric and label names are the agent's.
        // A rate needs two scrapes of a series, and the lock series start with the window after the storm.
        for expression in try DeployFiles.dashboardExpressions() {
            XCTAssertNoThrow(try Self.waitFor("data for the dashboard's \(expression)", timeout: 20) {
                !(try Self.query(prometheusBase, expression)).isEmpty
            })
        }

        // go tool pprof reads the last window's profile; its totals are that window's.
        let pprofFile = directory + "/mutex.pb.gz"
        let pprof = try Self.get(base + "/debug/pprof/mutex")
        XCTAssertEqual(pprof.status, 200)
        try pprof.data.write(to: URL(fileURLWithPath: pprofFile))
        let go = try XCTUnwrap(ExternalTool.path(of: "go"))
        let raw = try Self.run(go, ["tool", "pprof", "-raw", pprofFile])
        XCTAssertEqual(raw.status, 0, raw.stderr)
        let totals = try Self.rawTotals(raw.stdout)
        // Go prints the start as `2026-12-07 05:41:22.56 +0000 UTC` (trailing zeros of the fraction cut).
        let time = try XCTUnwrap(raw.stdout.firstMatch(of: /Time: (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(\.\d+)? \+0000 UTC/), raw.stdout)
        let fraction = time.3.map { String($0.dropFirst()) } ?? "0"
        let started = try XCTUnwrap(ISO8601DateFormatter.withFraction.date(from: "\(time.1)T\(time.2).\(fraction)Z"))
        // The window whose start that is (the files are 2 s apart).
        let profiles = try FileManager.default.contentsOfDirectory(atPath: windows).filter { $0.hasSuffix(".json") }
            .map { try Profile.decode(Data(contentsOf: URL(fileURLWithPath: windows + "/" + $0))) }
        let window = try XCTUnwrap(profiles.first { profile in
            ISO8601DateFormatter.withFraction.date(from: profile.startedAt).map { abs($0.timeIntervalSince(started)) < 0.001 } ?? false
        }, "no window file started at \(started): \(profiles.map(\.startedAt))")
        XCTAssertEqual(totals.contentions, window.locks.reduce(0) { $0 + $1.stats.contentions })
        XCTAssertEqual(totals.delay, window.locks.reduce(0) { $0 + $1.stats.totalWaitNs })
        XCTAssertTrue(raw.stdout.contains("contentions/count delay/nanoseconds"), raw.stdout)

        // Health, a 404, and SIGTERM.
        let health = try Self.get(base + "/healthz")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(String(decoding: health.data, as: UTF8.self), "ok\n")
        XCTAssertEqual(try Self.get(base + "/nothing-here").status, 404)
        let stopped = Date().timeIntervalSince1970
        agent.signal(SIGTERM)
        let exited = Date().addingTimeInterval(20)
        while agent.process.isRunning && Date() < exited { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertFalse(agent.process.isRunning, "the agent did not exit within 20 s of SIGTERM")
        XCTAssertEqual(agent.waitForExit(), 0, agent.stderr)
        // The window under way at the stop was written: the latest window file ends after the signal.
        let written = try FileManager.default.contentsOfDirectory(atPath: windows).filter { $0.hasSuffix(".json") }
            .map { try Profile.decode(Data(contentsOf: URL(fileURLWithPath: windows + "/" + $0))) }
        let last = try XCTUnwrap(written.max { $0.startedAt < $1.startedAt }, "no window file")
        let lastStart = try XCTUnwrap(ISO8601DateFormatter.withFraction.date(from: last.startedAt)).timeIntervalSince1970
        XCTAssertLessThanOrEqual(lastStart, stopped)
        XCTAssertGreaterThanOrEqual(lastStart + Double(last.durationNs) / 1e9, stopped, "the window under way was not written")
        let bpftool = try XCTUnwrap(ExternalTool.path(of: "bpftool"), "bpftool is not installed")
        for id in programIDs {
            XCTAssertNotEqual(try Self.run(bpftool, ["prog", "show", "id", "\(id)"]).status, 0, "program \(id) is still loaded")
        }
    }

    // MARK: - Helpers

    /// The ids of the BPF programs process `pid` holds open (from its fds' fdinfo).
    static func programIDs(of pid: Int32) -> [Int] {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fdinfo")) ?? []
        return fds.compactMap { fd in
            guard let info = try? String(contentsOfFile: "/proc/\(pid)/fdinfo/\(fd)", encoding: .utf8),
                  let match = info.firstMatch(of: /prog_id:\s+(\d+)/) else { return nil }
            return Int(match.1)
        }
    }

    /// A loopback port free now (bound, then let go).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw ExternalTool.Failure("no free loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func waitFor(_ what: String, timeout: TimeInterval, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw ExternalTool.Failure("waited \(Int(timeout)) s for \(what)")
    }

    /// One HTTP GET: the status and body.
    static func get(_ url: String) throws -> (status: Int, data: Data) {
        final class Box: @unchecked Sendable { var result: (Int, Data)?; var error: (any Error)? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = 10
        URLSession.shared.dataTask(with: request) { data, response, error in
            if let response = response as? HTTPURLResponse { box.result = (response.statusCode, data ?? Data()) }
            box.error = error
            done.signal()
        }.resume()
        done.wait()
        guard let result = box.result else { throw box.error ?? ExternalTool.Failure("no response from \(url)") }
        return result
    }

    /// The value of an unlabelled sample in a Prometheus text body.
    static func sample(_ name: String, in body: Data) -> Double? {
        String(decoding: body, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix(name + " ") }
            .flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    struct Series { var labels: [String: String]; var value: Double }

    /// An instant query through Prometheus's HTTP API.
    static func query(_ base: String, _ expression: String) throws -> [Series] {
        var components = URLComponents(string: base + "/api/v1/query")!
        components.queryItems = [URLQueryItem(name: "query", value: expression)]
        let response = try get(components.url!.absoluteString)
        guard response.status == 200,
              let json = try JSONSerialization.jsonObject(with: response.data) as? [String: Any],
              let data = json["data"] as? [String: Any], let results = data["result"] as? [[String: Any]] else {
            throw ExternalTool.Failure("query \(expression): \(String(decoding: response.data, as: UTF8.self))")
        }
        return results.compactMap { result in
            guard let value = result["value"] as? [Any], value.count == 2, let text = value[1] as? String, let number = Double(text)
            else { return nil }
            return Series(labels: result["metric"] as? [String: String] ?? [:], value: number)
        }
    }

    static func run(_ path: String, _ arguments: [String], stdin: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        guard let stdin else {
            let output = try ExternalTool.run(path, arguments)
            return (output.status, output.stdout, output.stderr)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardInput = FileHandle(forReadingAtPath: stdin)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: errors, as: UTF8.self))
    }

    /// The sums of `go tool pprof -raw`'s contentions and delay columns.
    static func rawTotals(_ raw: String) throws -> (contentions: UInt64, delay: UInt64) {
        let lines = raw.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let start = lines.firstIndex(of: "Samples:"), start + 1 < lines.count else {
            throw ExternalTool.Failure("no Samples: in go tool pprof -raw output")
        }
        let header = lines[start + 1].split(separator: " ").map { $0.replacingOccurrences(of: "[dflt]", with: "") }
        guard let c = header.firstIndex(of: "contentions/count"), let d = header.firstIndex(of: "delay/nanoseconds") else {
            throw ExternalTool.Failure("sample types \(header)")
        }
        var totals: (contentions: UInt64, delay: UInt64) = (0, 0)
        for line in lines[(start + 2)...] {
            if line == "Locations" { break }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let fields = line[..<colon].split(separator: " ")
            let values = fields.compactMap { UInt64($0) }
            guard values.count == header.count, fields.count == values.count else { continue }
            totals.contentions += values[c]
            totals.delay += values[d]
        }
        return totals
    }
}

extension ISO8601DateFormatter {
    static var withFraction: ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }
}

/// The agent's refusals: one line saying what to give instead, exit 2, before anything is attached;
/// a port in use: one line, exit 1.
final class AgentCommandLineTests: XCTestCase {
    func testBadFlagsAreOneLineAndExit2() throws {
        for (arguments, expected) in [(["--listen", "nope"], "give HOST:PORT"), (["--listen", "127.0.0.1:70000"], "give HOST:PORT"),
                                      (["--window", "500ms"], "give a window of 1s or more"),
                                      (["--max-containers", "0"], "give a number of container labels from 1"),
                                      (["--max-locks", "x"], "give a number of lock labels from 1"),
                                      (["--keep", "-1"], "give a number of files from 1"),
                                      (["--output-dir", "/nonexistent-lockscope-dir"], "is not a writable directory")] {
            let run = try LockscopeRun.run(["agent"] + arguments)
            XCTAssertEqual(run.status, 2, "\(arguments): \(run.stderr)")
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, "\(arguments): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(expected), "\(arguments): \(run.stderr)")
        }
    }

    func testAPortInUseIsOneLineAndExit1() throws {
        try requireBPF()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        XCTAssertTrue(listening)
        let port = UInt16(bigEndian: address.sin_port)
        let run = try LockscopeRun.run(["agent", "--listen", "127.0.0.1:\(port)", "--duration", "30s"])
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertEqual(run.stderr, "lockscope: cannot listen on 127.0.0.1:\(port): Address already in use: give another --listen\n")
    }
}
