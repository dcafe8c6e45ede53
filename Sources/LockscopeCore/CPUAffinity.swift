import Glibc

/// The CPUs a thread may run on (sched_setaffinity, which this libc's Swift module does not import).
public enum CPUAffinity {
    /// Confines the calling thread, and every process it starts from now on (they inherit the mask), to `cpus`.
    public static func confineCurrentThread(to cpus: [Int]) throws {
        typealias SetAffinity = @convention(c) (pid_t, Int, UnsafeRawPointer) -> Int32
        guard let symbol = dlsym(nil, "sched_setaffinity") else { throw UserError("this libc has no sched_setaffinity") }
        var set = cpu_set_t()
        withUnsafeMutableBytes(of: &set) { bytes in
            for cpu in cpus where cpu >= 0 && cpu / 8 < bytes.count { bytes[cpu / 8] |= UInt8(1 << (cpu % 8)) }
        }
        guard unsafeBitCast(symbol, to: SetAffinity.self)(0, MemoryLayout<cpu_set_t>.size, &set) == 0 else {
            throw UserError("cannot confine a thread to CPUs \(cpus.map(String.init).joined(separator: ",")): \(String(cString: strerror(errno)))")
        }
    }
}
