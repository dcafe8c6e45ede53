/// How container ids are shown on screen and in flame-graph frames.
public enum ContainerName {
    /// A hex container id shortened to its first 12 characters, as `docker ps` shows it, and so the id of
    /// a pod's `pod:<sandbox id>` (`pod:5d0a7c3e9b1f`); other names (`host`, machine names, cgroup paths,
    /// `cgroup:<id>`) unchanged.
    public static func short(_ id: String) -> String {
        let podPrefix = "pod:"
        if id.hasPrefix(podPrefix) { return podPrefix + short(String(id.dropFirst(podPrefix.count))) }
        return id.count > 12 && id.allSatisfy(\.isHexDigit) ? String(id.prefix(12)) : id
    }
}
