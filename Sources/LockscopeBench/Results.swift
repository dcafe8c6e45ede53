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
struct Overhead: Codable {
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
    /// Its BPF programs' own run time in one more run.
    var bpfCost: BPFCost?
    /// The on-CPU sampler's run time against the workload's own CPU time, in one more run.
    var spinCost: SpinCost?

    /// Reads `tool<TAB>round<TAB>wall_ms` lines, and `tool<TAB>round<TAB>peak_rss_kib<TAB>events<TAB>dropped`
    /// lines from `recordRunsPath`.
    static func load(path: String, recordRunsPath: String?, bpfCostPath: String?, spinCostPath: String? = nil,
                     cpus: Int, workload: String) throws -> Overhead {
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
        let bpfCost = try bpfCostPath.map { path in
            try BPFCost(tabSeparated(path, columns: 4, format: "program<TAB>runs<TAB>run_ns<TAB>workload_ms"), cpus: cpus)
        }
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

/// lockscope's BPF programs' run time (kernel.bpf_stats_enabled) during one workload run under
/// `lockscope record`: the in-kernel cost, free of the run-to-run noise of wall times.
struct BPFCost: Codable {
    struct Program: Codable {
        var name: String
        var runs: UInt64
        var runNs: UInt64
    }

    var programs: [Program]
    var workloadMs: Double
    /// Their run time over the CPU time the workload's wall time spans on every CPU.
    var cpuShare: Double
    /// The syscall programs' run time (enter and exit, with the paths and fds attribution reads) per
    /// mount-family syscall they saw begin; nil when none ran.
    var nsPerMountSyscall: Double?

    init(_ rows: [[String]], cpus: Int) throws {
        programs = try rows.map { fields in
            guard let runs = UInt64(fields[1]), let ns = UInt64(fields[2]) else {
                throw BenchError("bad BPF statistics line '\(fields.joined(separator: "\t"))'")
            }
            return Program(name: fields[0], runs: runs, runNs: ns)
        }
        workloadMs = rows.first.flatMap { Double($0[3]) } ?? 0
        let totalNs = Double(programs.map(\.runNs).reduce(0, +))
        cpuShare = workloadMs > 0 ? totalNs / (workloadMs * 1e6 * Double(max(cpus, 1))) : 0
        let syscallPrograms = programs.filter { $0.name.hasPrefix("enter_") || $0.name.hasPrefix("exit_") }
        let syscalls = syscallPrograms.filter { $0.name.hasPrefix("enter_") }.map(\.runs).reduce(0, +)
        nsPerMountSyscall = syscalls > 0 ? Double(syscallPrograms.map(\.runNs).reduce(0, +)) / Double(syscalls) : nil
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
struct RecordRun: Codable {
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
        let growth = peakRSSFewestEvents > 0 ? Double(peakRSS) / Double(peakRSSFewestEvents) : 0
        return [
            TargetCheck(name: "ingest without drops", target: ">= 2M events/s on one core",
                        measured: Format.rate(ingest.sustainedPerSec), met: ingest.sustainedPerSec >= 2e6),
            TargetCheck(name: "ingest / do-nothing consumer", target: ">= 0.5",
                        measured: String(format: "%.2f", ingestToCeiling), met: ingestToCeiling >= 0.5),
            TargetCheck(name: "workload overhead", target: "<= 3%",
                        measured: overheadRatio.map(Format.overhead) ?? "not measured",
                        met: overheadRatio.map { $0 <= 1.03 }),
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
            if let cost = overhead.bpfCost {
                let programs = cost.programs.filter { $0.runs > 0 }.map { program in
                    "\(program.name) \(program.runs)×\(program.runs > 0 ? program.runNs / program.runs : 0) ns"
                }
                lines.append(String(format: "  lockscope's BPF programs: %.1f%% of all CPU time in a %.0f ms run (",
                                    cost.cpuShare * 100, cost.workloadMs) + programs.joined(separator: ", ") + ")")
                if let perSyscall = cost.nsPerMountSyscall {
                    lines.append(String(format: "  per mount-family syscall (enter + exit, with the paths attribution reads): %.0f ns", perSyscall))
                }
            }
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
}
