import Foundation

/// The files of deploy/, read by the tests that check them against their tools and the agent.
public enum DeployFiles {
    public static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("deploy")

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Every panel query of deploy/grafana-dashboard.json, with Grafana's variables as a query over the
    /// last minute of every node would have them ($__rate_interval a minute, $instance any).
    public static func dashboardExpressions() throws -> [String] {
        let data = try Data(contentsOf: directory.appendingPathComponent("grafana-dashboard.json"))
        guard let dashboard = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let panels = dashboard["panels"] as? [[String: Any]] else { throw Failure(description: "the dashboard has no panels") }
        return panels.flatMap { ($0["targets"] as? [[String: Any]]) ?? [] }.compactMap { $0["expr"] as? String }.map {
            $0.replacingOccurrences(of: "$__rate_interval", with: "1m").replacingOccurrences(of: "$instance", with: ".*")
        }
    }
}
