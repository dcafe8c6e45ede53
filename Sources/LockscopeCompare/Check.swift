import Foundation
import LockscopeCore

/// What `lockscope check` was asked to do.
public struct CheckRequest: Sendable {
    public var currentPath: String
    public var baselinePath: String?
    public var budgetPath: String?
    public var settings: ComparisonSettings
    /// Where to write JUnit XML and markdown reports, if anywhere.
    public var junitPath: String?
    public var markdownPath: String?
    /// Permissions of the reports written.
    public var fileMode: mode_t
    /// Fail (exit 1) when every test case was skipped: no lock had enough contentions to be judged.
    public var failIfNothingJudged: Bool

    public init(currentPath: String, baselinePath: String? = nil, budgetPath: String? = nil,
                settings: ComparisonSettings = ComparisonSettings(), junitPath: String? = nil,
                markdownPath: String? = nil, fileMode: mode_t = AtomicFile.defaultMode, failIfNothingJudged: Bool = false) {
        self.fileMode = fileMode
        self.failIfNothingJudged = failIfNothingJudged
        self.currentPath = currentPath
        self.baselinePath = baselinePath
        self.budgetPath = budgetPath
        self.settings = settings
        self.junitPath = junitPath
        self.markdownPath = markdownPath
    }
}

/// The outcome of `lockscope check`: against a baseline, a budget, or both.
public struct CheckResult: Sendable {
    public var comparison: Comparison?
    public var budget: BudgetEvaluation?
    /// Whether a check that judged nothing fails (`--fail-if-nothing-judged`).
    public var failIfNothingJudged = false
    /// When the check ran and how long it took, for JUnit's `timestamp` and `time`.
    public var startedAt = Date()
    public var seconds = 0.0

    public init(comparison: Comparison? = nil, budget: BudgetEvaluation? = nil, failIfNothingJudged: Bool = false) {
        self.comparison = comparison
        self.budget = budget
        self.failIfNothingJudged = failIfNothingJudged
    }

    /// Metrics and limits that were judged (passed or failed), not skipped for too few contentions or an
    /// absent lock.
    public var judgedCount: Int {
        let metrics = comparison?.subjects.reduce(0) { $0 + $1.metrics.filter { $0.verdict != .notEnoughData }.count } ?? 0
        let limits = budget.map { $0.locks.filter { [.within, .exceeded].contains($0.status) }.count + $0.mounts.count } ?? 0
        return metrics + limits
    }

    /// Nothing was judged: the gate said nothing about this profile, whatever its verdict.
    public var nothingJudged: Bool { judgedCount == 0 }

    public var passed: Bool {
        (comparison?.passed ?? true) && (budget?.passed ?? true) && !(failIfNothingJudged && nothingJudged)
    }

    /// The process exit status: 0 within limits, 1 regression (errors are `UserError`s, status 2).
    public var exitStatus: Int32 { passed ? 0 : 1 }
}

/// `lockscope check`: loads the inputs, judges, and writes the requested reports.
public enum Check {
    /// Runs a check. Output paths are checked before anything is read, and reports are written
    /// atomically. Every problem with the inputs or options is a `UserError`.
    public static func run(_ request: CheckRequest) throws -> CheckResult {
        guard request.baselinePath != nil || request.budgetPath != nil else {
            throw UserError("check needs --baseline BASE, --budget FILE, or both")
        }
        for path in [request.junitPath, request.markdownPath].compactMap({ $0 }) {
            try AtomicFile.checkWritable(path)
        }
        let clock = ContinuousClock.now
        var result = CheckResult(failIfNothingJudged: request.failIfNothingJudged)
        let current = try Profile.load(path: request.currentPath)
        if let baselinePath = request.baselinePath {
            result.comparison = try Comparison(base: try Profile.load(path: baselinePath), current: current,
                                               baseSource: baselinePath, currentSource: request.currentPath,
                                               settings: request.settings)
        }
        if let budgetPath = request.budgetPath {
            result.budget = try BudgetEvaluation(budget: try Budget.load(path: budgetPath), source: budgetPath,
                                                 profile: current, profileSource: request.currentPath,
                                                 minContentions: request.settings.minContentions,
                                                 lockNames: request.settings.lockNames)
        }
        let elapsed = ContinuousClock.now - clock
        result.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        if let junitPath = request.junitPath {
            try AtomicFile.write(Data(JUnitReport.render(result).utf8), to: junitPath, mode: request.fileMode)
        }
        if let markdownPath = request.markdownPath {
            try AtomicFile.write(Data(MarkdownReport.render(result).utf8), to: markdownPath, mode: request.fileMode)
        }
        return result
    }
}

/// How `lockscope diff` prints.
public enum DiffFormat: String, CaseIterable, Sendable {
    case table, markdown, json
}

/// `lockscope diff`: the side-by-side comparison of two profiles, always exit 0 when it succeeds.
public enum Diff {
    /// The comparison of `currentPath` against `basePath`, rendered in `format`.
    public static func run(basePath: String, currentPath: String, settings: ComparisonSettings,
                           format: DiffFormat) throws -> String {
        let comparison = try Comparison(base: try Profile.load(path: basePath),
                                        current: try Profile.load(path: currentPath),
                                        baseSource: basePath, currentSource: currentPath, settings: settings)
        switch format {
        case .table: return DiffTable.render(comparison)
        case .markdown: return MarkdownReport.render(CheckResult(comparison: comparison), for: .diff)
        case .json: return try DiffJSON.render(comparison)
        }
    }

    /// Parses `--format`.
    public static func parseFormat(_ text: String) throws -> DiffFormat {
        guard let format = DiffFormat(rawValue: text) else {
            throw UserError("--format \(text): unknown format; valid: \(DiffFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return format
    }
}
