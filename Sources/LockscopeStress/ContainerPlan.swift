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

    /// Names the container the way `style`'s runtime would, under the run's cgroup `parent`.
    init(index: Int, round: Int, style: CgroupStyle, parent: String?) {
        self.index = index
        self.round = round
        id = Self.randomHex(bytes: 32)
        switch (style, parent) {
        case (.docker, let parent?):
            runtime = "docker"
            cgroup = "\(parent)/docker-\(id).scope"
        case (.kubepods, let parent?):
            let podUID = UUID().uuidString.lowercased()
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
