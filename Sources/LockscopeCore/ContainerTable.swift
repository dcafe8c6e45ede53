/// Maps cgroup ids to container ids once each, and remembers each container's details. Ids handed out
/// by `MountAttribution` name the containers it tied waits to (`attributed`, in its order).
struct ContainerTable {
    let resolve: (UInt64) -> Container
    var attributed: [Container] = []
    private var idsByCgroup: [UInt64: String] = [:]
    private var containers: [String: Container] = [:]

    init(resolve: @escaping (UInt64) -> Container) { self.resolve = resolve }

    mutating func id(_ cgroupID: UInt64) -> String {
        if cgroupID == Aggregator.otherCgroups { return Aggregator.otherContainersKey }
        if let id = idsByCgroup[cgroupID] { return id }
        let container: Container
        if MountAttribution.isAttributed(cgroupID), cgroupID - MountAttribution.firstContainerID < UInt64(attributed.count) {
            container = attributed[Int(cgroupID - MountAttribution.firstContainerID)]
        } else {
            container = resolve(cgroupID)
        }
        idsByCgroup[cgroupID] = container.id
        if var known = containers[container.id] {
            // A container tied by its mount paths whose own processes waited too (seen by cgroup): one
            // container, with its cgroup's details and the pod and way its mounts were tied.
            if known.cgroup.isEmpty { known.cgroup = container.cgroup }
            known.podUid = known.podUid ?? container.podUid
            known.pod = known.pod ?? container.pod
            if known.runtime == "unknown" { known.runtime = container.runtime }
            if container.attribution != .cgroup { known.attribution = container.attribution }
            containers[container.id] = known
        } else {
            containers[container.id] = container
        }
        return container.id
    }

    func container(id: String) -> Container {
        containers[id] ?? Container(id: id, runtime: "unknown", podUid: nil, cgroup: "")
    }
}
