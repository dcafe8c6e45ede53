import ArgumentParser
import LockscopeCompare

/// Options shared by `check` and `diff`: what is compared and the noise guards.
struct ComparisonOptions: ParsableArguments {
    @Option(name: .customLong("metric"), help: ArgumentHelp(
        "Metrics to judge, repeatable or comma-separated: p50, p99, p999, max, total, rate, spin (sampled spin time per second; default: all but spin).",
        valueName: "METRIC"))
    var metrics: [String] = []

    @Option(help: ArgumentHelp(
        "Largest allowed increase of METRIC in percent of the baseline, e.g. p99=20 (repeatable).",
        valueName: "METRIC=PCT"))
    var maxRegression: [String] = []

    @Option(help: ArgumentHelp(
        "Smallest change of METRIC that counts, e.g. p99=50us, total=2ms/s, rate=20/s (repeatable).",
        valueName: "METRIC=VALUE"))
    var minDelta: [String] = []

    @Option(help: ArgumentHelp(
        "A lock (or lock in a container) with fewer contentions than N in both profiles is not judged (default: \(ComparisonSettings.defaultMinContentions)).",
        valueName: "N"))
    var minContentions: Int?

    @Option(help: ArgumentHelp("Judge only these locks, by name (repeatable or comma-separated).", valueName: "NAME,..."))
    var locks: [String] = []

    @Option(help: ArgumentHelp("Compare per lock, or per lock in each container (matched by container id): lock or container.",
                               valueName: "lock|container"))
    var by: String?

    func settings() throws -> ComparisonSettings {
        try ComparisonSettings.parse(metrics: metrics, maxRegressions: maxRegression, minDeltas: minDelta,
                                     minContentions: minContentions, grouping: by, locks: locks)
    }
}

/// `lockscope check`: gate CI on lock contention against a baseline profile, a budget, or both.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Fail (exit 1) when lock contention regressed against a baseline or exceeds a budget.",
        discussion: """
            Exit status: 0 within limits, 1 regression (or nothing judged with --fail-if-nothing-judged), 2 error. A change counts only when it exceeds both \
            the relative limit (--max-regression) and the absolute floor (--min-delta). Defaults: p50 and p99 \
            +20% and 10 us, p999 +30% and 10 us, max +50% and 100 us, total +20% and 1 ms/s, rate +20% and \
            10/s, at least 50 contentions. See docs/ci.md and docs/budgets.md.
            """)

    @Argument(help: "The profile to judge (from `lockscope record`).")
    var current: String

    @Option(help: ArgumentHelp("The baseline profile to compare with.", valueName: "BASE"))
    var baseline: String?

    @Option(help: ArgumentHelp("A budget file of absolute limits (docs/budgets.md).", valueName: "FILE"))
    var budget: String?

    @OptionGroup var comparison: ComparisonOptions

    @Option(help: ArgumentHelp("Also write JUnit XML, one test case per lock and metric.", valueName: "FILE"))
    var junit: String?

    @Option(help: ArgumentHelp("Also write a markdown report (for a PR comment or $GITHUB_STEP_SUMMARY).", valueName: "FILE"))
    var markdown: String?

    @Flag(help: "Fail (exit 1) when nothing was judged: every lock under --min-contentions, or absent.")
    var failIfNothingJudged = false

    @OptionGroup var fileMode: FileModeOption

    func run() throws {
        let result = try Check.run(CheckRequest(currentPath: current, baselinePath: baseline, budgetPath: budget,
                                                settings: try comparison.settings(), junitPath: junit,
                                                markdownPath: markdown, fileMode: fileMode.mode,
                                                failIfNothingJudged: failIfNothingJudged))
        print(CheckReport.render(result), terminator: "")
        if result.exitStatus != 0 { throw ExitCode(result.exitStatus) }
    }
}

/// `lockscope diff`: the side-by-side comparison of two profiles.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two profiles lock by lock: base, current, delta, change and verdict.",
        discussion: "Verdicts use the same limits as `lockscope check`; diff itself exits 0 unless an input is unusable (2).")

    @Argument(help: "The baseline profile.")
    var base: String

    @Argument(help: "The profile to compare with the baseline.")
    var current: String

    @OptionGroup var comparison: ComparisonOptions

    @Option(help: ArgumentHelp("Output format: table, markdown or json.", valueName: "FORMAT"))
    var format: String = DiffFormat.table.rawValue

    func run() throws {
        print(try Diff.run(basePath: base, currentPath: current, settings: try comparison.settings(),
                           format: try Diff.parseFormat(format)), terminator: "")
    }
}
