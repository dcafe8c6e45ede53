/// Stack ids to symbolized frames, cached; tracing frames (the BPF program and tracepoint glue) dropped.
struct Symbolizer {
    let inputs: ProfileInputs
    private var cache: [Int32: [UInt64]] = [:]

    init(inputs: ProfileInputs) { self.inputs = inputs }

    private mutating func addresses(_ id: Int32) -> [UInt64] {
        if let cached = cache[id] { return cached }
        let raw = id < 0 ? [] : (inputs.stackAddresses(id) ?? [])
        // The stack starts inside the tracing machinery: the BPF program (JIT code, which may look like
        // part of a module) and the tracepoint glue (bpf_trace_run2...). The lock's slow path follows.
        let glue = raw.prefix(8).lastIndex { address in
            inputs.symbols?.function(at: address).map { Symbolizer.isTracingFrame($0.name) } ?? false
        }
        let kept = glue.map { Array(raw[($0 + 1)...]) } ?? raw
        cache[id] = kept
        return kept
    }

    /// Frame names, innermost first; `[unknown stack]` when the stack could not be read.
    mutating func frames(_ id: Int32) -> [String] {
        if id < 0 { return [ProfileBuilder.noStackFrame] }
        let addresses = addresses(id)
        if addresses.isEmpty { return ["[unknown stack]"] }
        return addresses.map { address in
            guard let symbol = inputs.symbols?.function(at: address) else { return "0x" + String(address, radix: 16) }
            return symbol.module.map { "\(symbol.name) [\($0)]" } ?? symbol.name
        }
    }

    /// The first frame outside lock primitives, as `func+0xoff` (how perf names a lock by its caller).
    mutating func caller(_ id: Int32) -> String? {
        guard let symbols = inputs.symbols else { return nil }
        for address in addresses(id) where !symbols.isLockText(address) {
            guard let symbol = symbols.function(at: address) else { continue }
            if !LockNamer.isLockPrimitive(symbol.name) { return symbol.nameWithOffset }
        }
        return nil
    }

    static func isTracingFrame(_ name: String) -> Bool {
        name.hasPrefix("bpf_") || name.hasPrefix("__bpf_") || name.hasPrefix("__traceiter_")
            || name.hasPrefix("trace_contention") || name.hasPrefix("__trace_") || name.hasPrefix("perf_trace")
    }
}
