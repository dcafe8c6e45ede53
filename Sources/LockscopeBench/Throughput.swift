import Foundation
import LockscopeKernel

/// One producer rate held for a few seconds against one consumer.
struct Step: Codable {
    /// The producer's target in events/s; nil: as fast as it can.
    var targetPerSec: Double?
    var producedPerSec: Double
    var produced: UInt64
    var consumed: UInt64
    var lost: UInt64
    /// Share of one CPU the consumer thread used (until it had drained everything), and its CPU time
    /// per consumed event.
    var consumerCPUShare: Double
    var consumerNsPerEvent: Double

    var dropped: Bool { lost > 0 }
    /// Every produced event was either consumed or counted as lost.
    var accountingExact: Bool { produced == consumed + lost }
}

/// Where a consumer starts dropping, found by raising the producer's rate.
struct RateSearch: Codable {
    /// The fastest step without a drop (its achieved rate), and the slowest with one (its target), if any.
    var sustainedPerSec: Double
    var dropOnsetPerSec: Double?
    /// What the consumer's CPU time per event allows when it is never idle: 1e9 / the median ns per
    /// event of the steps where it could not keep up.
    var capacityPerSec: Double
    var steps: [Step]
}

/// The collector flat out on a smaller key space: one step with the producer as fast as it can go,
/// after a warm-up step that has every key seen.
struct KeySpaceRate: Codable {
    /// The container counts measured besides the default key space's (same locks and CPUs).
    static let containerCounts = [1, 8, 32]

    var keySpace: KeySpace
    var flatOut: Step
}

/// Runs the synthetic producer on one CPU against a consumer on another, at controlled rates.
final class ThroughputBench {
    let source: SyntheticSource
    let emitter: Emitter
    let producerCPU: Int
    let stepNs: UInt64
    private var sequence: UInt64 = 0

    init(source: SyntheticSource, keys: KeySpace, producerCPU: Int, stepSeconds: Double) {
        self.source = source
        emitter = source.emitter(keys: keys)
        self.producerCPU = producerCPU
        stepNs = UInt64(stepSeconds * 1e9)
    }

    /// Holds `rate` (flat out when nil) for one step while `consumer` drains on the calling thread.
    func step(_ consumer: RingConsumer, rate: Double?) throws -> Step {
        _ = consumer.drain()
        let before = source.counts()
        let run = ProducerRun(rate: rate, durationNs: stepNs)
        let cpuBefore = threadCPUTimeNs()
        let wallBefore = monotonicNs()
        run.start(emitter: emitter, cpu: producerCPU, firstSequence: sequence)
        var consumed = 0
        while !run.isFinished { consumed += consumer.poll(timeoutMs: 100) }
        consumed += consumer.drain()
        let cpuNs = Double(threadCPUTimeNs() - cpuBefore)
        let wallNs = Double(monotonicNs() - wallBefore)
        if let error = run.error { throw BenchError("the synthetic producer failed: \(error)") }
        sequence += run.emitted
        let after = source.counts()
        let elapsed = Double(run.elapsedNs)
        return Step(targetPerSec: rate, producedPerSec: Double(after.produced - before.produced) / elapsed * 1e9,
                    produced: after.produced - before.produced, consumed: UInt64(consumed),
                    lost: after.lost - before.lost, consumerCPUShare: cpuNs / wallNs,
                    consumerNsPerEvent: consumed > 0 ? cpuNs / Double(consumed) : 0)
    }

    /// First a flat-out step; if `consumer` keeps up, that is its sustained rate. Otherwise raises the
    /// rate from `start` (or from just under the consumer's flat-out capacity, if lower) by `factor`,
    /// or lowers it if that already drops, to bracket the drop onset, then bisects. A drop must repeat
    /// to count: one can come from another process taking the consumer's CPU for a moment.
    func findDropOnset(_ consumer: RingConsumer, start: Double, factor: Double = 1.25, bisections: Int = 3,
                       progress: (Step) -> Void) throws -> RateSearch {
        var steps: [Step] = []
        var confirmedDropRates: [Double] = []
        func run(_ rate: Double?) throws -> Step {
            var result = try step(consumer, rate: rate)
            progress(result)
            steps.append(result)
            if result.dropped, let rate {
                result = try step(consumer, rate: rate)
                progress(result)
                steps.append(result)
                if result.dropped { confirmedDropRates.append(rate) }
            }
            return result
        }
        func search(_ flatOut: Step) -> RateSearch {
            let onset = confirmedDropRates.min()
            let clean = steps.filter { !$0.dropped && ($0.targetPerSec ?? .infinity) < (onset ?? .infinity) }
                .max { $0.producedPerSec < $1.producedPerSec }
            // The consumer is saturated in the steps that dropped; without any, every step tells.
            let saturated = steps.filter { $0.dropped && $0.consumed > 0 }
            let nsPerEvent = median((saturated.isEmpty ? steps : saturated).map(\.consumerNsPerEvent))
            return RateSearch(sustainedPerSec: flatOut.dropped ? clean?.producedPerSec ?? 0 : flatOut.producedPerSec,
                              dropOnsetPerSec: flatOut.dropped ? onset ?? flatOut.producedPerSec : nil,
                              capacityPerSec: nsPerEvent > 0 ? 1e9 / nsPerEvent : 0, steps: steps)
        }

        let flatOut = try run(nil)
        guard flatOut.dropped else { return search(flatOut) }
        var low: Double?
        var high = flatOut.producedPerSec
        // Flat out, the consumer never idles: its CPU time per event says roughly where drops begin.
        let capacity = flatOut.consumerNsPerEvent > 0 ? 1e9 / flatOut.consumerNsPerEvent : high
        var rate = min(start, high / factor, capacity * 0.9)
        while rate > 10_000, rate < high {
            if try run(rate).dropped {
                high = rate
                if low != nil { break }
                rate /= factor
            } else {
                low = rate
                rate *= factor
            }
        }
        if var low {
            for _ in 0..<bisections {
                let middle = (low + high) / 2
                if try run(middle).dropped { high = middle } else { low = middle }
            }
        }
        return search(flatOut)
    }
}
