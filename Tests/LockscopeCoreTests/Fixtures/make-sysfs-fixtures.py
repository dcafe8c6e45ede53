#!/usr/bin/env python3
"""Generate the sysfs topology fixtures under Fixtures/sysfs/ (deterministic).

    ./make-sysfs-fixtures.py                 # regenerate dual-socket-96 and chiplet-1s
    ./make-sysfs-fixtures.py --copy-live vm-2cpu   # copy this machine's /sys files as host vm-2cpu

Only the files Topology.read(sysfsRoot:) looks at are written: cpu/online, per CPU
topology/{core_id,physical_package_id,die_id,thread_siblings_list}, cache/indexK/{level,type,
shared_cpu_list}, the cpuN/nodeM link, and node/nodeM/cpulist.
"""
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SYSFS = os.path.join(HERE, "sysfs")
TOPOLOGY_FILES = ["core_id", "physical_package_id", "die_id", "thread_siblings_list"]
CACHE_FILES = ["level", "type", "shared_cpu_list"]


def cpu_list(cpus):
    """Format CPU ids the way the kernel does: ascending, ranges joined with '-'."""
    cpus = sorted(set(cpus))
    parts, start = [], 0
    for i in range(1, len(cpus) + 1):
        if i == len(cpus) or cpus[i] != cpus[i - 1] + 1:
            first, last = cpus[start], cpus[i - 1]
            parts.append(str(first) if first == last else f"{first}-{last}")
            start = i
    return ",".join(parts)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text + "\n")


def make_host(name, cpus, node_links):
    """cpus: {id: dict(core, socket, node, siblings, caches=[(level, type, shared)])}."""
    root = os.path.join(SYSFS, name)
    shutil.rmtree(root, ignore_errors=True)
    cpu_dir = os.path.join(root, "devices/system/cpu")
    write(os.path.join(cpu_dir, "online"), cpu_list(cpus))
    for cpu, info in sorted(cpus.items()):
        topology = os.path.join(cpu_dir, f"cpu{cpu}", "topology")
        write(os.path.join(topology, "core_id"), str(info["core"]))
        write(os.path.join(topology, "physical_package_id"), str(info["socket"]))
        write(os.path.join(topology, "die_id"), "0")
        write(os.path.join(topology, "thread_siblings_list"), cpu_list(info["siblings"]))
        for index, (level, kind, shared) in enumerate(info["caches"]):
            cache = os.path.join(cpu_dir, f"cpu{cpu}", "cache", f"index{index}")
            write(os.path.join(cache, "level"), str(level))
            write(os.path.join(cache, "type"), kind)
            write(os.path.join(cache, "shared_cpu_list"), cpu_list(shared))
        if node_links:
            os.symlink(f"../../node/node{info['node']}", os.path.join(cpu_dir, f"cpu{cpu}", f"node{info['node']}"))
    for node in sorted({info["node"] for info in cpus.values()}):
        members = [cpu for cpu, info in cpus.items() if info["node"] == node]
        write(os.path.join(root, f"devices/system/node/node{node}/cpulist"), cpu_list(members))


def smt_host(sockets, cores_per_socket, cores_per_llc):
    """Numbered like Intel and AMD hosts: CPU c < cores is core c's first thread, c + cores its
    SMT sibling; cores are numbered socket by socket; one NUMA node per socket. Caches: a per-core
    L2 and the L3 (L1 is left out: only the highest level matters)."""
    cores = sockets * cores_per_socket
    cpus = {}
    for cpu in range(2 * cores):
        core = cpu % cores
        pair = [core, core + cores]
        llc = [c for c in range(2 * cores) if (c % cores) // cores_per_llc == core // cores_per_llc]
        cpus[cpu] = dict(core=core % cores_per_socket, socket=core // cores_per_socket,
                         node=core // cores_per_socket, siblings=pair,
                         caches=[(2, "Unified", pair), (3, "Unified", llc)])
    return cpus


def dual_socket_96():
    """Intel-style 2 sockets x 24 cores x 2 threads: 0-23 socket 0, 24-47 socket 1, 48-95 their
    SMT siblings; one NUMA node and one L3 per socket."""
    return smt_host(sockets=2, cores_per_socket=24, cores_per_llc=24)


def chiplet_1s():
    """AMD EPYC-style 1 socket x 32 cores x 2 threads (siblings N and N+32), one NUMA node,
    four L3 domains (CCXs) of 8 cores each."""
    return smt_host(sockets=1, cores_per_socket=32, cores_per_llc=8)


def copy_live(name, source="/sys"):
    root = os.path.join(SYSFS, name)
    shutil.rmtree(root, ignore_errors=True)

    def copy(relative):
        src = os.path.join(source, relative)
        if os.path.islink(src):
            os.makedirs(os.path.dirname(os.path.join(root, relative)), exist_ok=True)
            os.symlink(os.readlink(src), os.path.join(root, relative))
        elif os.path.isfile(src):
            with open(src) as f:
                write(os.path.join(root, relative), f.read().strip())

    cpu_dir = "devices/system/cpu"
    copy(f"{cpu_dir}/online")
    with open(os.path.join(source, cpu_dir, "online")) as f:
        online = f.read().strip()
    for part in online.split(","):
        first, _, last = part.partition("-")
        for cpu in range(int(first), int(last or first) + 1):
            for entry in sorted(os.listdir(os.path.join(source, cpu_dir, f"cpu{cpu}"))):
                if entry.startswith("node") and entry[4:].isdigit():
                    copy(f"{cpu_dir}/cpu{cpu}/{entry}")
            for item in TOPOLOGY_FILES:
                copy(f"{cpu_dir}/cpu{cpu}/topology/{item}")
            cache = os.path.join(source, cpu_dir, f"cpu{cpu}", "cache")
            for index in sorted(e for e in os.listdir(cache) if e.startswith("index")):
                for item in CACHE_FILES:
                    copy(f"{cpu_dir}/cpu{cpu}/cache/{index}/{item}")
    for node in sorted(os.listdir(os.path.join(source, "devices/system/node"))):
        if node.startswith("node") and node[4:].isdigit():
            copy(f"devices/system/node/{node}/cpulist")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--copy-live"] and len(sys.argv) == 3:
        copy_live(sys.argv[2])
    elif len(sys.argv) == 1:
        make_host("dual-socket-96", dual_socket_96(), node_links=True)
        make_host("chiplet-1s", chiplet_1s(), node_links=False)
    else:
        sys.exit(__doc__)
