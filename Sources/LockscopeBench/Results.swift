import Foundation

/// The machine the numbers come from.
struct Machine: Codable {
    var hostname: String
    var kernel: String
    var cpuModel: String
    var cpus: Int
    var memoryBytes: UInt64

    static func current() -> Machine {
        var names = utsname()
        uname(&names)
        func field<T>(_ tuple: T) -> String {
            withUnsafeBytes(of: tuple) { bytes in String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let totalKiB = meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
            .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { UInt64($0) } ?? 0
        return Machine(hostname: field(names.nodename), kernel: field(names.release), cpuModel: model,
                       cpus: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), memoryBytes: totalKiB * 1024)
    }
}

/// Workload wall times alone and under each tool, from scripts/bench.sh (interleaved runs).
struct Overhead: Encodable {
    /// `lockscope` records with the default `--locks mount`; `lockscope-all` with `--locks all`.
    static let tools = ["alone", "lockscope", "lockscope-all", "perf", "bpftrace"]

    var workload: String
    var rounds: Int
    var samplesMs: [String: [Double]]
    var medianMs: [String: Double]
    /// The middle half of each tool's wall times: how far apart runs of the same configuration land.
    var interquartileMs: [String: [Double]]
    /// Median wall time under the tool over the median alone.
    var ratios: [String: Double]
    /// The median over rounds of the tool's time over that round's time alone: less sensitive to the
    /// machine getting slower or faster for a few rounds.
    var pairedRatios: [String: Double]
    /// `lockscope record` itself in those runs.
    var recordRuns: [RecordRun]
    /// The BPF programs' own run time in one more run under each tool, against the workload's CPU time.
    var bpfCost: BPFCost?
    /// The on-CPU sampler's run time against the workload's own CPU time, in one more run.
    var spinCost: SpinCost?

    /// Reads `tool<TAB>round<TAB>wall_ms` lines, and `tool<TAB>round<TAB>peak_rss_kib<TAB>events<TAB>dropped`
    /// lines from `recordRunsPath`.
    static func load(path: String, recordRunsPath: String?, bpfCostPath: String?, spinCostPath: String? = nil,
                     workload: String) throws -> Overhead {
        var samples: [String: [Double]] = [:]
        var byRound: [Int: [String: Double]] = [:]
        for fields in try tabSeparated(path, columns: 3, format: "tool<TAB>round<TAB>wall_ms") {
            guard let round = Int(fields[1]), let ms = Double(fields[2]) else {
                throw BenchError("\(path): bad line '\(fields.joined(separator: "\t"))'")
            }
            samples[fields[0], default: []].append(ms)
            byRound[round, default: [:]][fields[0]] = ms
        }
        let medians = samples.mapValues(median)
        guard let alone = medians["alone"], alone > 0 else { throw BenchError("\(path): no runs of the workload alone") }
        var pairedRatios: [String: Double] = [:]
        for tool in samples.keys where tool != "alone" {
            pairedRatios[tool] = median(byRound.values.compactMap { round in
                guard let ms = round[tool], let alone = round["alone"], alone > 0 else { return nil }
                return ms / alone
            })
        }
        let recordRuns: [RecordRun] = try recordRunsPath.map { path in
            try tabSeparated(path, columns: 5, format: "tool<TAB>round<TAB>peak_rss_kib<TAB>events<TAB>dropped").map { fields -> RecordRun in
                guard let round = Int(fields[1]), let kib = UInt64(fields[2]), let events = UInt64(fields[3]),
                      let dropped = UInt64(fields[4]) else {
                    throw BenchError("\(path): bad line '\(fields.joined(separator: "\t"))'")
                }
                return RecordRun(tool: fields[0], round: round, peakRSSBytes: kib * 1024, events: events, dropped: dropped)
            }
        } ?? []
        let bpfCost = try bpfCostPath.map { try BPFCost(path: $0) }
        let spinCost = try spinCostPath.map { path in
            try SpinCost(tabSeparated(path, columns: 5, format: "hz<TAB>samples<TAB>run_ns<TAB>workload_cpu_ms<TAB>workload_wall_ms"))
        }
        return Overhead(workload: workload, rounds: byRound.count, samplesMs: samples, medianMs: medians,
                        interquartileMs: samples.mapValues { [percentile($0, 25), percentile($0, 75)] },
                        ratios: medians.filter { $0.key != "alone" }.mapValues { $0 / alone },
                        pairedRatios: pairedRatios, recordRuns: recordRuns, bpfCost: bpfCost, spinCost: spinCost)
    }

    private static func tabSeparated(_ path: String, columns: Int, format: String) throws -> [[String]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == columns else { throw BenchError("\(path): bad line '\(line)': want \(format)") }
            return fields
        }
    }
}

/// The BPF programs' run time (kernel.bpf_stats_enabled) during one more workload run under each tool,
/// from scripts/bench.sh: `lockscope` (default `--locks mount`), `lockscope-all` (`--locks all`), and the
/// references `bpftrace-minimal` and `bpftrace-kstack` when bpftrace is installed.
struct BPFCost: Encodable {
    /// The tools in the order the summary shows them.
    static let tools = ["lockscope", "lockscope-all", "bpftrace-minimal", "bpftrace-kstack"]
    static let format = "tool<TAB>program<TAB>runs<TAB>run_ns<TAB>wall_ms<TAB>user_ms<TAB>sys_ms"

    var runs: [BPFCostRun]

    subscript(tool: String) -> BPFCostRun? { runs.first { $0.tool == tool } }

    /// What the kernel stack walk costs per `contention_begin` run: bpftrace's begin program keeping a
    /// `kstack` less the same program without it, in the same conditions. Nil without both references.
    var stackWalkNsPerBegin: Double? {
        guard let with = self["bpftrace-kstack"]?.beginProgram?.nsPerRun,
              let without = self["bpftrace-minimal"]?.beginProgram?.nsPerRun else { return nil }
        return with - without
    }

    /// Reads lines of `format`: one per program of each tool's run, each repeating that run's workload
    /// wall time and CPU time (the same on every line of a run).
    init(path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try self.init(lines: text.split(separator: "\n").map(String.init), source: path)
    }

    init(lines: [String], source: String) throws {
        var runs: [BPFCostRun] = []
        for line in lines {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 7, !fields[0].isEmpty, !fields[1].isEmpty,
                  let programRuns = UInt64(fields[2]), let runNs = UInt64(fields[3]),
                  let wallMs = Double(fields[4]), let userMs = Double(fields[5]), let sysMs = Double(fields[6]),
                  wallMs > 0, userMs >= 0, sysMs >= 0, userMs + sysMs > 0 else {
                throw BenchError("\(source): bad line '\(line)': want \(Self.format) (counts as integers, "
                    + "times in ms, the workload's CPU time above 0)")
            }
            let program = BPFCostRun.Program(name: fields[1], runs: programRuns, runNs: runNs)
            if let index = runs.firstIndex(where: { $0.tool == fields[0] }) {
                guard runs[index].workloadWallMs == wallMs, runs[index].workloadUserMs == userMs,
                      runs[index].workloadSysMs == sysMs else {
                    throw BenchError("\(source): bad line '\(line)': its workload times differ from "
                        + "the earlier lines of \(fields[0])")
                }
                runs[index].programs.append(program)
            } else {
                var run = BPFCostRun(tool: fields[0], workloadWallMs: wallMs, workloadUserMs: userMs, workloadSysMs: sysMs)
                run.programs.append(program)
                runs.append(run)
            }
        }
        guard !runs.isEmpty else { throw BenchError("\(source): no lines: want \(Self.format)") }
        self.runs = runs
    }

    enum CodingKeys: String, CodingKey { case runs, stackWalkNsPerBegin }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(runs, forKey: .runs)
        try container.encode(stackWalkNsPerBegin, forKey: .stackWalkNsPerBegin)
    }
}

/// One tool's BPF programs during one workload run, against the workload's own CPU time in that run.
/// The programs run system-wide (every contention and mount syscall on the host while attached), and
/// in the tasks they trace, so their run time is within the CPU time of whatever ran.
struct BPFCostRun: Encodable {
    struct Program: Encodable {
        var name: String
        var runs: UInt64
        var runNs: UInt64
        /// Run time per run; nil when it never ran.
        var nsPerRun: Double?

        init(name: String, runs: UInt64, runNs: UInt64) {
            self.name = name
            self.runs = runs
            self.runNs = runNs
            nsPerRun = runs > 0 ? Double(runNs) / Double(runs) : nil
        }

        /// On `lock:contention_begin` / `contention_end` (bpftrace cuts names to 15 bytes: `contention_begi`).
        var isBegin: Bool { name.hasPrefix("contention_beg") }
        var isEnd: Bool { name == "contention_end" }
        /// lockscope's pair on each mount-family syscall's own tracepoints (`enter_mount`, `exit_mount`, ...).
        var isSyscallEnter: Bool { name.hasPrefix("enter_") }
        var isSyscallExit: Bool { name.hasPrefix("exit_") }
    }

    var tool: String
    var programs: [Program] = []
    /// The workload's wall time, and the user and sys CPU time of it and of every process it started
    /// (getrusage RUSAGE_CHILDREN around it), in that run.
    var workloadWallMs: Double
    var workloadUserMs: Double
    var workloadSysMs: Double
    var workloadCPUMs: Double { workloadUserMs + workloadSysMs }
    /// Σ run time of the tool's programs.
    var bpfRunNs: UInt64 { runNs { _ in true } }
    /// Σ run time of the tool's programs over the workload's user + sys CPU time.
    var cpuShareOfWorkload: Double { shareOfWorkload(Double(bpfRunNs)) }

    /// contention_begin + contention_end run time per contention_end run: per wait the kernel reported
    /// ended, kept or not. Per end run, not per begin run, because every wait ends exactly once while a
    /// mutex begins twice (spinning, then sleeping). Nil when contention_end never ran.
    var nsPerWait: Double? {
        let ends = runs(where: \.isEnd)
        return ends > 0 ? Double(runNs { $0.isBegin || $0.isEnd }) / Double(ends) : nil
    }

    /// The mount-syscall programs' run time (enter and exit, with the paths and fds attribution reads)
    /// per enter run, i.e. per mount-family syscall; nil when none ran (bpftrace, or the raw_syscalls
    /// fallback, whose programs run on every syscall of the host).
    var nsPerSyscall: Double? {
        let syscalls = runs(where: \.isSyscallEnter)
        return syscalls > 0 ? Double(runNs { $0.isSyscallEnter || $0.isSyscallExit }) / Double(syscalls) : nil
    }

    init(tool: String, workloadWallMs: Double, workloadUserMs: Double, workloadSysMs: Double) {
        self.tool = tool
        self.workloadWallMs = workloadWallMs
        self.workloadUserMs = workloadUserMs
        self.workloadSysMs = workloadSysMs
    }

    var beginProgram: Program? { programs.first(where: \.isBegin) }

    /// Part of the run time, by what the programs run on.
    struct Part {
        var name: String
        var runNs: UInt64
        /// The events it is per: begin runs, end runs, mount syscalls; 0 for none.
        var events: UInt64

        func describe(in run: BPFCostRun) -> String {
            var text = "\(name) \(Format.percent(run.shareOfWorkload(Double(runNs))))"
            if events > 0 { text += String(format: " (%.0f ns × %ld)", Double(runNs) / Double(events), Int(events)) }
            return text
        }
    }

    /// The begin and end programs, the mount-syscall pairs, and anything else; only those that ran.
    var parts: [Part] {
        let syscall: (Program) -> Bool = { $0.isSyscallEnter || $0.isSyscallExit }
        let other: (Program) -> Bool = { !($0.isBegin || $0.isEnd || syscall($0)) }
        return [
            Part(name: "contention_begin", runNs: runNs(where: \.isBegin), events: runs(where: \.isBegin)),
            Part(name: "contention_end", runNs: runNs(where: \.isEnd), events: runs(where: \.isEnd)),
            Part(name: "mount syscalls (enter + exit)", runNs: runNs(where: syscall), events: runs(where: \.isSyscallEnter)),
            Part(name: "others", runNs: runNs(where: other), events: 0),
        ].filter { $0.runNs > 0 }
    }

    func runs(where include: (Program) -> Bool) -> UInt64 { programs.filter(include).map(\.runs).reduce(0, +) }
    func runNs(where include: (Program) -> Bool) -> UInt64 { programs.filter(include).map(\.runNs).reduce(0, +) }

    /// Share of the workload's CPU time that `runNs` nanoseconds are.
    func shareOfWorkload(_ runNs: Double) -> Double { runNs / (workloadCPUMs * 1e6) }

    enum CodingKeys: String, CodingKey {
        case tool, programs, workloadWallMs, workloadUserMs, workloadSysMs, bpfRunNs, cpuShareOfWorkload
        case nsPerWait, nsPerSyscall
        case workloadCPUMs = "workload_cpu_ms"
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(tool, forKey: .tool)
        try container.encode(programs, forKey: .programs)
        try container.encode(workloadWallMs, forKey: .workloadWallMs)
        try container.encode(workloadUserMs, forKey: .workloadUserMs)
        try container.encode(workloadSysMs, forKey: .workloadSysMs)
        try container.encode(workloadCPUMs, forKey: .workloadCPUMs)
        try container.encode(bpfRunNs, forKey: .bpfRunNs)
        try container.encode(cpuShareOfWorkload, forKey: .cpuShareOfWorkload)
        try container.encode(nsPerWait, forKey: .nsPerWait)
        try container.encode(nsPerSyscall, forKey: .nsPerSyscall)
    }
}

/// The on-CPU sampler (`record --spin-hz`, the default rate) during one workload run: its BPF program's
/// run time (kernel.bpf_stats_enabled) over every sample on every CPU, against the workload's own CPU
/// time (user + system of the storm and its workers, GNU time) in the same run.
struct SpinCost: Codable {
    var hz: Int
    var samples: UInt64
    var runNs: UInt64
    var workloadCPUMs: Double
    var workloadWallMs: Double
    var nsPerSample: Double { samples > 0 ? Double(runNs) / Double(samples) : 0 }
    /// The sampler's run time over the workload's CPU time.
    var workloadCPUShare: Double { workloadCPUMs > 0 ? Double(runNs) / (workloadCPUMs * 1e6) : 0 }

    private enum CodingKeys: String, CodingKey {
        case hz, samples, runNs, workloadCPUMs, workloadWallMs, nsPerSample, workloadCPUShare
    }

    init(_ rows: [[String]]) throws {
        guard rows.count == 1, let fields = rows.first, let hz = Int(fields[0]), let samples = UInt64(fields[1]),
              let runNs = UInt64(fields[2]), let cpu = Double(fields[3]), let wall = Double(fields[4]) else {
            throw BenchError("bad sampler statistics: want one line hz<TAB>samples<TAB>run_ns<TAB>workload_cpu_ms<TAB>workload_wall_ms")
        }
        self.hz = hz
        self.samples = samples
        self.runNs = runNs
        workloadCPUMs = cpu
        workloadWallMs = wall
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hz = try c.decode(Int.self, forKey: .hz)
        samples = try c.decode(UInt64.self, forKey: .samples)
        runNs = try c.decode(UInt64.self, forKey: .runNs)
        workloadCPUMs = try c.decode(Double.self, forKey: .workloadCPUMs)
        workloadWallMs = try c.decode(Double.self, forKey: .workloadWallMs)
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hz, forKey: .hz)
        try c.encode(samples, forKey: .samples)
        try c.encode(runNs, forKey: .runNs)
        try c.encode(workloadCPUMs, forKey: .workloadCPUMs)
        try c.encode(workloadWallMs, forKey: .workloadWallMs)
        try c.encode(nsPerSample, forKey: .nsPerSample)
        try c.encode(workloadCPUShare, forKey: .workloadCPUShare)
    }
}

/// One `lockscope record` run around the workload: its peak RSS (GNU time's maximum resident set), what
/// it recorded, and what it lost.
struct RecordRun: Encodable {
    var tool: String
    var round: Int
    var peakRSSBytes: UInt64
    var events: UInt64
    var dropped: UInt64
}

/// One target from issue 7 and whether this run met it (nil: not measured).
struct TargetCheck: Codable {
    var name: String
    var target: String
    var measured: String
    var met: Bool?
}

/// Everything `make bench` writes to bench/results.json.
struct Results: Encodable {
    var generatedAt: String
    var machine: Machine
    var keySpace: KeySpace
    var ingest: RateSearch
    var ceiling: RateSearch
    /// The collector flat out with fewer containers contending each lock.
    var ingestByContainers: [KeySpaceRate]
    var perEventCost: PerEventCost
    /// What a random cache line costs on this machine, in a small and a large working set.
    var lineCosts: [LineCost]
    var memory: [MemoryRun]
    var attach: AttachTimes
    var overhead: Overhead?

    var ingestToCeiling: Double { ceiling.sustainedPerSec > 0 ? ingest.sustainedPerSec / ceiling.sustainedPerSec : 0 }
    var peakRSS: UInt64 { memory.map(\.peakRSSBytes).max() ?? 0 }
    var peakRSSFewestEvents: UInt64 { memory.min { $0.events < $1.events }?.peakRSSBytes ?? 0 }

    /// In every step, produced = consumed + lost, exactly.
    var lossAccountingExact: Bool {
        (ingest.steps + ceiling.steps + ingestByContainers.map(\.flatOut)).allSatisfy(\.accountingExact)
    }

    var targets: [TargetCheck] {
        let overheadRatio = overhead?.ratios["lockscope"]
        let bpfShare = overhead?.bpfCost?["lockscope"]?.cpuShareOfWorkload
        let nsPerSyscall = overhead?.bpfCost?["lockscope"]?.nsPerSyscall
        let growth = peakRSSFewestEvents > 0 ? Double(peakRSS) / Double(peakRSSFewestEvents) : 0
        return [
            TargetCheck(name: "ingest without drops", target: ">= 2M events/s on one core",
                        measured: Format.rate(ingest.sustainedPerSec), met: ingest.sustainedPerSec >= 2e6),
            TargetCheck(name: "ingest / do-nothing consumer", target: ">= 0.5",
                        measured: String(format: "%.2f", ingestToCeiling), met: ingestToCeiling >= 0.5),
            TargetCheck(name: "workload overhead", target: "<= 3%",
                        measured: overheadRatio.map(Format.overhead) ?? "not measured",
                        met: overheadRatio.map { $0 <= 1.03 }),
            TargetCheck(name: "BPF run time / workload CPU time", target: "<= 2% (default --locks mount)",
                        measured: bpfShare.map(Format.percent) ?? "not measured", met: bpfShare.map { $0 <= 0.02 }),
            // Issue 17: attributing mount syscalls costs at most 0.5 µs per mount syscall in BPF. This is all
            // of the syscall programs' run time per syscall (timing, paths, fds, working directory, record),
            // an upper bound on attribution's share of it.
            TargetCheck(name: "BPF run time per mount-family syscall", target: "<= 500 ns (attribution's upper bound)",
                        measured: nsPerSyscall.map { String(format: "%.0f ns", $0) } ?? "not measured",
                        met: nsPerSyscall.map { $0 <= 500 }),
            TargetCheck(name: "peak RSS", target: "< 100 MB", measured: Format.bytes(peakRSS), met: peakRSS < 100_000_000),
            TargetCheck(name: "RSS independent of event count", target: "10M events within 10% of 1M",
                        measured: String(format: "x%.2f", growth), met: growth > 0 && growth <= 1.10),
            TargetCheck(name: "attach", target: "< 500 ms", measured: String(format: "%.0f ms", attach.medianMs),
                        met: attach.medianMs < 500),
        ]
    }

    enum CodingKeys: String, CodingKey {
        case generatedAt = "generated_at", machine
        case ingestEventsPerSec = "ingest_events_per_sec", dropOnsetEventsPerSec = "drop_onset_events_per_sec"
        case ceilingEventsPerSec = "ceiling_events_per_sec", ingestToCeilingRatio = "ingest_to_ceiling_ratio"
        case collectorCapacityEventsPerSec = "collector_capacity_events_per_sec"
        case overheadRatio = "overhead_ratio", overheadRatioAllLocks = "overhead_ratio_all_locks"
        case perfOverheadRatio = "perf_overhead_ratio"
        case bpftraceOverheadRatio = "bpftrace_overhead_ratio"
        case bpfCPUShareOfWorkload = "bpf_cpu_share_of_workload"
        case bpfCPUShareOfWorkloadAllLocks = "bpf_cpu_share_of_workload_all_locks"
        case bpfNsPerWait = "bpf_ns_per_wait", bpfNsPerSyscall = "bpf_ns_per_syscall"
        case bpftraceMinimalCPUShareOfWorkload = "bpftrace_minimal_cpu_share_of_workload"
        case bpftraceKstackCPUShareOfWorkload = "bpftrace_kstack_cpu_share_of_workload"
        case peakRSSBytes = "peak_rss_bytes", peakRSSBytes1M = "peak_rss_bytes_1m_events"
        case attachMs = "attach_ms", lossAccountingExact = "loss_accounting_exact", targets
        case keySpace = "key_space", ingest, ceiling, ingestByContainers = "ingest_by_containers"
        case perEventCost = "per_event_cost", lineCosts = "line_costs", memory, attach, overhead
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(generatedAt, forKey: .generatedAt)
        try container.encode(machine, forKey: .machine)
        try container.encode(ingest.sustainedPerSec.rounded(), forKey: .ingestEventsPerSec)
        try container.encode(ingest.dropOnsetPerSec?.rounded(), forKey: .dropOnsetEventsPerSec)
        try container.encode(ceiling.sustainedPerSec.rounded(), forKey: .ceilingEventsPerSec)
        try container.encode(ingestToCeiling, forKey: .ingestToCeilingRatio)
        try container.encode(ingest.capacityPerSec.rounded(), forKey: .collectorCapacityEventsPerSec)
        try container.encode(overhead?.ratios["lockscope"], forKey: .overheadRatio)
        try container.encode(overhead?.ratios["lockscope-all"], forKey: .overheadRatioAllLocks)
        try container.encode(overhead?.ratios["perf"], forKey: .perfOverheadRatio)
        try container.encode(overhead?.ratios["bpftrace"], forKey: .bpftraceOverheadRatio)
        let bpfCost = overhead?.bpfCost
        try container.encode(bpfCost?["lockscope"]?.cpuShareOfWorkload, forKey: .bpfCPUShareOfWorkload)
        try container.encode(bpfCost?["lockscope-all"]?.cpuShareOfWorkload, forKey: .bpfCPUShareOfWorkloadAllLocks)
        try container.encode(bpfCost?["lockscope"]?.nsPerWait, forKey: .bpfNsPerWait)
        try container.encode(bpfCost?["lockscope"]?.nsPerSyscall, forKey: .bpfNsPerSyscall)
        try container.encode(bpfCost?["bpftrace-minimal"]?.cpuShareOfWorkload, forKey: .bpftraceMinimalCPUShareOfWorkload)
        try container.encode(bpfCost?["bpftrace-kstack"]?.cpuShareOfWorkload, forKey: .bpftraceKstackCPUShareOfWorkload)
        try container.encode(peakRSS, forKey: .peakRSSBytes)
        try container.encode(peakRSSFewestEvents, forKey: .peakRSSBytes1M)
        try container.encode(attach.medianMs, forKey: .attachMs)
        try container.encode(lossAccountingExact, forKey: .lossAccountingExact)
        try container.encode(targets, forKey: .targets)
        try container.encode(keySpace, forKey: .keySpace)
        try container.encode(ingest, forKey: .ingest)
        try container.encode(ceiling, forKey: .ceiling)
        try container.encode(ingestByContainers, forKey: .ingestByContainers)
        try container.encode(perEventCost, forKey: .perEventCost)
        try container.encode(lineCosts, forKey: .lineCosts)
        try container.encode(memory, forKey: .memory)
        try container.encode(attach, forKey: .attach)
        try container.encode(overhead, forKey: .overhead)
    }

    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(self)
        data.append(0x0a)
        return data
    }

    /// The human summary `make bench` prints.
    func summary() -> String {
        var lines = [
            "lockscope benchmarks on \(machine.hostname): Linux \(machine.kernel), \(machine.cpuModel), "
                + "\(machine.cpus) CPUs, \(Format.bytes(machine.memoryBytes)) RAM",
            "",
            "ingest (ring buffer -> decode -> aggregate, consumer on one CPU, producer on another)",
            "  sustained without drops   \(Format.rate(ingest.sustainedPerSec))",
            "  drops begin at            \(ingest.dropOnsetPerSec.map(Format.rate) ?? "not reached (producer-bound)")",
            String(format: "  consumer when saturated   %.1f µs CPU per event", 1e6 / max(ingest.capacityPerSec, 1))
                + " (\(Format.rate(ingest.capacityPerSec)))",
            "  do-nothing consumer       \(Format.rate(ceiling.sustainedPerSec))"
                + (ceiling.dropOnsetPerSec == nil ? " (never dropped: bounded by the producer)" : ""),
            "  ingest / do-nothing       \(String(format: "%.2f", ingestToCeiling))",
        ]
        for rate in ingestByContainers {
            let ratio = ceiling.sustainedPerSec > 0 ? rate.flatOut.producedPerSec / ceiling.sustainedPerSec : 0
            lines.append("  with \(rate.keySpace.containersText)".padding(toLength: 28, withPad: " ", startingAt: 0)
                + "\(Format.rate(rate.flatOut.producedPerSec)) flat out, \(rate.flatOut.lost) lost, "
                + String(format: "%.0f ns per event, %.2f of the do-nothing rate", rate.flatOut.consumerNsPerEvent, ratio))
        }
        lines += [
            String(format: "  per event, one thread     read+decode %.0f ns, aggregate %.0f ns (%.0f ns with few keys)",
                   perEventCost.readAndDecodeNs, perEventCost.aggregateNs, perEventCost.aggregateFewKeysNs),
        ]
        for cost in lineCosts {
            lines.append("  one random cache line     " + String(format: "%.1f ns, %.1f ns requested %d ahead, in %d MiB",
                cost.ns, cost.prefetchedNs, LineCost.prefetchDistance, cost.workingSetBytes >> 20))
        }
        lines += [
            "memory (\(keySpace.locks) locks, \(keySpace.cpus) CPUs, \(keySpace.containers) containers, "
                + "\(keySpace.processes) processes)",
        ]
        for run in memory.sorted(by: { $0.events < $1.events }) {
            lines.append("  \(Format.count(run.events)) events: peak RSS \(Format.bytes(run.peakRSSBytes)) "
                + "(\(Format.bytes(run.peakRSSAfterEventsBytes)) before the profile), profile \(String(format: "%.0f", run.profileMs)) ms, "
                + "\(Format.bytes(UInt64(run.profileBytes))), naming \(String(format: "%.0f", run.namingMs)) ms")
        }
        lines.append("start-up: attached in \(String(format: "%.0f", attach.medianMs)) ms (median of \(attach.samplesMs.count))")
        if let overhead {
            lines.append("overhead on `\(overhead.workload)` (median and middle half of \(overhead.rounds) interleaved rounds)")
            for tool in Overhead.tools {
                guard let ms = overhead.medianMs[tool], let quartiles = overhead.interquartileMs[tool] else { continue }
                let ratio = overhead.ratios[tool].map { "  " + Format.overhead($0) } ?? ""
                let paired = overhead.pairedRatios[tool].map { " (per round: \(Format.overhead($0)))" } ?? ""
                lines.append("  \(tool.padding(toLength: 14, withPad: " ", startingAt: 0))"
                    + String(format: "%7.0f ms [%.0f-%.0f]", ms, quartiles[0], quartiles[1]) + ratio + paired)
            }
            if let cost = overhead.bpfCost { lines += cost.summary() }
            if let spin = overhead.spinCost {
                lines.append(String(format: "  on-CPU sampler at %d Hz: %llu samples x %.0f ns = %.2f ms, %.2f%% of the workload's "
                                    + "%.0f ms of CPU time (%.0f ms wall)", spin.hz, spin.samples, spin.nsPerSample,
                                    Double(spin.runNs) / 1e6, spin.workloadCPUShare * 100, spin.workloadCPUMs, spin.workloadWallMs))
            }
            for tool in ["lockscope", "lockscope-all"] {
                let runs = overhead.recordRuns.filter { $0.tool == tool }
                guard !runs.isEmpty else { continue }
                lines.append("  \(tool) record: peak RSS \(Format.bytes(runs.map(\.peakRSSBytes).max()!)), "
                    + "\(Format.count(runs.map(\.events).max()!)) events per run at most, "
                    + "\(runs.map(\.dropped).reduce(0, +)) dropped in all")
            }
        } else {
            lines.append("overhead: not measured (run through scripts/bench.sh)")
        }
        lines.append("")
        lines.append("targets")
        for target in targets {
            let verdict = target.met.map { $0 ? "met" : "MISSED" } ?? "-"
            lines.append("  \(verdict.padding(toLength: 7, withPad: " ", startingAt: 0)) "
                + "\(target.name) \(target.target): \(target.measured)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Numbers for people.
enum Format {
    static func rate(_ perSecond: Double) -> String { String(format: "%.2fM events/s", perSecond / 1e6) }
    static func count(_ value: UInt64) -> String {
        value >= 1_000_000 ? String(format: "%gM", Double(value) / 1e6) : String(value)
    }
    static func bytes(_ value: UInt64) -> String { String(format: "%.1f MB", Double(value) / 1e6) }
    static func overhead(_ ratio: Double) -> String { String(format: "%+.1f%%", (ratio - 1) * 100) }
    static func percent(_ share: Double) -> String { String(format: "%.2f%%", share * 100) }
    static func ms(_ ns: Double) -> String { String(format: "%.1f ms", ns / 1e6) }
}

extension BPFCost {
    /// The summary's lines: each tool's share of the workload's CPU time, its programs one by one, and
    /// what lockscope's cost is made of.
    func summary() -> [String] {
        let ordered = Self.tools.compactMap { self[$0] } + runs.filter { !Self.tools.contains($0.tool) }
        var lines = ["BPF run time (bpf_stats, one more run per tool) over the workload's own CPU time "
            + "(user + sys of the storm and the processes it started, same run)"]
        for run in ordered {
            var line = "  \(run.tool.padding(toLength: 17, withPad: " ", startingAt: 0))"
                + "\(Format.ms(Double(run.bpfRunNs))) over \(String(format: "%.0f", run.workloadCPUMs)) ms CPU "
                + "(\(String(format: "%.0f", run.workloadWallMs)) ms wall): \(Format.percent(run.cpuShareOfWorkload))"
            if let perWait = run.nsPerWait { line += String(format: ", %.0f ns per wait", perWait) }
            if let perSyscall = run.nsPerSyscall { line += String(format: ", %.0f ns per mount syscall", perSyscall) }
            lines.append(line)
        }
        lines.append("  per program: runs × ns per run = run time (share of the workload's CPU)")
        for run in ordered {
            lines.append("    \(run.tool)")
            for program in run.programs where program.runs > 0 {
                lines.append("      \(program.name.padding(toLength: 22, withPad: " ", startingAt: 0))"
                    + String(format: "%7ld × %6.0f ns = ", Int(program.runs), program.nsPerRun ?? 0)
                    + "\(Format.ms(Double(program.runNs))) (\(Format.percent(run.shareOfWorkload(Double(program.runNs)))))")
            }
            let idle = run.programs.filter { $0.runs == 0 }.count
            if idle > 0 { lines.append("      (\(idle) more programs did not run)") }
        }
        for run in ["lockscope", "lockscope-all"].compactMap({ self[$0] }) {
            lines.append("  \(run.tool)'s \(Format.percent(run.cpuShareOfWorkload)) by part: "
                + run.parts.map { $0.describe(in: run) }.joined(separator: ", "))
        }
        if let walk = stackWalkNsPerBegin, let with = self["bpftrace-kstack"]?.beginProgram?.nsPerRun,
           let without = self["bpftrace-minimal"]?.beginProgram?.nsPerRun {
            var line = String(format: "  a kernel stack walk: %.0f ns per contention_begin (bpftrace's %.0f ns per run with kstack, "
                + "%.0f ns without)", walk, with, without)
            if let begin = self["lockscope"]?.beginProgram, let perRun = begin.nsPerRun {
                line += String(format: "; lockscope's contention_begin %.0f ns per run", perRun)
            }
            lines.append(line)
        }
        return lines
    }
}
