import Foundation
import LockscopeKernel

/// Start-up: from starting the real `lockscope record` to its "lockscope: attached" line on stderr.
struct AttachTimes: Codable {
    var medianMs: Double
    var samplesMs: [Double]

    /// Runs `lockscope record --quiet --no-report` `runs` times, stopping each with SIGINT once attached.
    static func measure(lockscope: String, runs: Int) throws -> AttachTimes {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-bench-attach-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var samples: [Double] = []
        for _ in 0..<runs {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: lockscope)
            process.arguments = ["record", "--quiet", "--no-report", "-o", directory.appendingPathComponent("attach.json").path]
            let stderr = Pipe()
            process.standardError = stderr
            process.standardOutput = FileHandle.nullDevice
            let start = monotonicNs()
            try process.run()
            var text = ""
            while !text.contains("lockscope: attached") {
                let data = stderr.fileHandleForReading.availableData
                if data.isEmpty { break }
                text += String(decoding: data, as: UTF8.self)
            }
            let attachedNs = monotonicNs() - start
            process.interrupt()
            _ = stderr.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard text.contains("lockscope: attached"), process.terminationStatus == 0 else {
                throw BenchError("`\(lockscope) record` did not attach (status \(process.terminationStatus)): \(text)")
            }
            samples.append(Double(attachedNs) / 1e6)
        }
        return AttachTimes(medianMs: median(samples), samplesMs: samples)
    }
}

/// The middle value (the mean of the two middle ones for an even count); 0 for none.
func median(_ values: [Double]) -> Double { percentile(values, 50) }

/// The value `rank` percent of the way through `values` sorted, interpolating between neighbours; 0 for none.
func percentile(_ values: [Double], _ rank: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let position = Double(sorted.count - 1) * rank / 100
    let lower = Int(position.rounded(.down))
    let upper = min(lower + 1, sorted.count - 1)
    return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
}
