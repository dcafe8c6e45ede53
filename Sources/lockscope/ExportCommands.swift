import ArgumentParser
import Foundation
import LockscopeCore
import LockscopeExport

/// `lockscope export FILE --format folded|csv|speedscope|pprof`: a recorded profile in the formats other tools read.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a profile as folded stacks, CSV, speedscope JSON or pprof.",
        discussion: """
        folded loads in flamegraph.pl, inferno and speedscope; speedscope opens in speedscope; pprof \
        (gzipped protobuf) in `go tool pprof` and Pyroscope; csv has one row per lock and dimension. \
        Text formats go to standard output unless -o is given; pprof needs -o. Folded lines carry no unit: \
        draw wait weights with `flamegraph.pl --countname=ns contention.folded > contention.svg` (count \
        weights: --countname=contentions); export folded prints that command line on standard error. \
        See docs/flamegraphs.md.
        """)

    @Argument(help: "The profile to read (written by `lockscope record -o`).")
    var file: String

    @Option(help: "Output format: folded, csv, speedscope or pprof.")
    var format: ExportFormat

    @Option(help: "What the stacks weigh: wait (nanoseconds waited, or CPU time of samples) or count (contentions, or samples). Default: wait.")
    var weight: ExportWeight?

    @Option(help: "Which stacks: wait (lock waits), cpu (every on-CPU sample, by thread name) or spin (samples spinning on a lock, by lock). Default: wait.")
    var samples: SampleType = .wait

    @Option(help: .init("Synthetic root frames: none, or lock, container, cpu, socket, comma-separated in order (container,lock). Default: lock.",
                        valueName: "grouping"))
    var group: StackGrouping?

    @Option(name: .shortAndLong, help: "File to write (default: standard output).")
    var output: String?

    @OptionGroup var fileMode: FileModeOption

    @OptionGroup var stackFilter: CallstackFilterOption

    func run() throws {
        if !format.isStackBased && (weight != nil || group != nil) {
            throw UserError("--weight and --group shape stacks; csv has one row per lock and dimension: drop them")
        }
        if format.isBinary && output == nil {
            throw UserError("\(format) output is binary: give a file to write with -o, e.g. -o contention.pb.gz")
        }
        if let output { try AtomicFile.checkWritable(output) }
        if !format.isStackBased && samples != .wait {
            throw UserError("--samples chooses stacks; csv has one row per lock and dimension: drop it")
        }
        if !format.isStackBased && stackFilter.filter != nil {
            throw UserError("--callstack-filter keeps stacks; csv's rows are per lock and dimension, which cannot be split by stack: drop it, or record with --callstack-filter")
        }
        try SampleProfiles.checkGrouping(group ?? .lock, type: samples)
        let profile = stackFilter.apply(try SampleProfiles.view(try Profile.load(path: file), type: samples), samples: samples)
        let grouping = group ?? .lock
        try grouping.validate(for: profile, source: file)
        let data = try ProfileExporter.export(profile, format: format, weight: weight ?? .wait, grouping: grouping,
                                              samples: samples)
        if let output {
            try AtomicFile.write(data, to: output, mode: fileMode.mode)
        } else {
            FileHandle.standardOutput.write(data)
        }
        if format == .folded {
            let command = FoldedExporter.flamegraphCommand(output ?? "contention.folded", weight: weight ?? .wait,
                                                           samples: samples)
            FileHandle.standardError.write(Data("lockscope: draw it with: \(TerminalText.escaped(command))\n".utf8))
        }
    }
}

/// `lockscope flamegraph FILE -o out.svg`: an interactive flame graph that needs nothing but a browser.
struct FlamegraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flamegraph",
        abstract: "Draw a profile as a self-contained interactive flame graph (SVG).",
        discussion: """
        Open the SVG in a browser: hover a frame for its wait and share, click to zoom, Search (Ctrl-F) to \
        highlight frames by regular expression, Reset Zoom (Escape) to go back. See docs/flamegraphs.md.
        """)

    @OptionGroup var svg: ProfileToSVGOptions

    @Option(help: "What frame widths measure: wait (nanoseconds waited) or count (contentions).")
    var weight: ExportWeight = .wait

    @Option(help: .init("Synthetic root frames: none, or lock, container, cpu, socket, comma-separated in order (container,lock).",
                        valueName: "grouping"))
    var group: StackGrouping = .lock

    @Option(help: "The heading (default: \"Lock wait time\" or \"Lock contentions\").")
    var title: String?

    @Option(help: "Colour frames by lock kind or by container.")
    var color: FlameColoring = .kind

    @Flag(help: "Draw an icicle graph: root at the top, stacks growing down.")
    var icicle = false

    @Option(help: "Which stacks: wait (lock waits), cpu (every on-CPU sample of record --spin-hz, one root per thread name) or spin (the samples spinning on a lock, one root per lock).")
    var samples: SampleType = .wait

    @OptionGroup var stackFilter: CallstackFilterOption

    func run() throws {
        try AtomicFile.checkWritable(svg.output)
        try SampleProfiles.checkGrouping(group, type: samples)
        let profile = stackFilter.apply(try SampleProfiles.view(try Profile.load(path: svg.file), type: samples), samples: samples)
        try group.validate(for: profile, source: svg.file)
        let options = FlameGraphSVG.Options(weight: weight, grouping: group, title: title, coloring: color, icicle: icicle,
                                            samples: samples)
        try AtomicFile.write(Data(try FlameGraphSVG.render(profile, options: options).utf8), to: svg.output, mode: svg.fileMode.mode)
    }
}

/// `--callstack-filter NAME,...` on the stack exports (perf lock contention's -S over a recorded profile).
struct CallstackFilterOption: ParsableArguments {
    @Option(name: .customLong("callstack-filter"), parsing: .unconditional,
            help: ArgumentHelp("Keep only the stacks with a frame whose function name contains one of these (perf -S); waits without a stack are left out.",
                               valueName: "NAME,..."),
            transform: CallstackFilter.init(parsing:))
    var filter: CallstackFilter?

    /// `view` with only the matching stacks, saying on stderr how much that kept; `view` without a filter.
    func apply(_ view: Profile, samples: SampleType) -> Profile {
        guard let filter else { return view }
        let (matched, kept, all) = SampleProfiles.matching(view, filter: filter)
        let unit = samples.amountWords.count + "s"
        let line = "lockscope: --callstack-filter \(filter.names.joined(separator: ",")) kept \(kept.count) of \(all.count) \(unit) "
            + "(\(Units.duration(kept.ns)) of \(Units.duration(all.ns)))"
        FileHandle.standardError.write(Data((TerminalText.escaped(line) + "\n").utf8))
        return matched
    }
}

extension ExportFormat: ExpressibleByArgument {}
extension ExportWeight: ExpressibleByArgument {}
extension SampleType: ExpressibleByArgument {}
extension FlameColoring: ExpressibleByArgument {}

extension StackGrouping: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(parsing: argument)
    }
}

/// `lockscope timeline FILE -o out.svg`: the recording second by second, as a standalone chart.
struct TimelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "timeline",
        abstract: "Draw a profile's per-second timeline (lock wait, victims, mount syscalls, container starts) as an SVG.",
        discussion: """
        Four panels share the time axis: lock wait per second stacked by lock (namespace_sem, mount_lock, \
        the rest), the victims' wait per second and longest wait, mount syscalls per second, and containers \
        started. Hover a second for its values. Needs a profile with a timeline of two seconds or more.
        """)

    @OptionGroup var svg: ProfileToSVGOptions

    @Option(help: "The heading (default: \"Lock contention over time\").")
    var title: String?

    func run() throws {
        try AtomicFile.checkWritable(svg.output)
        let profile = try Profile.load(path: svg.file)
        let drawn = try TimelineSVG.render(profile, source: svg.file, options: TimelineSVG.Options(title: title))
        try AtomicFile.write(Data(drawn.utf8), to: svg.output, mode: svg.fileMode.mode)
    }
}

/// What `flamegraph` and `timeline` both take: the profile to read, the SVG to write, and its mode.
struct ProfileToSVGOptions: ParsableArguments {
    @Argument(help: "The profile to read (written by `lockscope record -o`).")
    var file: String

    @Option(name: .shortAndLong, help: "SVG file to write.")
    var output: String

    @OptionGroup var fileMode: FileModeOption
}
