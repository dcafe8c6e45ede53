import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
@testable import LockscopeAgent

/// The agent's server on a real loopback socket (no kernel needed): what each path answers as the
/// recorder's state changes, and /healthz's stall rule on an injected clock.
///
/// The server's blocking calls (made from the agent's own thread in `lockscope agent`) and the HTTP
/// requests run on threads of their own here: blocking the test's cooperative threads would starve the
/// server's tasks.
struct AgentServerTests {
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
        }
    }

    static func get(_ url: String) async throws -> (status: Int, contentType: String?, body: Data) {
        try await offPool { try blockingGet(url) }
    }

    static func blockingGet(_ url: String) throws -> (status: Int, contentType: String?, body: Data) {
        final class Box: @unchecked Sendable { var result: (Int, String?, Data)?; var error: (any Error)? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: URL(string: url)!) { data, response, error in
            if let response = response as? HTTPURLResponse {
                box.result = (response.statusCode, response.value(forHTTPHeaderField: "Content-Type"), data ?? Data())
            }
            box.error = error
            done.signal()
        }.resume()
        done.wait()
        guard let result = box.result else { throw box.error ?? URLError(.badServerResponse) }
        return result
    }

    @Test func eachPathAnswersFromTheState() async throws {
        let state = AgentState(metrics: AgentMetrics(version: "1.2.3"))
        let server = AgentServer(host: "127.0.0.1", port: 0, state: state)
        guard case .port(let port) = try await Self.offPool({ server.waitUntilListening() }) else {
            Issue.record("not listening")
            return
        }
        let base = "http://127.0.0.1:\(port)"

        let starting = try await Self.get(base + "/healthz")
        #expect(starting.status == 503)
        #expect(String(decoding: starting.body, as: UTF8.self).contains("not recording yet"))
        state.polled()
        #expect(try await Self.get(base + "/healthz").status == 200)
        #expect(try await Self.get(base + "/healthz").body == Data("ok\n".utf8))

        let metrics = try await Self.get(base + "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.contentType == AgentServer.metricsContentType)
        #expect(String(decoding: metrics.body, as: UTF8.self).contains(#"lockscope_build_info{version="1.2.3"} 1"#))

        for path in ["/debug/pprof/mutex", "/debug/pprof/block"] { #expect(try await Self.get(base + path).status == 503) }
        let body = Data([0x1f, 0x8b, 1, 2, 3])
        state.publish(pprof: body)
        for path in ["/debug/pprof/mutex", "/debug/pprof/block"] {
            let pprof = try await Self.get(base + path)
            #expect(pprof.status == 200)
            #expect(pprof.body == body)
            #expect(pprof.contentType == "application/octet-stream")
        }
        #expect(try await Self.get(base + "/").status == 404)
        #expect(try await Self.get(base + "/debug/pprof/heap").status == 404)

        state.failed("attach failed: no BTF")
        let failed = try await Self.get(base + "/healthz")
        #expect(failed.status == 503)
        #expect(failed.body == Data("attach failed: no BTF\n".utf8))
        try await Self.offPool { server.shutdown() }
        await #expect(throws: (any Error).self) { try await Self.get(base + "/healthz") }
    }

    @Test func aPollLoopQuietForMoreThanFiveSecondsIsUnhealthy() {
        let state = AgentState(metrics: AgentMetrics(version: "0"))
        #expect(state.unhealthy(atNs: 10) != nil)
        state.polled(atNs: 1_000_000_000)
        #expect(state.unhealthy(atNs: 1_000_000_000 + AgentState.stallLimitNs) == nil)
        let stalled = state.unhealthy(atNs: 1_000_000_001 + AgentState.stallLimitNs)
        #expect(stalled == "the poll loop has not run for 5000 ms")
    }

    @Test func aPortInUseIsSaidInOneLine() async throws {
        let state = AgentState(metrics: AgentMetrics(version: "0"))
        let first = AgentServer(host: "127.0.0.1", port: 0, state: state)
        guard case .port(let port) = try await Self.offPool({ first.waitUntilListening() }) else {
            Issue.record("not listening")
            return
        }
        let second = AgentServer(host: "127.0.0.1", port: port, state: state)
        #expect(try await Self.offPool { second.waitUntilListening() } == .failed("Address already in use"))
        try await Self.offPool { second.shutdown() }
        try await Self.offPool { first.shutdown() }
    }
}
