import CLockscopeBPF

/// How many kernel frames a stack keeps (`record --max-stack`, perf's --max-stack).
public enum StackDepth {
    /// The most (and the default): LOCKSCOPE_MAX_STACK_DEPTH.
    public static let maximum = Int(LOCKSCOPE_MAX_STACK_DEPTH)
    /// Frames of tracing glue the kernel's walk can start with (the BPF program, bpf_trace_run2,
    /// __traceiter_...), which the symbolizer drops.
    public static let tracingFrames = 8

    /// The frames the kernel must walk for `kept` frames after the tracing glue (its stack map's value
    /// size, which bounds the walk): `kept` plus the glue, at most `maximum`.
    public static func kernelFrames(keeping kept: Int) -> Int { min(kept + tracingFrames, maximum) }
}

/// Stack ids to symbolized frames, cached; tracing frames (the BPF program and tracepoint glue) dropped,
/// and at most `maxDepth` frames kept after them (`record --max-stack`).
struct Symbolizer {
    let stackAddresses: (Int32) -> [UInt64]?
    let symbols: Kallsyms?
    let maxDepth: Int
    private var cache: [Int32: [UInt64]] = [:]

    init(inputs: ProfileInputs) {
        self.init(stackAddresses: inputs.stackAddresses, symbols: inputs.symbols, maxDepth: inputs.maxStackDepth)
    }

    init(stackAddresses: @escaping (Int32) -> [UInt64]?, symbols: Kallsyms?, maxDepth: Int) {
        self.stackAddresses = stackAddresses
        self.symbols = symbols
        self.maxDepth = maxDepth
    }

    private mutating func addresses(_ id: Int32) -> [UInt64] {
        if let cached = cache[id] { return cached }
        let raw = id < 0 ? [] : (stackAddresses(id) ?? [])
        // The stack starts inside the tracing machinery: the BPF program (JIT code, which may look like
        // part of a module) and the tracepoint glue (bpf_trace_run2...). The lock's slow path follows.
        let glue = raw.prefix(StackDepth.tracingFrames).lastIndex { address in
            symbols?.function(at: address).map { Symbolizer.isTracingFrame($0.name) } ?? false
        }
        let kept = Array((glue.map { Array(raw[($0 + 1)...]) } ?? raw).prefix(maxDepth))
        cache[id] = kept
        return kept
    }

    /// Frame names, innermost first; `[unknown stack]` when the stack could not be read.
    mutating func frames(_ id: Int32) -> [String] {
        if id < 0 { return [ProfileBuilder.noStackFrame] }
        let addresses = addresses(id)
        if addresses.isEmpty { return [Self.unknownStackFrame] }
        return addresses.map { address in
            guard let symbol = symbols?.function(at: address) else { return "0x" + String(address, radix: 16) }
            return symbol.module.map { "\(symbol.name) [\($0)]" } ?? symbol.name
        }
    }

    /// The first frame outside lock primitives, as `func+0xoff` (how perf names a lock by its caller).
    mutating func caller(_ id: Int32) -> String? {
        guard let symbols else { return nil }
        for address in addresses(id) where !symbols.isLockText(address) {
            guard let symbol = symbols.function(at: address) else { continue }
            if !LockNamer.isLockPrimitive(symbol.name) { return symbol.nameWithOffset }
        }
        return nil
    }

    static let unknownStackFrame = "[unknown stack]"

    static func isTracingFrame(_ name: String) -> Bool {
        name.hasPrefix("bpf_") || name.hasPrefix("__bpf_") || name.hasPrefix("__traceiter_")
            || name.hasPrefix("trace_contention") || name.hasPrefix("__trace_") || name.hasPrefix("perf_trace")
    }
}
