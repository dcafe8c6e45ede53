#!/usr/bin/env python3
"""Writes the profile fixtures of LockscopeCompareTests: a baseline and three candidates whose every
change is chosen against the default limits (see the comments and ComparisonTests.swift).
Run from this directory: python3 make-fixtures.py. The budget and malformed fixtures are written by hand."""
import json

US, MS, S = 1_000, 1_000_000, 1_000_000_000
CONTAINER_A = "4f2a9c01b3d7" + "0" * 52  # a docker-style 64-hex id


def stats(contentions, total, p50, p99, p999, max_wait, histogram=None):
    """Wait statistics; a single bucket holding every wait unless a histogram is given."""
    if histogram is None:
        lower = 1 << (max(p50, 1).bit_length() - 1)
        histogram = [{"lower_ns": lower, "upper_ns": lower * 2, "count": contentions}]
    return {"contentions": contentions, "total_wait_ns": total, "min_wait_ns": min(p50, 1 * US),
            "max_wait_ns": max_wait, "p50_wait_ns": p50, "p90_wait_ns": p99, "p99_wait_ns": p99,
            "p999_wait_ns": p999, "histogram": histogram}


def lock(name, kind, identity, address, wait, by_container=()):
    entry = {"name": name, "identity": identity, "kind": kind, "address": address}
    entry.update(wait)
    entry["by_container"] = [dict(key=key, **value) for key, value in by_container]
    return entry


def run_queue_locks(first, second):
    """Two per-CPU run-queue locks that share their caller name: compared as one merged lock."""
    return [
        lock("raw_spin_rq_lock_nested+0x2a", "spinlock", "caller", "0xffff8880aa000000",
             stats(first, first * 4 * US, 3 * US, 12 * US, 14 * US, 15 * US,
                   [{"lower_ns": 2048, "upper_ns": 4096, "count": first * 9 // 10},
                    {"lower_ns": 8192, "upper_ns": 16384, "count": first - first * 9 // 10}])),
        lock("raw_spin_rq_lock_nested+0x2a", "spinlock", "caller", "0xffff8880bb000000",
             stats(second, second * 20 * US, 20 * US, 30 * US, 31 * US, 32 * US,
                   [{"lower_ns": 16384, "upper_ns": 32768, "count": second}])),
    ]


def mounts(container_a_ops):
    entries = [(CONTAINER_A, "docker", container_a_ops), ("host", "host", 3),
               ("/system.slice/runner.service", "cgroup", 50)]
    return {"total_ops": sum(ops for _, _, ops in entries), "by_syscall": [],
            "by_container": [{"id": i, "runtime": r, "ops": ops, "by_syscall": []} for i, r, ops in entries]}


def profile(duration_ns, locks, mount_summary, kernel="6.18.0-lockscope", dropped=0):
    contentions = sum(entry["contentions"] for entry in locks)
    return {
        "schema": "lockscope.profile/1", "hostname": "ci-runner", "kernel": kernel,
        "started_at": "2025-06-01T12:00:00Z", "duration_ns": duration_ns, "events": contentions,
        "dropped": dropped,
        "drops": {"ringbuf_full": dropped, "task_map_full": 0, "nesting_overflow": 0, "syscall_map_full": 0,
                  "stack_failed": 0, "recursion_misses": 0},
        "recording": {"locks": "mount", "lock_addresses": [], "min_wait_ns": 0, "pids": [], "containers": [],
                      "command": ["lockscope", "stress", "--containers", "32", "--layers", "20"]},
        "containers": [], "mounts": mount_summary, "locks": locks,
    }


def write(name, document):
    with open(name, "w") as f:
        json.dump(document, f, indent=2)
        f.write("\n")


# Baseline: 10 s.
write("base.json", profile(10 * S, [
    # 200/s, 40 ms/s.
    lock("namespace_sem", "rwsem", "inferred", "0xffffffff83a0c2e0",
         stats(2000, 400 * MS, 20 * US, 500 * US, 1 * MS, 2 * MS),
         [(CONTAINER_A, stats(1500, 300 * MS, 20 * US, 600 * US, 1 * MS, 2 * MS)),
          ("host", stats(500, 100 * MS, 20 * US, 400 * US, 1 * MS, 2 * MS))]),
    # 500/s, 5 ms/s.
    lock("mount_lock", "spinlock", "inferred", "0xffffffff83a0c300", stats(5000, 50 * MS, 2 * US, 40 * US, 80 * US, 150 * US)),
    # 100/s, 80 ms/s.
    lock("exp_funnel_lock+0x1f3", "mutex", "caller", "0xffffffff83b00000",
         stats(1000, 800 * MS, 1 * MS, 4 * MS, 6 * MS, 8 * MS)),
    lock("ilookup5+0x4a", "spinlock", "caller", "0xffff8880cc000000", stats(20, 100 * US, 5 * US, 9 * US, 9 * US, 9 * US)),
] + run_queue_locks(300, 100), mounts(8)))

# Regressed (per-layer mounts), 20 s, so totals and rates are halved before comparing.
write("regressed.json", profile(20 * S, [
    # Every metric regressed: 2000/s (+900%), 400 ms/s (+900%), p50 +900%, p99 +1900%, p999 +1900%, max +1900%.
    lock("namespace_sem", "rwsem", "inferred", "0xffffffff9120c2e0",
         stats(40000, 8 * S, 200 * US, 10 * MS, 20 * MS, 40 * MS),
         [(CONTAINER_A, stats(39000, 7900 * MS, 200 * US, 10 * MS, 20 * MS, 40 * MS)),
          ("host", stats(1000, 200 * MS, 20 * US, 400 * US, 1 * MS, 2 * MS))]),
    # Noise: p99 +22.5% but only +9 µs (under the 10 µs floor); the rest +4% or less.
    lock("mount_lock", "spinlock", "inferred", "0xffffffff9120c300", stats(10400, 104 * MS, 2 * US, 49 * US, 80 * US, 150 * US)),
    # p50 +15% and +150 µs: over the floor, under the relative limit.
    lock("exp_funnel_lock+0x1f3", "mutex", "caller", "0xffffffff91300000",
         stats(2000, 1600 * MS, 1150 * US, 4 * MS, 6 * MS, 8 * MS)),
    # Too few contentions in both profiles to judge, however large the change.
    lock("ilookup5+0x4a", "spinlock", "caller", "0xffff8880dd000000", stats(40, 40 * MS, 900 * US, 1 * MS, 1 * MS, 1 * MS)),
    # New contention: 60/s and 3 ms/s, p99 30 µs, p999 50 µs; p50 5 µs and max 90 µs stay under their floors.
    lock("alloc_vfsmnt+0x6e", "spinlock", "caller", "0xffff8880ee000000", stats(1200, 60 * MS, 5 * US, 30 * US, 50 * US, 90 * US)),
] + run_queue_locks(600, 200), mounts(42)))

# Improved (common-parent mounts), 10 s, without mount accounting.
write("improved.json", profile(10 * S, [
    # 100/s (-50%), 2 ms/s (-95%), p50 -10 µs (exactly the floor: unchanged), p99 -80%, p999 -80%, max -80%.
    lock("namespace_sem", "rwsem", "inferred", "0xffffffff8ee0c2e0",
         stats(1000, 20 * MS, 10 * US, 100 * US, 200 * US, 400 * US)),
    lock("mount_lock", "spinlock", "inferred", "0xffffffff8ee0c300", stats(5000, 50 * MS, 2 * US, 40 * US, 80 * US, 150 * US)),
    # exp_funnel_lock+0x1f3 is gone; ilookup5+0x4a too, but it had too few contentions to judge.
] + run_queue_locks(300, 100), None))

# Noise, 10 s: every change under its relative limit or its floor; another kernel, 2% of events lost.
write("noise.json", profile(10 * S, [
    # +5% rate, +5% total, p50 +10%, p99 +18%, p999 +25%, max +45%.
    lock("namespace_sem", "rwsem", "inferred", "0xffffffff8ee0c2e0",
         stats(2100, 420 * MS, 22 * US, 590 * US, 1250 * US, 2900 * US)),
    lock("mount_lock", "spinlock", "inferred", "0xffffffff8ee0c300", stats(5000, 50 * MS, 2 * US, 49 * US, 80 * US, 150 * US)),
    lock("exp_funnel_lock+0x1f3", "mutex", "caller", "0xffffffff8ef00000",
         stats(1000, 800 * MS, 1 * MS, 4 * MS, 6 * MS, 8 * MS)),
    lock("ilookup5+0x4a", "spinlock", "caller", "0xffff8880cc000000", stats(45, 4 * MS, 50 * US, 90 * US, 90 * US, 90 * US)),
] + run_queue_locks(300, 100), mounts(8), kernel="6.19.0-lockscope", dropped=200))
