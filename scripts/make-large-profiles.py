#!/usr/bin/env python3
"""Writes the large profiles that docs/profile-format.md measures readers on (never committed: they are big).

    scripts/make-large-profiles.py big DIR [MEGABYTES]   # DIR/big.json: ~MEGABYTES (default 200) of locks with every breakdown
    scripts/make-large-profiles.py many DIR [LOCKS]      # DIR/many-base.json, DIR/many-current.json: LOCKS (default 1e6) small locks

Then, for example:
    /usr/bin/time -v lockscope report DIR/big.json --by cpu --mounts > /dev/null
    /usr/bin/time -v lockscope diff DIR/many-base.json DIR/many-current.json --format json > /dev/null
"""
import json
import random
import sys

CPUS = 96


def histogram(contentions, low):
    buckets, lower, left = [], 1 << low, contentions
    while left > 0:
        count = max(1, left // 2)
        buckets.append({"lower_ns": lower, "upper_ns": lower * 2, "count": count})
        left -= count
        lower *= 2
    return buckets


def stats(contentions, mean):
    total = contentions * mean
    return {"contentions": contentions, "total_wait_ns": total, "min_wait_ns": mean // 4, "max_wait_ns": mean * 8,
            "p50_wait_ns": mean, "p90_wait_ns": mean * 3, "p99_wait_ns": mean * 6, "p999_wait_ns": mean * 8,
            "histogram": histogram(contentions, max(1, mean.bit_length() - 3))}


def keyed(key, contentions, mean):
    return {"key": key, **stats(contentions, mean)}


def container_id(index):
    return "%064x" % (0x3F2A9C1B7D4E8F60 * (index + 1))


def big_lock(index, rng):
    contentions = rng.randrange(1000, 100000)
    mean = rng.randrange(500, 50000)
    frames = ["rwsem_down_write_slowpath", "down_write", f"caller_{index}", "path_mount", "do_mount",
              "__x64_sys_mount", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"]
    stacks = []
    for stack in range(100):
        contexts = [{"cpu": rng.randrange(CPUS), "container": container_id(rng.randrange(50)), "count": 3,
                     "total_wait_ns": 3 * mean} for _ in range(5)]
        stacks.append({"frames": frames[:2] + [f"f{stack}_{depth}" for depth in range(6)] + frames[2:],
                       "count": 15, "total_wait_ns": 15 * mean, "max_wait_ns": mean * 4, "contexts": contexts})
    return {"name": f"caller_{index}+0x{index:x}", "identity": "caller", "kind": "rwsem",
            "address": "0x%x" % (0xFFFFFFFF83000000 + index * 64), "instances": 1, **stats(contentions, mean),
            "read": stats(contentions // 3, mean), "write": stats(contentions - contentions // 3, mean),
            "stacks": stacks,
            "by_cpu": [keyed(str(cpu), contentions // CPUS, mean) for cpu in range(CPUS)],
            "by_socket": [keyed(str(s), contentions // 2, mean) for s in range(2)],
            "by_node": [keyed(str(n), contentions // 2, mean) for n in range(2)],
            "by_llc": [keyed(str(n), contentions // 2, mean) for n in range(2)],
            "by_container": [keyed(container_id(c), contentions // 50, mean) for c in range(50)],
            "by_process": [keyed(f"runc[{1000 + p}]", contentions // 64, mean) for p in range(64)],
            "handoffs": [{"handoff": h, **stats(contentions // 5, mean)}
                         for h in ["same_cpu", "smt_sibling", "same_llc", "same_socket", "other_socket"]],
            "owners": [{"waiter_container": container_id(o), "owner_container": "host", "owner_pid": 100 + o,
                        "owner_comm": "containerd", "contentions": 10, "total_wait_ns": 10 * mean} for o in range(50)]}


def topology():
    cpus = [{"id": c, "core": c % 24, "socket": c // 48, "die": 0, "node": c // 48, "llc": c // 48,
             "smt_siblings": [c, (c + 24) % 48 + (c // 48) * 48]} for c in range(CPUS)]
    return {"cpus": cpus, "sockets": 2, "nodes": 2, "llcs": 2, "smt": True}


def profile(locks, mounts=None):
    return {"schema": "lockscope.profile/1", "hostname": "big-node", "kernel": "6.18.0", "started_at": "2026-11-26T10:00:00Z",
            "duration_ns": 60_000_000_000, "events": 123456789, "dropped": 0, "drops": {},
            "recording": {"locks": "all", "lock_addresses": [], "min_wait_ns": 0, "pids": [], "containers": [], "command": []},
            "topology": topology(), "containers": [], "mounts": mounts, "locks": locks}


def write_big(directory, megabytes):
    rng = random.Random(1)
    path = f"{directory}/big.json"
    with open(path, "w") as out:
        head = json.dumps(profile([]), separators=(",", ":"))
        assert head.endswith('"locks":[]}')
        out.write(head[:-2])
        written, index = len(head), 0
        while written < megabytes * 1_000_000:
            text = ("," if index else "") + json.dumps(big_lock(index, rng), separators=(",", ":"))
            out.write(text)
            written += len(text)
            index += 1
        out.write("]}\n")
    print(f"{path}: {index} locks, {written / 1e6:.0f} MB")


def write_many(directory, count):
    rng = random.Random(2)
    for name, change in [("many-base", 0), ("many-current", 1)]:
        path = f"{directory}/{name}.json"
        with open(path, "w") as out:
            head = json.dumps(profile([]), separators=(",", ":"))
            out.write(head[:-2])
            for index in range(count):
                contentions = 100 + index % 900
                mean = 1000 + (index * 7919) % 100000
                # One lock in a thousand waits ten times longer in the current profile.
                if change and index % 1000 == 0:
                    mean *= 10
                lock = {"name": f"lock_{index}", "identity": "caller", "kind": "spinlock",
                        "address": "0x%x" % (0xFFFF888000000000 + index * 64), **stats(contentions, mean)}
                out.write(("," if index else "") + json.dumps(lock, separators=(",", ":")))
            out.write("]}\n")
        print(f"{path}: {count} locks")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("big", "many"):
        sys.exit(__doc__)
    if sys.argv[1] == "big":
        write_big(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 200)
    else:
        write_many(sys.argv[2], int(float(sys.argv[3])) if len(sys.argv) > 3 else 1_000_000)
