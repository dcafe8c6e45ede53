import Foundation
import LockscopeTestSupport
import XCTest

/// What deploy/ holds, checked by the tools that will read it: the Kubernetes schema
/// (kubernetes-validate, strict), Prometheus's own checker and rule-test runner (promtool), and the
/// Grafana dashboard's queries parsed by promtool too.
final class DeployTests: XCTestCase {
    private static let deploy = DeployFiles.directory

    private func need(_ tool: String) throws -> String {
        if let path = ExternalTool.path(of: tool) { return path }
        if ExternalTool.required { XCTFail("\(tool) is not installed (.ci/run installs it)") }
        throw XCTSkip("\(tool) is not installed")
    }

    private func file(_ name: String) -> String { Self.deploy.appendingPathComponent(name).path }

    /// A scratch directory, removed at the end.
    private func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-deploy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// kubernetes-validate (PyPI), run by the python3 that has it.
    private func kubernetesValidate(_ path: String) throws -> ExternalTool.Output {
        let python = try need("python3")
        guard ExternalTool.pythonHas("kubernetes_validate") else {
            if ExternalTool.required { XCTFail("python3 has no kubernetes_validate (.ci/run installs it from PyPI)") }
            throw XCTSkip("python3 has no kubernetes_validate (pip install kubernetes-validate)")
        }
        return try ExternalTool.run(python, ["-m", "kubernetes_validate", "--strict", path])
    }

    func testTheManifestIsValidKubernetes() throws {
        let result = try kubernetesValidate(file("lockscope-agent.yaml"))
        let report = result.stdout + result.stderr
        XCTAssertEqual(result.status, 0, report)
        for resource in ["namespace/lockscope", "daemonset/lockscope-agent", "service/lockscope-agent"] {
            XCTAssertTrue(report.contains("passed for resource \(resource)"), report)
        }
        XCTAssertFalse(report.contains("ERROR"), report)

        // The check can fail: a misspelt field (strict mode rejects it) and a port that is not a number.
        let manifest = try String(contentsOfFile: file("lockscope-agent.yaml"), encoding: .utf8)
        let directory = try scratch()
        for (name, broken) in [("misspelt", manifest.replacingOccurrences(of: "hostPID: true", with: "hostPid: true")),
                               ("port", manifest.replacingOccurrences(of: "containerPort: 9464", with: "containerPort: metrics"))] {
            XCTAssertNotEqual(broken, manifest, name)
            let path = directory.appendingPathComponent("\(name).yaml")
            try broken.write(to: path, atomically: true, encoding: .utf8)
            let bad = try kubernetesValidate(path.path)
            XCTAssertTrue((bad.stdout + bad.stderr).contains("did not validate for resource daemonset/lockscope-agent"),
                          "\(name): \(bad.stdout)\(bad.stderr)")
        }
    }

    /// The agent has what `lockscope doctor` asks for and no more than the docs explain.
    func testTheAgentHasTheCapabilitiesItNeeds() throws {
        let manifest = try String(contentsOfFile: file("lockscope-agent.yaml"), encoding: .utf8)
        for needed in ["- BPF", "- PERFMON", "- SYSLOG", "hostPID: true", "drop: [\"ALL\"]", "readOnlyRootFilesystem: true",
                       "privileged: false", "path: /sys/kernel/btf", "path: /sys/fs/cgroup", "path: /healthz"] {
            XCTAssertTrue(manifest.contains(needed), needed)
        }
        XCTAssertFalse(manifest.contains("SYS_ADMIN"), "CAP_BPF and CAP_PERFMON replace CAP_SYS_ADMIN")
    }

    func testThePrometheusConfigurationAndAlertsCheck() throws {
        let promtool = try need("promtool")
        let config = try ExternalTool.run(promtool, ["check", "config", file("prometheus.yml")])
        XCTAssertEqual(config.status, 0, config.stdout + config.stderr)
        XCTAssertTrue(config.stdout.contains("SUCCESS: 7 rules found"), config.stdout)
        // The alerts fire for the node that waits and not for the other (deploy/prometheus-rules.test.yaml).
        let tests = try ExternalTool.run(promtool, ["test", "rules", file("prometheus-rules.test.yaml")])
        XCTAssertEqual(tests.status, 0, tests.stdout + tests.stderr)
        XCTAssertTrue(tests.stdout.contains("SUCCESS"), tests.stdout)
    }

    /// The dashboard's queries, as Grafana sends them (its variables filled in), parse as PromQL.
    func testTheDashboardsQueriesParse() throws {
        let promtool = try need("promtool")
        let expressions = try DeployFiles.dashboardExpressions()
        XCTAssertGreaterThanOrEqual(expressions.count, 9)
        let rules = "groups:\n  - name: dashboard\n    rules:\n" + expressions.enumerated().map { index, expression in
            "      - record: dashboard_query_\(index)\n        expr: '\(expression.replacingOccurrences(of: "'", with: "''"))'\n"
        }.joined()
        let path = try scratch().appendingPathComponent("dashboard-rules.yaml")
        try rules.write(to: path, atomically: true, encoding: .utf8)
        let check = try ExternalTool.run(promtool, ["check", "rules", path.path])
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
        XCTAssertTrue(check.stdout.contains("SUCCESS: \(expressions.count) rules found"), check.stdout)
    }
}
