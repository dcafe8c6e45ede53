# Writes containerd-storm.json, the hand-made containerd mount storm the report, timeline, redaction and
# diff tests read: python3 make-containerd-storm.py > containerd-storm.json. Numbers were chosen to agree:
# the timeline sums to the locks' and victims' totals, the containers' ops to the mount total.
import json
P1 = "5d0a7c3e9b1f4a2c8e6d0b9a7f3c1e5d2b8a6f4c0e9d7b5a3c1f8e6d4b2a0c9e"
P2 = "8c2e4a6b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a0c1b3d5f7e9a2c4b6d8f0e1a"
C1 = "a1f3c5e7b9d0f2a4c6e8b0d1f3a5c7e9b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1"
C2 = "b2e4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c5e7b9d2f4a6c8e0b1d3f5a7c9e2b4"
C3 = "c3d5f7a9b1e2d4f6a8c0e3b5d7f9a1c2e4b6d8f0a3c5e7b9d1f2a4c6e8b0d3f5"
D4 = "d4c6e8a0f2b3d5e7a9c1f3b5d7e9a2c4f6b8d0e1a3c5f7b9d2e4a6c8f0b1d3e5"
for x in (P1, P2, C1, C2, C3, D4): assert len(x) == 64, x

def stats(n, total, mn, mx, p50, p90, p99, p999, buckets):
    return {"contentions": n, "total_wait_ns": total, "min_wait_ns": mn, "max_wait_ns": mx, "p50_wait_ns": p50,
            "p90_wait_ns": p90, "p99_wait_ns": p99, "p999_wait_ns": p999,
            "histogram": [{"lower_ns": lo, "upper_ns": hi, "count": c} for lo, hi, c in buckets]}

def lock(name, identity, kind, address, st):
    d = {"name": name, "identity": identity, "kind": kind, "address": address, "instances": 1}
    d.update(st)
    for k in ("stacks", "by_cpu", "by_socket", "by_node", "by_llc", "by_container", "by_process", "handoffs"):
        d[k] = []
    return d

def share(lock, n, total, mx):
    return {"lock": lock, "contentions": n, "total_wait_ns": total, "max_wait_ns": mx}

def call(name, n, total, mx, errors=0):
    d = {"syscall": name, "errors": errors}
    d.update(stats(n, total, total // n // 4, mx, total // n, total // n * 2, mx, mx, [(1 << 14, 1 << 24, n)]))
    return d

locks = [
    lock("namespace_sem", "inferred", "rwsem", "0xffffffff9a2c5e40",
         stats(410, 3_880_000_000, 21_000, 412_000_000, 4_200_000, 21_000_000, 180_000_000, 412_000_000,
               [(16384, 32768, 12), (2097152, 4194304, 190), (16777216, 33554432, 180), (268435456, 536870912, 28)])),
    lock("mount_lock", "inferred", "spinlock", "0xffffffff9a2c5e80",
         stats(1320, 7_410_000, 180, 900_000, 3_100, 9_800, 61_000, 900_000,
               [(128, 256, 40), (2048, 4096, 1100), (65536, 131072, 179), (524288, 1048576, 1)])),
    lock("rcu_state.exp_mutex", "symbol", "mutex", "0xffffffff9b0f60b8",
         stats(14, 1_750_000, 40_000, 300_000, 110_000, 240_000, 300_000, 300_000, [(32768, 524288, 14)])),
]

containers = [
    {"id": C1, "runtime": "containerd", "pod_uid": "7e3d1b9a-4c2f-4e8d-b6a0-1f9c3e5d7b2a", "cgroup": "/system.slice/containerd.service",
     "pod": P1, "attribution": "mount-path", "contentions": 160, "total_wait_ns": 1_620_000_000, "p99_wait_ns": 180_000_000},
    {"id": C2, "runtime": "containerd", "pod_uid": "7e3d1b9a-4c2f-4e8d-b6a0-1f9c3e5d7b2a", "cgroup": "/system.slice/containerd.service",
     "pod": P1, "attribution": "mount-path", "contentions": 120, "total_wait_ns": 1_010_000_000, "p99_wait_ns": 150_000_000},
    {"id": C3, "runtime": "containerd", "pod_uid": "2b8f6d4e-0a9c-4f1e-8d3b-5c7a9e1f3d6b", "cgroup": "/system.slice/containerd.service",
     "pod": P2, "attribution": "mount-path", "contentions": 130, "total_wait_ns": 1_090_000_000, "p99_wait_ns": 120_000_000},
    {"id": D4, "runtime": "docker", "cgroup": "/system.slice/docker-%s.scope" % D4, "attribution": "cgroup",
     "contentions": 9, "total_wait_ns": 3_200_000, "p99_wait_ns": 1_100_000},
    {"id": "host", "runtime": "host", "cgroup": "/", "contentions": 1325, "total_wait_ns": 164_760_000, "p99_wait_ns": 900_000},
]

def start(first, setup, insys, wait, by_lock):
    return {"first_syscall_ns": first, "setup_ns": setup, "in_syscalls_ns": insys, "lock_wait_ns": wait, "by_lock": by_lock}

mounts = {
    "total_ops": 412,
    "by_syscall": [call("open_tree", 120, 1_900_000_000, 180_000_000), call("mount_setattr", 120, 1_380_000_000, 150_000_000),
                   call("move_mount", 120, 1_560_000_000, 205_000_000), call("mount", 12, 96_000_000, 31_000_000),
                   call("umount2", 40, 364_000_000, 60_000_000, errors=3)],
    "by_container": [
        {"id": C1, "runtime": "containerd", "pod": P1, "attribution": "mount-path", "ops": 140,
         "by_syscall": [call("open_tree", 40, 700_000_000, 180_000_000), call("mount_setattr", 40, 500_000_000, 150_000_000),
                        call("move_mount", 40, 560_000_000, 120_000_000), call("mount", 4, 40_000_000, 31_000_000),
                        call("umount2", 16, 100_000_000, 20_000_000)],
         "start": start(1_400_000_000, 2_250_000_000, 1_900_000_000, 1_240_000_000,
                        [share("namespace_sem", 52, 1_236_000_000, 180_000_000), share("mount_lock", 300, 4_000_000, 400_000)])},
        {"id": C2, "runtime": "containerd", "pod": P1, "attribution": "mount-path", "ops": 136,
         "by_syscall": [call("open_tree", 40, 800_000_000, 160_000_000), call("mount_setattr", 40, 600_000_000, 140_000_000),
                        call("move_mount", 40, 600_000_000, 205_000_000), call("mount", 4, 30_000_000, 20_000_000),
                        call("umount2", 12, 70_000_000, 15_000_000)],
         "start": start(2_900_000_000, 2_600_000_000, 2_100_000_000, 1_460_000_000,
                        [share("namespace_sem", 61, 1_458_000_000, 205_000_000), share("mount_lock", 280, 2_000_000, 300_000)])},
        {"id": C3, "runtime": "containerd", "pod": P2, "attribution": "mount-path", "ops": 126,
         "by_syscall": [call("open_tree", 40, 400_000_000, 90_000_000), call("mount_setattr", 36, 252_000_000, 60_000_000),
                        call("move_mount", 40, 400_000_000, 80_000_000), call("mount", 4, 26_000_000, 10_000_000),
                        call("umount2", 6, 194_000_000, 60_000_000, errors=3)],
         "start": start(3_100_000_000, 5_400_000_000, 1_300_000_000, 610_000_000,
                        [share("namespace_sem", 30, 609_000_000, 90_000_000), share("mount_lock", 120, 1_000_000, 200_000)])},
        # The shim's own syscalls no path ties to a container: under its pod, as MountAttribution names it.
        {"id": "pod:" + P2, "runtime": "containerd", "pod": P2, "attribution": "issuer", "ops": 4,
         "by_syscall": [call("mount_setattr", 4, 28_000_000, 9_000_000)]},
        {"id": D4, "runtime": "docker", "attribution": "cgroup", "ops": 6,
         "by_syscall": [call("umount2", 6, 0 + 6_000, 2_000)]},
    ],
}

# A holder that is a shim naming its pod (-id) is that pod, `pod:<sandbox id>`, as ProfileBuilder names it:
# the shim mounts for every container of the pod. Shim 4100 serves pod P1 (C1, C2), shim 4230 pod P2 (C3).
victims = [
    {"process": "systemd[1]", "container": "host", "contentions": 48, "total_wait_ns": 2_310_000_000, "max_wait_ns": 412_000_000,
     "by_lock": [share("namespace_sem", 46, 2_308_500_000, 412_000_000), share("mount_lock", 2, 1_500_000, 900_000)],
     "holders": [{"process": "containerd-shim[4100]", "container": "pod:" + P1, "contentions": 30, "total_wait_ns": 1_480_000_000},
                 {"process": "containerd-shim[4230]", "container": "pod:" + P2, "contentions": 12, "total_wait_ns": 640_000_000},
                 {"process": "containerd[812]", "container": "host", "contentions": 4, "total_wait_ns": 150_000_000}]},
    {"process": "kubelet[1190]", "container": "/system.slice/kubelet.service", "contentions": 21, "total_wait_ns": 840_000_000,
     "max_wait_ns": 205_000_000, "by_lock": [share("namespace_sem", 21, 840_000_000, 205_000_000)],
     "holders": [{"process": "containerd-shim[4100]", "container": "pod:" + P1, "contentions": 15, "total_wait_ns": 600_000_000},
                 {"process": "containerd-shim[4230]", "container": "pod:" + P2, "contentions": 6, "total_wait_ns": 240_000_000}]},
    {"process": "healthcheck[5120]", "container": D4, "contentions": 9, "total_wait_ns": 3_200_000, "max_wait_ns": 1_100_000,
     "by_lock": [share("mount_lock", 9, 3_200_000, 1_100_000)], "holders": []},
]

ops = [0, 4, 38, 96, 120, 88, 40, 18, 6, 2, 0, 0]
started = [0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0]
nsem = [0, 2_000_000, 180_000_000, 820_000_000, 1_400_000_000, 960_000_000, 410_000_000, 95_000_000, 12_000_000, 1_000_000, 0, 0]
mlock = [0, 10_000, 420_000, 1_900_000, 2_600_000, 1_700_000, 600_000, 150_000, 30_000, 0, 0, 0]
other = [0, 0, 50_000, 300_000, 900_000, 400_000, 100_000, 0, 0, 0, 0, 0]
vwait = [0, 0, 90_000_000, 610_000_000, 1_150_000_000, 820_000_000, 380_000_000, 90_000_000, 13_200_000, 0, 0, 0]
vmax = [0, 0, 31_000_000, 205_000_000, 412_000_000, 260_000_000, 120_000_000, 40_000_000, 9_000_000, 0, 0, 0]
assert sum(ops) == 412 and sum(nsem) == 3_880_000_000 and sum(mlock) == 7_410_000 and sum(other) == 1_750_000
assert sum(vwait) == sum(v["total_wait_ns"] for v in victims)
timeline = {"bin_ns": 1_000_000_000, "bins": [
    {"start_ns": i * 1_000_000_000, "containers_started": started[i], "mount_ops": ops[i], "namespace_sem_wait_ns": nsem[i],
     "mount_lock_wait_ns": mlock[i], "other_wait_ns": other[i], "victim_wait_ns": vwait[i], "victim_max_wait_ns": vmax[i]}
    for i in range(12)]}

profile = {"schema": "lockscope.profile/1", "hostname": "node-b", "kernel": "6.12.0-31-amd64",
           "started_at": "2026-12-01T09:30:00Z", "duration_ns": 12_000_000_000, "events": 2156, "dropped": 0,
           "drops": {}, "recording": {"locks": "mount", "lock_addresses": [], "min_wait_ns": 0, "pids": [], "containers": [], "command": []},
           "containers": containers, "mounts": mounts, "locks": locks, "victims": victims, "timeline": timeline}
print(json.dumps(profile, indent=2, sort_keys=True))
