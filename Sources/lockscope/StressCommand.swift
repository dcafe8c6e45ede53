import ArgumentParser
import Foundation
import LockscopeStress

extension StressStrategy: ExpressibleByArgument {}
extension CgroupStyle: ExpressibleByArgument {}

/// `lockscope stress`: a containerd-style container-start mount storm to profile.
struct StressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stress",
        abstract: "Start simulated containers the way containerd does with user namespaces: a mount storm.",
        discussion: """
            Each container runs in its own process and cgroup v2, with its own user-namespace id range, \
            inside a private mount namespace: it idmaps its image layers (open_tree + mount_setattr + \
            move_mount), mounts an overlay root over them, unmounts the idmapped mounts and tears the root \
            down. Mount-family syscalls per container: per-layer 4 × layers + 4, common-parent 8. \
            Everything the run creates is removed when it ends, also on SIGINT (Ctrl-C), SIGTERM, \
            SIGHUP and SIGQUIT (exit status 128 + the signal); what a SIGKILLed run left is removed by the \
            next run in the same scratch parent. Needs root.
            """)

    @Option(help: "Containers started per round.")
    var containers = StressOptions().containers

    @Option(help: "Image layers per container (1-\(StressOptions.maxLayers)).")
    var layers = StressOptions().layers

    @Option(help: "Containers starting at the same time: 2 × CPUs.")
    var parallel = StressOptions().parallel

    @Option(help: "How layers are idmapped: \(StressStrategy.allCases.map(\.rawValue).joined(separator: " or ")).")
    var strategy = StressOptions().strategy

    @Option(help: "Rounds run one after the other.")
    var rounds = StressOptions().rounds

    @Option(help: "Container cgroup naming: \(CgroupStyle.allCases.map(\.rawValue).joined(separator: ", ")).")
    var cgroupStyle = StressOptions().cgroupStyle

    @Option(help: "Where the run's scratch directory goes: /dev/shm if it is a tmpfs, else $TMPDIR or /tmp.")
    var scratchParent = StressOptions.defaultScratchParent

    @Flag(help: "Print one JSON object instead of a summary.")
    var json = false

    func run() throws {
        var options = StressOptions()
        options.containers = containers
        options.layers = layers
        options.parallel = parallel
        options.strategy = strategy
        options.rounds = rounds
        options.cgroupStyle = cgroupStyle
        options.scratchParent = scratchParent
        let result: StressResult
        do {
            result = try StressRunner(options: options).run()
        } catch let error as StressError {
            FileHandle.standardError.write(Data("lockscope stress: \(error)\n".utf8))
            throw ExitCode(error.exitCode)
        }
        print(json ? try result.jsonLine() : result.summary)
        if result.failures > 0 { throw ExitCode.failure }
    }
}

/// `lockscope stress-worker --spec <json>`: one container start, run by `lockscope stress` (hidden).
struct StressWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stress-worker",
        abstract: "Start one simulated container (internal: run by lockscope stress).",
        shouldDisplay: false)

    @Option(help: "The container to start, as JSON.")
    var spec: String

    func run() throws {
        let status = StressWorker.run(encodedSpec: spec)
        if status != 0 { throw ExitCode(status) }
    }
}
