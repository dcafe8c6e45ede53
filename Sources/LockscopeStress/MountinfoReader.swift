import CMountSyscalls
import Foundation
import Glibc

/// What the stress run tells one reader.
struct ReaderSpec: Codable, WorkerSpecifying {
    /// The absolute cgroup directory to join; nil for none.
    var cgroupDirectory: String?
    /// The stress run's process: the reader dies with it.
    var parentPID: Int32
}

/// What a reader prints back when its stdin closes: one JSON line.
struct ReaderReport: Codable, WorkerReporting {
    var latency = LatencyHistogram()
    var joinedCgroup: String?
    var error: String?
}

/// Read latencies in buckets 1/64 of a power of two wide (about 1.1 %), so that readers' histograms
/// add up and percentiles stay within a bucket of the exact ones.
struct LatencyHistogram: Codable, Equatable {
    private static let bucketsPerDoubling = 64.0
    /// Samples by bucket: bucket b holds durations d with floor(log2(d) × 64) = b.
    private(set) var counts: [Int: Int] = [:]
    private(set) var count = 0
    private(set) var maxNanoseconds: UInt64 = 0

    mutating func record(nanoseconds: UInt64) {
        counts[Self.bucket(of: nanoseconds), default: 0] += 1
        count += 1
        maxNanoseconds = max(maxNanoseconds, nanoseconds)
    }

    mutating func add(_ other: LatencyHistogram) {
        counts.merge(other.counts, uniquingKeysWith: +)
        count += other.count
        maxNanoseconds = max(maxNanoseconds, other.maxNanoseconds)
    }

    /// The nearest-rank percentile as its bucket's upper bound (never above the maximum); 0 when empty.
    func percentile(_ percent: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        let rank = max(1, Int((percent / 100 * Double(count)).rounded(.up)))
        var seen = 0
        for bucket in counts.keys.sorted() {
            seen += counts[bucket]!
            if seen >= rank {
                return min(maxNanoseconds, UInt64(exp2(Double(bucket + 1) / Self.bucketsPerDoubling).rounded(.up)))
            }
        }
        return maxNanoseconds
    }

    private static func bucket(of nanoseconds: UInt64) -> Int {
        nanoseconds == 0 ? 0 : Int((log2(Double(nanoseconds)) * bucketsPerDoubling).rounded(.down))
    }
}

/// `lockscope stress-worker --role reader`: reads /proc/self/mountinfo from start to end, again and
/// again, as systemd does after every mount change and kubelet and cadvisor do on their own, timing
/// each read, until its stdin closes.
public enum MountinfoReader {
    public static func run(encodedSpec: String) -> Int32 {
        let report = runWorker(encodedSpec: encodedSpec, report: ReaderReport()) { (spec: ReaderSpec, report) in
            if let cgroupDirectory = spec.cgroupDirectory {
                try writeText("\(getpid())\n", to: "\(cgroupDirectory)/cgroup.procs")
                report.joinedCgroup = try MountSteps.cgroup(in: "/proc/self/cgroup")
            }
            try readUntilStdinCloses(into: &report.latency)
        }
        return report.error == nil ? 0 : 1
    }

    private static func readUntilStdinCloses(into latency: inout LatencyHistogram) throws {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var stdin = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
        repeat {
            let start = ContinuousClock.now
            let fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw WorkerError.syscall("open /proc/self/mountinfo") }
            while true {
                let count = read(fd, &buffer, buffer.count)
                if count > 0 { continue }
                if count == -1, errno == EINTR { continue }
                if count == -1 { close(fd); throw WorkerError.syscall("read of /proc/self/mountinfo") }
                break
            }
            close(fd)
            latency.record(nanoseconds: UInt64((ContinuousClock.now - start) / .nanoseconds(1)))
            stdin.revents = 0
        } while poll(&stdin, 1, 0) == 0
    }
}
