import Foundation

/// One container to start: its identity and where its cgroup goes.
struct ContainerPlan {
    var index: Int
    var round: Int
    var id: String
    var runtime: String?
    var podUID: String?
    /// The cgroup path relative to the cgroup2 root, starting with "/"; nil for no cgroup.
    var cgroup: String?

    /// Names the container the way `style`'s runtime would, under the run's cgroup `parent`; in the
    /// kubepods style it belongs to the pod `podUID` (a new pod if nil).
    init(index: Int, round: Int, style: CgroupStyle, parent: String?, podUID: String? = nil) {
        self.index = index
        self.round = round
        id = Self.randomHex(bytes: 32)
        switch (style, parent) {
        case (.docker, let parent?):
            runtime = "docker"
            cgroup = "\(parent)/docker-\(id).scope"
        case (.kubepods, let parent?):
            let podUID = podUID ?? UUID().uuidString.lowercased()
            let podSlice = "kubepods-besteffort-pod\(podUID.replacingOccurrences(of: "-", with: "_")).slice"
            runtime = "containerd"
            self.podUID = podUID
            cgroup = "\(parent)/kubepods.slice/kubepods-besteffort.slice/\(podSlice)/cri-containerd-\(id).scope"
        default:
            break
        }
    }

    /// `bytes` random bytes (a multiple of 4) as lowercase hex.
    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes / 4).map { _ in String(format: "%08x", UInt32.random(in: .min ... .max, using: &generator)) }.joined()
    }
}

/// One pod of `--runtime containerd`: its containers, all served by one shim.
struct PodPlan {
    var index: Int
    var podUID: String
    var containers: [ContainerPlan]

    /// Pod `index` of round `round`, holding the containers `containerIndices`, in kubepods cgroups under `parent`.
    init(index: Int, round: Int, containerIndices: Range<Int>, parent: String?) {
        self.index = index
        let podUID = UUID().uuidString.lowercased()
        self.podUID = podUID
        containers = containerIndices.map { ContainerPlan(index: $0, round: round, style: .kubepods, parent: parent, podUID: podUID) }
    }
}
