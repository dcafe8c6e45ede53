// lockscope-bench: the benchmarks behind `make bench` (scripts/bench.sh runs it after timing the
// workload overhead). Needs root. Not a test: numbers vary with the machine and what else runs on it.
//
//   lockscope-bench [--lockscope PATH] [--overhead FILE [--record-runs FILE] [--bpf-cost FILE] [--spin-cost FILE]
//                   --workload TEXT]
//                   [--output PATH] [--step-seconds S] [--attach-runs N] [--locks N] [--cpus N] [--containers N]
//   lockscope-bench memory EVENTS LOCKS CPUS CONTAINERS   (internal: one memory run, in a fresh process)
//   lockscope-bench cost [EVENTS]   per-event cost, line cost and one memory run only: a quick check while tuning
//   lockscope-bench ingest          the ingest and ceiling rates only
import Foundation
import LockscopeCore
import LockscopeKernel

/// Command-line options; every one has a default that `make bench` uses.
struct BenchOptions {
    var lockscope = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("lockscope").path
    var overheadPath: String?
    var recordRunsPath: String?
    var bpfCostPath: String?
    var spinCostPath: String?
    var workload = ""
    var output = "bench/results.json"
    var stepSeconds = 4.0
    var attachRuns = 7
    var memoryEvents = [1_000_000, 10_000_000]
    var keys = KeySpace()

    init(_ arguments: ArraySlice<String>) throws {
        var arguments = arguments
        func value(_ flag: String) throws -> String {
            guard let value = arguments.popFirst() else { throw BenchError("\(flag) needs a value") }
            return value
        }
        while let flag = arguments.popFirst() {
            switch flag {
            case "--lockscope": lockscope = try value(flag)
            case "--overhead": overheadPath = try value(flag)
            case "--record-runs": recordRunsPath = try value(flag)
            case "--bpf-cost": bpfCostPath = try value(flag)
            case "--spin-cost": spinCostPath = try value(flag)
            case "--workload": workload = try value(flag)
            case "--output": output = try value(flag)
            case "--step-seconds":
                guard let seconds = Double(try value(flag)), seconds > 0 else { throw BenchError("bad --step-seconds") }
                stepSeconds = seconds
            case "--locks", "--cpus", "--containers":
                guard let count = Int(try value(flag)), count > 0 else { throw BenchError("bad \(flag)") }
                if flag == "--locks" {
                    guard count > keys.hotLocks else { throw BenchError("--locks must be above \(keys.hotLocks)") }
                    keys.locks = count
                } else if flag == "--cpus" {
                    keys.cpus = count
                } else {
                    keys.containers = count
                }
            case "--attach-runs":
                guard let runs = Int(try value(flag)), runs > 0 else { throw BenchError("bad --attach-runs") }
                attachRuns = runs
            default: throw BenchError("unknown option \(flag)")
            }
        }
    }
}

func progress(_ line: String) {
    FileHandle.standardError.write(Data("lockscope-bench: \(line)\n".utf8))
}

func describe(_ step: Step, consumer: String) -> String {
    let target = step.targetPerSec.map(Format.rate) ?? "flat out"
    return "\(consumer) at \(target): produced \(Format.rate(step.producedPerSec)), lost \(step.lost), "
        + String(format: "consumer CPU %.0f%%, %.0f ns/event", step.consumerCPUShare * 100, step.consumerNsPerEvent)
}

/// Ingest and ceiling on the same ring buffer: the consumer on CPU 0 (this thread), the producer on CPU 1.
/// Then the collector flat out with fewer containers: its cost per event grows with how many
/// containers (and so processes and contexts) contend each lock.
func measureThroughput(_ options: BenchOptions, cpus: Int) throws
    -> (ingest: RateSearch, ceiling: RateSearch, byContainers: [KeySpaceRate]) {
    let producerCPU = cpus > 1 ? 1 : 0
    if cpus < 2 { progress("warning: one CPU: producer and consumer share it, rates are understated") }
    pinCurrentThread(to: 0)
    let source = try SyntheticSource(ringBufferBytes: BPFOptions().ringBufferBytes)
    let bench = ThroughputBench(source: source, keys: options.keys, producerCPU: producerCPU,
                                stepSeconds: options.stepSeconds)
    let ceiling = try bench.findDropOnset(try NullConsumer(mapFD: source.eventsFD), start: 2e6) {
        progress(describe($0, consumer: "do-nothing consumer"))
    }
    let collector = try CollectorConsumer(mapFD: source.eventsFD, topology: try? Topology.read())
    // Every lock, CPU, container and process seen once, as in a recording that has been running a while.
    progress(describe(try bench.step(collector, rate: 1e6), consumer: "collector warm-up"))
    let ingest = try bench.findDropOnset(collector, start: 1e6) { progress(describe($0, consumer: "collector")) }
    guard collector.undecodable == 0 else {
        throw BenchError("\(collector.undecodable) records did not decode: rebuild (make bpf)")
    }
    var byContainers: [KeySpaceRate] = []
    for containers in KeySpaceRate.containerCounts where containers < options.keys.containers {
        var keys = options.keys
        keys.containers = containers
        let bench = ThroughputBench(source: source, keys: keys, producerCPU: producerCPU, stepSeconds: options.stepSeconds)
        let collector = try CollectorConsumer(mapFD: source.eventsFD, topology: try? Topology.read())
        progress(describe(try bench.step(collector, rate: 1e6), consumer: "collector warm-up, \(keys.containersText)"))
        let step = try bench.step(collector, rate: nil)
        progress(describe(step, consumer: "collector, \(keys.containersText)"))
        byContainers.append(KeySpaceRate(keySpace: keys, flatOut: step))
    }
    return (ingest, ceiling, byContainers)
}

func runBenchmarks(_ options: BenchOptions) throws {
    guard geteuid() == 0 else { throw BenchError("benchmarks load BPF programs and run `lockscope record`: run as root") }
    let machine = Machine.current()
    let overhead = try options.overheadPath.map {
        try Overhead.load(path: $0, recordRunsPath: options.recordRunsPath, bpfCostPath: options.bpfCostPath,
                          spinCostPath: options.spinCostPath, workload: options.workload)
    }

    progress("start-up: \(options.attachRuns) × `\(options.lockscope) record` until attached")
    let attach = try AttachTimes.measure(lockscope: options.lockscope, runs: options.attachRuns)
    var memory: [MemoryRun] = []
    for events in options.memoryEvents {
        progress("memory: \(Format.count(UInt64(events))) events in a fresh process")
        memory.append(try MemoryRun.inChildProcess(events: events, keys: options.keys))
    }
    progress("per-event cost, on one thread")
    let cost = try PerEventCost.measure(keys: options.keys)
    let lineCosts = LineCost.measureOnConsumerCPU()
    progress("throughput: \(String(format: "%g", options.stepSeconds)) s per step")
    let throughput = try measureThroughput(options, cpus: machine.cpus)

    let results = Results(generatedAt: ISO8601DateFormatter().string(from: Date()), machine: machine,
                          keySpace: options.keys, ingest: throughput.ingest, ceiling: throughput.ceiling,
                          ingestByContainers: throughput.byContainers,
                          perEventCost: cost, lineCosts: lineCosts, memory: memory, attach: attach, overhead: overhead)
    try AtomicFile.write(try results.json(), to: options.output)
    print(results.summary(), terminator: "")
    print("wrote \(options.output)")
}

do {
    let arguments = CommandLine.arguments.dropFirst()
    if arguments.first == "memory" {
        let numbers = arguments.dropFirst().compactMap { Int($0) }
        guard numbers.count == 4, numbers.allSatisfy({ $0 > 0 }) else {
            throw BenchError("usage: lockscope-bench memory EVENTS LOCKS CPUS CONTAINERS")
        }
        let keys = KeySpace(locks: numbers[1], cpus: numbers[2], containers: numbers[3])
        let run = try MemoryRun.measure(events: numbers[0], keys: keys)
        FileHandle.standardOutput.write(try JSONEncoder().encode(run))
    } else if arguments.first == "cost" {
        let events = arguments.dropFirst().first.flatMap { Int($0) } ?? 1_000_000
        let keys = KeySpace()
        let cost = try PerEventCost.measure(keys: keys)
        let lineCosts = LineCost.measureOnConsumerCPU()
        let memory = try MemoryRun.inChildProcess(events: events, keys: keys)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        for part in [try encoder.encode(cost), try encoder.encode(lineCosts), try encoder.encode(memory)] {
            FileHandle.standardOutput.write(part + Data("\n".utf8))
        }
    } else if arguments.first == "ingest" {
        let options = try BenchOptions(arguments.dropFirst())
        let (ingest, ceiling, byContainers) = try measureThroughput(options, cpus: Machine.current().cpus)
        print("ingest without drops \(Format.rate(ingest.sustainedPerSec)), ceiling \(Format.rate(ceiling.sustainedPerSec))")
        for rate in byContainers {
            print("  \(rate.keySpace.containersText): \(Format.rate(rate.flatOut.producedPerSec)), lost \(rate.flatOut.lost)")
        }
    } else {
        try runBenchmarks(try BenchOptions(arguments))
    }
} catch {
    FileHandle.standardError.write(Data("lockscope-bench: \(error)\n".utf8))
    exit(1)
}
