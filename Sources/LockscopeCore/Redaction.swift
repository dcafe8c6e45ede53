import Crypto
import Foundation

/// Makes a profile shareable: every value that identifies a machine, a site or a person is replaced
/// by a pseudonym, and everything needed to read and compare the profile stays.
///
/// Pseudonyms are the first hex digits of HMAC-SHA256(key, kind NUL value), so the same value gets
/// the same pseudonym in every profile redacted with the same key (two redacted profiles still diff
/// lock by lock and container by container), and nobody without the key can recover a hostname by
/// hashing guesses. The default key is /etc/machine-id: stable per machine.
///
/// | what | becomes |
/// | --- | --- |
/// | hostname, and in a merged profile the hosts in `by_host` and in `host/...` keys | `host-1f3a9c` |
/// | kernel addresses (`0xffff888100a0b0c0`), in `address`, lock names, frames, `lock_addresses`, `--locks` | `addr-5e2b91c0`; `0x0` and `func+0x1c` offsets stay |
/// | container ids (docker, containerd, cri-o, podman, nspawn) | `ctr-8c1e44d2a9b0` (12 digits, as long as docker's short ids) |
/// | pod UIDs | `pod-3b9d0c17e2f4` |
/// | pod sandbox ids (`pod` of containers and mounts) | as container ids: a pod's sandbox is its pause container |
/// | `pod:<sandbox id>` containers and holders | `pod:ctr-acfeefc276e0`: the prefix kept, the id as in `pod` |
/// | cgroup paths | each component pseudonymized (`cg-77a0e3.service`), keeping the runtime's structure: `kubepods.slice`, `docker-ctr-8c1e44d2a9b0.scope`, `kubepods-besteffort-pod-3b9d0c17e2f4.slice` |
/// | `cgroup:<id>` containers | `cgroup:cg-41d2aa` |
/// | process names, in `by_process`, `owners`, victims and their holders, thread names in `threads` | `proc-2c4e6a`, except container runtimes and kernel threads (``knownPrograms``) |
/// | lock names in victims' and container starts' `by_lock` | as lock names: addresses pseudonymized |
/// | the recorded command | one pseudonym for the whole command line, `cmd-9f0e1d` |
///
/// Kept: lock and function names (symbolized frames, `func+0xa1` callers), the kernel release, the
/// start time, every count and duration, CPU topology, pids (they identify nothing outside the
/// recording, and tie `by_process`, `owners` and `--pid` together), and the names `host`, `unknown`,
/// `[other containers]`, `[other processes]`.
public struct Redactor: Sendable {
    /// The key used when none is given: one per machine, so redactions on one machine agree.
    public static let defaultKeyFile = "/etc/machine-id"

    /// Program names that say which software ran, not whose: container runtimes, the mount tools and
    /// lockscope itself. Kernel threads (``kernelThreadPrefixes``) stay too.
    public static let knownPrograms: Set<String> = [
        "containerd", "containerd-shim", "runc", "runc:[0:PARENT]", "runc:[1:CHILD]", "runc:[2:INIT]", "crun",
        "conmon", "crio", "dockerd", "podman", "kubelet", "systemd", "mount", "umount", "lockscope",
    ]
    public static let kernelThreadPrefixes = ["kworker/", "ksoftirqd/", "migration/", "cpuhp/", "rcu_", "kthreadd", "kswapd",
                                              "kcompactd", "khugepaged", "swapper/"]

    /// cgroup path components that only say how the hierarchy is laid out.
    static let structuralCgroups: Set<String> = [
        "kubepods.slice", "kubepods", "kubepods-besteffort.slice", "kubepods-burstable.slice", "besteffort", "burstable",
        "system.slice", "user.slice", "machine.slice", "init.scope", "docker",
    ]
    /// Names that identify nothing, kept wherever a container id or process name goes.
    static let neutralNames: Set<String> = [
        "host", "unknown", "?", Aggregator.otherContainersKey, Aggregator.otherProcessesKey, ThreadStats.otherThreads,
    ]
    /// systemd unit suffixes, kept on a pseudonymized cgroup component.
    static let unitSuffixes = [".slice", ".scope", ".service", ".mount", ".socket"]
    /// The prefix of a container named after a pod's sandbox id (`MountAttribution`'s issuer containers).
    static let podPrefix = "pod:"
    /// Prefixes of a container's own cgroup, before its 64-hex id (systemd and cgroupfs drivers).
    static let scopePrefixes = ["docker-", "cri-containerd-", "crio-", "crio-conmon-", "libpod-", "libpod-conmon-"]

    /// The HMAC key's bytes (SymmetricKey is not Sendable).
    private let key: Data

    /// Pseudonyms keyed with `key` (any non-empty bytes).
    public init(key: Data) {
        self.key = key
    }

    /// Pseudonyms keyed with the bytes of `keyFile`, as they are.
    public init(keyFile: String = Redactor.defaultKeyFile) throws {
        guard let data = FileManager.default.contents(atPath: keyFile) else {
            throw UserError("cannot read the redaction key \(keyFile): \(String(cString: strerror(errno))); pass --key-file FILE with a readable secret")
        }
        guard !data.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x09 || $0 == 0x0d }) else {
            throw UserError("the redaction key \(keyFile) is empty: put a secret in it (head -c 32 /dev/urandom > \(keyFile))")
        }
        self.init(key: data)
    }

    /// `profile` with every identifying value replaced by its pseudonym, marked `redacted`.
    public func redact(_ profile: Profile) -> Profile {
        var redacted = profile
        redacted.hostname = hostname(profile.hostname)
        // A merge (`lockscope merge`) prefixes per-host keys and victims with the hostname: `node-a/3`.
        let merged = profile.locks.contains { $0.byHost != nil }
        redacted.recording = redact(profile.recording)
        redacted.containers = profile.containers.map { container in
            var container = container
            container.id = containerID(container.id)
            container.podUid = container.podUid.map(podUID)
            container.cgroup = cgroupPath(container.cgroup)
            container.pod = container.pod.map(containerID)
            return container
        }
        redacted.mounts = profile.mounts.map { mounts in
            var mounts = mounts
            mounts.byContainer = mounts.byContainer.map { container in
                var container = container
                container.id = containerID(container.id)
                container.pod = container.pod.map(containerID)
                if var start = container.start {
                    start.byLock = start.byLock.map(redact)
                    container.start = start
                }
                return container
            }
            return mounts
        }
        redacted.locks = profile.locks.map(redact)
        redacted.victims = profile.victims?.map { victim in
            var victim = victim
            victim.process = merged ? hostPrefixed(victim.process, processKey) : processKey(victim.process)
            victim.container = containerID(victim.container)
            victim.byLock = victim.byLock.map(redact)
            victim.holders = victim.holders.map { holder in
                var holder = holder
                holder.process = merged ? hostPrefixed(holder.process, processKey) : processKey(holder.process)
                holder.container = containerID(holder.container)
                return holder
            }
            return victim
        }
        redacted.cpuSamples = profile.cpuSamples.map(redactSamples)
        redacted.threads = profile.threads?.map { thread in
            var thread = thread
            thread.comm = programName(thread.comm)
            return thread
        }
        return redacted
    }

    private func redact(_ share: LockWaitShare) -> LockWaitShare {
        var share = share
        share.lock = addresses(in: share.lock)
        return share
    }

    private func redact(_ recording: Recording) -> Recording {
        var recording = recording
        recording.locks = addresses(in: recording.locks)
        recording.lockAddresses = recording.lockAddresses.map(addresses)
        recording.containers = recording.containers.map(containerID)
        recording.command = recording.command.isEmpty
            ? [] : ["cmd-" + pseudonym("command", recording.command.joined(separator: "\0"), digits: 6)]
        recording.redacted = true
        return recording
    }

    private func redact(_ lock: LockProfile) -> LockProfile {
        var lock = lock
        lock.name = addresses(in: lock.name)
        lock.address = addresses(in: lock.address)
        lock.stacks = lock.stacks.map { stack in
            var stack = stack
            stack.frames = stack.frames.map(addresses)
            stack.userFrames = stack.userFrames?.map(addresses)
            stack.contexts = stack.contexts.map { context in
                var context = context
                context.container = containerID(context.container)
                return context
            }
            return stack
        }
        lock.byContainer = lock.byContainer.map { KeyedStats(key: containerID($0.key), stats: $0.stats) }
        if let byHost = lock.byHost {
            lock.byHost = byHost.map { KeyedStats(key: hostname($0.key), stats: $0.stats) }
            func prefixed(_ slices: [KeyedStats], _ rest: (String) -> String) -> [KeyedStats] {
                slices.map { KeyedStats(key: hostPrefixed($0.key, rest), stats: $0.stats) }
            }
            lock.byCpu = prefixed(lock.byCpu) { $0 }
            lock.bySocket = prefixed(lock.bySocket) { $0 }
            lock.byNode = prefixed(lock.byNode) { $0 }
            lock.byLlc = prefixed(lock.byLlc) { $0 }
            lock.byProcess = prefixed(lock.byProcess, processKey)
        } else {
            lock.byProcess = lock.byProcess.map { KeyedStats(key: processKey($0.key), stats: $0.stats) }
        }
        lock.owners = lock.owners?.map { owner in
            var owner = owner
            owner.waiterContainer = containerID(owner.waiterContainer)
            owner.ownerContainer = containerID(owner.ownerContainer)
            owner.ownerComm = programName(owner.ownerComm)
            return owner
        }
        lock.spin = lock.spin.map(redactSpin)
        lock.byAddress = lock.byAddress?.map { instance in
            var instance = instance
            instance.address = addresses(in: instance.address)
            instance.symbol = instance.symbol.map(addresses)
            return instance
        }
        return lock
    }

    // MARK: Pseudonyms

    /// `text` with every hex number that is not an offset (`+0x1c`) or zero replaced by `addr-` and
    /// 8 hex digits of its value: `0xffff888100a0b0c0.wait_lock` → `addr-5e2b91c0.wait_lock`.
    func addresses(in text: String) -> String {
        guard text.contains("0x") else { return text }
        var result = ""
        var rest = Substring(text)
        while let start = rest.range(of: "0x") {
            let before = rest[..<start.lowerBound]
            let digits = rest[start.upperBound...].prefix { $0.isHexDigit }
            let previous = before.last ?? result.last
            let isNumber = !digits.isEmpty && !(previous.map { $0 == "+" || $0 == "_" || $0.isLetter || $0.isNumber } ?? false)
            result += before
            if isNumber, let value = UInt64(digits, radix: 16), value != 0 {
                result += "addr-" + pseudonym("address", String(value, radix: 16), digits: 8)
            } else {
                result += "0x" + digits
            }
            rest = rest[digits.endIndex...]
        }
        return result + rest
    }

    /// A container id's pseudonym: `ctr-` and 12 hex digits; a cgroup path (a cgroup that is not a
    /// container) pseudonymized like every cgroup path; `cgroup:<id>` as `cgroup:cg-` and 6 digits;
    /// `pod:<sandbox id>` (a shim's pod) as `pod:` and the sandbox id's pseudonym, the one the `pod`
    /// of its containers gets.
    func containerID(_ id: String) -> String {
        if Self.neutralNames.contains(id) { return id }
        if id.hasPrefix(Self.podPrefix) { return Self.podPrefix + containerID(String(id.dropFirst(Self.podPrefix.count))) }
        if id.hasPrefix("/") { return cgroupPath(id) }
        if id.hasPrefix("cgroup:") { return "cgroup:cg-" + pseudonym("cgroup id", String(id.dropFirst("cgroup:".count)), digits: 6) }
        return "ctr-" + pseudonym("container", id, digits: 12)
    }

    /// `host-` and 6 hex digits.
    func hostname(_ name: String) -> String {
        "host-" + pseudonym("hostname", name, digits: 6)
    }

    /// A merged profile's `host/rest` key with the host pseudonymized and `rest` passed through `redactRest`.
    func hostPrefixed(_ key: String, _ redactRest: (String) -> String) -> String {
        guard let slash = key.firstIndex(of: "/") else { return redactRest(key) }
        return hostname(String(key[..<slash])) + "/" + redactRest(String(key[key.index(after: slash)...]))
    }

    /// `pod-` and 12 hex digits.
    func podUID(_ uid: String) -> String {
        "pod-" + pseudonym("pod", uid.lowercased(), digits: 12)
    }

    /// Each component of a cgroup path pseudonymized; the runtime's structure, and the pseudonyms of
    /// the container ids and pod UIDs it holds, kept: `/system.slice/docker-<id>.scope` →
    /// `/system.slice/docker-ctr-8c1e44d2a9b0.scope`.
    func cgroupPath(_ path: String) -> String {
        guard path.hasPrefix("/") else { return path.isEmpty ? path : cgroupComponent(path) }
        return "/" + path.split(separator: "/").map { cgroupComponent(String($0)) }.joined(separator: "/")
    }

    private func cgroupComponent(_ component: String) -> String {
        if Self.structuralCgroups.contains(component) { return component }
        let suffix = Self.unitSuffixes.first { component.hasSuffix($0) } ?? ""
        let stem = String(component.dropLast(suffix.count))
        if ContainerIdentity.isContainerID(stem) { return containerID(stem) + suffix }
        for prefix in Self.scopePrefixes where stem.hasPrefix(prefix) && ContainerIdentity.isContainerID(String(stem.dropFirst(prefix.count))) {
            return prefix + containerID(String(stem.dropFirst(prefix.count))) + suffix
        }
        // systemd driver: kubepods[-<qos>]-pod<uid with _>.slice; cgroupfs driver: pod<uid>.
        if suffix == ".slice", stem.hasPrefix("kubepods"), let pod = stem.range(of: "-pod", options: .backwards) {
            let uid = stem[pod.upperBound...].replacingOccurrences(of: "_", with: "-")
            if isPodUID(uid) { return stem[..<pod.lowerBound] + "-" + podUID(uid) + suffix }
        }
        if suffix.isEmpty, stem.hasPrefix("pod"), isPodUID(String(stem.dropFirst("pod".count))) {
            return podUID(String(stem.dropFirst("pod".count)))
        }
        // systemd-nspawn: machine-<escaped name>.scope, the container id being the unescaped name.
        if suffix == ".scope", stem.hasPrefix("machine-") {
            return "machine-" + containerID(ContainerIdentity.unescapeSystemdName(String(stem.dropFirst("machine-".count)))) + suffix
        }
        return "cg-" + pseudonym("cgroup", stem, digits: 6) + suffix
    }

    /// A `by_process` key: `comm[pid]` (or an older profile's `pid command line`) with the program
    /// pseudonymized and the pid kept.
    func processKey(_ key: String) -> String {
        if let match = key.wholeMatch(of: /(.+)\[([0-9]+)\]/) {
            return "\(programName(String(match.1)))[\(match.2)]"
        }
        if let match = key.wholeMatch(of: /([0-9]+) (.+)/) {
            return "\(match.1) \(programName(String(match.2)))"
        }
        return programName(key)
    }

    /// A process name kept if it is a known program or a kernel thread, else `proc-` and 6 hex digits
    /// (a name with arguments, `sh -c "mount, umount"`, is never kept).
    func programName(_ name: String) -> String {
        if Self.neutralNames.contains(name) || Self.knownPrograms.contains(name)
            || Self.kernelThreadPrefixes.contains(where: name.hasPrefix) && !name.contains(" ") {
            return name
        }
        return "proc-" + pseudonym("process", name, digits: 6)
    }

    /// The first `digits` hex digits of HMAC-SHA256(key, kind NUL value).
    private func pseudonym(_ kind: String, _ value: String, digits: Int) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Data("\(kind)\0\(value)".utf8), using: SymmetricKey(data: key))
        let hex = code.map { String(format: "%02x", $0) }.joined()
        return String(hex.prefix(digits))
    }

    private func isPodUID(_ text: String) -> Bool {
        !text.isEmpty && text.contains("-") && text.allSatisfy { $0 == "-" || $0.isHexDigit }
    }
}
