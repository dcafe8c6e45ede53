/// Maps cgroup ids to container ids once each, and remembers each container's details.
struct ContainerTable {
    let resolve: (UInt64) -> Container
    private var idsByCgroup: [UInt64: String] = [:]
    private var containers: [String: Container] = [:]

    init(resolve: @escaping (UInt64) -> Container) { self.resolve = resolve }

    mutating func id(_ cgroupID: UInt64) -> String {
        if cgroupID == Aggregator.otherCgroups { return Aggregator.otherContainersKey }
        if let id = idsByCgroup[cgroupID] { return id }
        let container = resolve(cgroupID)
        idsByCgroup[cgroupID] = container.id
        if containers[container.id] == nil { containers[container.id] = container }
        return container.id
    }

    func container(id: String) -> Container {
        containers[id] ?? Container(id: id, runtime: "unknown", podUid: nil, cgroup: "")
    }
}
