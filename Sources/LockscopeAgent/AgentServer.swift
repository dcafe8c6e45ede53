import Foundation
import Synchronization
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The agent's HTTP server (Hummingbird): `/metrics`, `/debug/pprof/mutex` and `/debug/pprof/block`,
/// `/healthz`; anything else is 404. It runs until `shutdown()`; it installs no signal handler (the
/// agent's own handles SIGTERM and SIGINT, and stops the server once the last window is written).
public final class AgentServer: Sendable {
    /// Prometheus's text exposition format (swift-prometheus writes this one, not OpenMetrics).
    public static let metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

    private let group: ServiceGroup
    /// The port listened on, or why the server could not listen.
    public enum Listening: Sendable, Equatable {
        case port(Int)
        case failed(String)
    }

    /// Shared with the server's callbacks, which run on its own threads.
    private final class Outcome: Sendable {
        let listening = Mutex<Listening?>(nil)
    }

    private let bound = Outcome()
    private let done = DispatchSemaphore(value: 0)
    private let ready = DispatchSemaphore(value: 0)

    /// Starts listening on `host:port` in the background; `waitUntilListening` says on which port, or why not.
    public init(host: String, port: Int, state: AgentState) {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: Self.metricsContentType],
                     body: ResponseBody(byteBuffer: ByteBuffer(bytes: state.metrics.render())))
        }
        let pprof: @Sendable (Request, BasicRequestContext) -> Response = { _, _ in
            guard let body = state.pprof else {
                return Response(status: .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: ResponseBody(byteBuffer: ByteBuffer(string: "no window has finished yet\n")))
            }
            // As Go's net/http/pprof serves a profile.
            return Response(status: .ok, headers: [.contentType: "application/octet-stream",
                                                   .contentDisposition: "attachment; filename=\"profile\""],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/debug/pprof/mutex", use: pprof)
        router.get("/debug/pprof/block", use: pprof)
        router.get("/healthz") { _, _ -> Response in
            let (status, text) = state.unhealthy().map { (HTTPResponse.Status.serviceUnavailable, $0) } ?? (.ok, "ok")
            return Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: text + "\n")))
        }
        var logger = Logger(label: "lockscope.agent")
        logger.logLevel = .critical
        let bound = self.bound
        let ready = self.ready
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: nil, reuseAddress: false),
            onServerRunning: { channel in
                bound.listening.withLock { $0 = .port(channel.localAddress?.port ?? port) }
                ready.signal()
            },
            logger: logger)
        group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let group = self.group
        let done = self.done
        Task {
            do { try await group.run() } catch {
                let reason = Self.describe(error)
                bound.listening.withLock { if $0 == nil { $0 = .failed(reason) } }
            }
            ready.signal()
            done.signal()
        }
    }

    /// Blocks until the server listens (its port) or has failed to (the error).
    public func waitUntilListening() -> Listening {
        ready.wait()
        return bound.listening.withLock { $0 } ?? .failed("the server stopped before it listened")
    }

    /// A bind error as one line ("Address already in use" rather than NIO's whole description).
    static func describe(_ error: any Error) -> String {
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        return "\(error)"
    }

    /// Closes the server (connections finish what they are sending) and waits until it has stopped.
    public func shutdown() {
        let group = self.group
        Task { await group.triggerGracefulShutdown() }
        done.wait()
    }
}
