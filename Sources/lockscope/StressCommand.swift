import ArgumentParser
import Foundation
import LockscopeStress

extension StressStrategy: ExpressibleByArgument {}
extension CgroupStyle: ExpressibleByArgument {}
extension StressRuntime: ExpressibleByArgument {}
extension WorkerRole: ExpressibleByArgument {}

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
            With --runtime containerd, one containerd-shim-runc-v2 look-alike per pod, all in the cgroup \
            system.slice/containerd.service, mounts its containers' roots on concurrent threads the way \
            containerd 2.x does (per container: per-layer 4 × layers + 2, common-parent 6; per shim 2), \
            while --readers processes time their reads of /proc/self/mountinfo. \
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

    @Option(help: "Container cgroup naming: \(CgroupStyle.allCases.map(\.rawValue).joined(separator: ", ")) (default: docker; kubepods with --runtime containerd).")
    var cgroupStyle: CgroupStyle?

    @Option(help: "Who makes the mounts: \(StressRuntime.allCases.map(\.rawValue).joined(separator: " or ")) (a containerd shim per pod).")
    var runtime = StressOptions().runtime

    @Option(help: "Containers per pod, one shim each (--runtime containerd; --containers must be a multiple).")
    var containersPerPod: Int?

    @Option(help: "Processes reading /proc/self/mountinfo in a loop, as systemd and kubelet do (default: 0; 2 with --runtime containerd).")
    var readers: Int?

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
        options.runtime = runtime
        options.cgroupStyle = cgroupStyle ?? (runtime == .containerd ? .kubepods : StressOptions().cgroupStyle)
        options.containersPerPod = containersPerPod ?? (runtime == .containerd ? 2 : 1)
        options.readers = readers ?? (runtime == .containerd ? 2 : 0)
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

/// `lockscope stress-worker [--role container|shim|reader] --spec <json>`: one container start, one
/// containerd shim or one mountinfo reader, run by `lockscope stress` (hidden).
struct StressWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stress-worker",
        abstract: "Start one simulated container, shim or mountinfo reader (internal: run by lockscope stress).",
        shouldDisplay: false)

    @Option(help: "What to run: \(WorkerRole.allCases.map(\.rawValue).joined(separator: ", ")).")
    var role = WorkerRole.container

    @Option(help: "What to run, as JSON (default: $\(StressWorker.specVariable)).")
    var spec: String?

    @Option(help: "Ignored: lengthens the command line that a shim writes its own over.")
    var pad: String?

    func run() throws {
        guard let encodedSpec = spec ?? ProcessInfo.processInfo.environment[StressWorker.specVariable] else {
            throw ValidationError("stress-worker needs --spec or $\(StressWorker.specVariable)")
        }
        let status = role.run(encodedSpec: encodedSpec)
        if status != 0 { throw ExitCode(status) }
    }
}
