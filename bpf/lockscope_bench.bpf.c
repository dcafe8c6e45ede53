// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test-only synthetic event source for lockscope-bench; never loaded by `lockscope record`.
 *
 * One BPF_PROG_TEST_RUN of `emit_events` writes many `lockscope_wait_event` records into the ring
 * buffer with bpf_loop, reserving and submitting each like contention_end does, so user space reads
 * the production record layout at rates no real lock storm reaches on demand. Every field is derived
 * from the event's sequence number and a seed: many locks (a few hot ones contended from everywhere,
 * the rest each owned by one container), containers (each with its processes and CPUs), stacks, lock
 * kinds and waits.
 */
#include "kernel_types.h"
#include <bpf/bpf_helpers.h>
#include "lockscope.h"
#include "lockscope_bench.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define LOCK_BASE 0xffff888100000000ULL /* lock i is at LOCK_BASE + i * 64: one cache line each */
#define CGROUP_BASE 0x1000ULL
#define PID_BASE 100000U

/* Only wakeup_bytes is read: submits batch wake-ups exactly like the production programs. */
const volatile struct lockscope_config config = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* user space sizes it */
} events SEC(".maps");

/* The production counter layout: WAITS_COMPLETED is every event produced, RINGBUF_FULL every one lost. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, LOCKSCOPE_CTR_COUNT);
} counters SEC(".maps");

struct emit_state {
	__u64 first;
	__u64 seed;
	__u64 locks;
	__u64 cpus;
	__u64 containers;
	__u64 end_ns;
	__u64 sent;
	__u64 dropped;
};

/* splitmix64: a well-mixed 64-bit value from a counter. */
static __always_inline __u64 mix(__u64 x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static __always_inline void add(__u32 counter, __u64 amount)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &counter);
	if (value)
		__sync_fetch_and_add(value, amount);
}

static __always_inline __u64 submit_flags(void)
{
	if (!config.wakeup_bytes)
		return 0;
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= config.wakeup_bytes ? BPF_RB_FORCE_WAKEUP
										  : BPF_RB_NO_WAKEUP;
}

/* Contention flags by lock: rwsems and mutexes (sleeping waits), spinlocks and rwlocks (short spins). */
static __always_inline __u32 lock_flags(__u64 lock, __u64 bits)
{
	switch (lock & 3) {
	case 0:
		return (bits & 1) ? LOCKSCOPE_LCB_F_READ : LOCKSCOPE_LCB_F_WRITE;
	case 1:
		return LOCKSCOPE_LCB_F_SPIN;
	case 2:
		return (bits & 1) ? LOCKSCOPE_LCB_F_MUTEX | LOCKSCOPE_LCB_F_SPIN : LOCKSCOPE_LCB_F_MUTEX;
	default:
		return LOCKSCOPE_LCB_F_SPIN | ((bits & 1) ? LOCKSCOPE_LCB_F_READ : LOCKSCOPE_LCB_F_WRITE);
	}
}

static long emit_one(__u64 index, void *data)
{
	struct emit_state *state = data;
	struct lockscope_wait_event *event;
	__u64 h = mix(state->seed ^ (state->first + index));
	__u64 g = mix(h);
	__u64 lock, container, owner_container, wait_base;
	__u32 flags, pid, cpu;

	event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event) {
		state->dropped++;
		return 0;
	}
	if (h & 1) {
		lock = (h >> 1) % LOCKSCOPE_BENCH_HOT_LOCKS;
		container = (h >> 24) % state->containers;
	} else {
		lock = LOCKSCOPE_BENCH_HOT_LOCKS + (h >> 1) % (state->locks - LOCKSCOPE_BENCH_HOT_LOCKS);
		container = lock % state->containers;
	}
	flags = lock_flags(lock, h >> 40);
	cpu = (container * LOCKSCOPE_BENCH_CPUS_PER_CONTAINER + (h >> 16) % LOCKSCOPE_BENCH_CPUS_PER_CONTAINER) % state->cpus;
	pid = PID_BASE + container * LOCKSCOPE_BENCH_PIDS_PER_CONTAINER + ((h >> 48) % LOCKSCOPE_BENCH_PIDS_PER_CONTAINER);
	/* Power-of-two ranges: 128 ns to 32 us spins, 1 us to 4 ms sleeps. */
	wait_base = (flags & (LOCKSCOPE_LCB_F_SPIN | LOCKSCOPE_LCB_F_MUTEX)) == LOCKSCOPE_LCB_F_SPIN
			    ? 1ULL << (7 + g % 9)
			    : 1ULL << (10 + g % 13);

	event->type = LOCKSCOPE_EVENT_WAIT;
	event->flags = flags;
	event->end_ns = state->end_ns + index;
	event->wait_ns = wait_base + ((g >> 8) & (wait_base - 1));
	event->lock_addr = LOCK_BASE + lock * 64;
	/* One spin in eight happens inside hot lock 0's slow path, like an rwsem's wait_lock. */
	event->outer_lock_addr = (flags == LOCKSCOPE_LCB_F_SPIN && ((g >> 32) & 7) == 0) ? LOCK_BASE : 0;
	event->cgroup_id = CGROUP_BASE + container;
	event->syscall_begin_ns = 0; /* outside mount syscalls: nothing is held for attribution */
	event->pid = pid;
	event->tid = pid;
	event->stack_id = (__s32)((lock * 4 + ((h >> 56) & 3)) % LOCKSCOPE_MAX_STACKS);
	event->user_frames = 0;
	event->user_stack_status = LOCKSCOPE_USER_STACK_NOT_ASKED;
	event->cpu = cpu;
	event->begin_cpu = cpu;
	event->ret = 0;
	bpf_get_current_comm(&event->comm, sizeof(event->comm));
	if ((flags & LOCKSCOPE_LCB_F_MUTEX) || flags == LOCKSCOPE_LCB_F_WRITE) {
		owner_container = (g >> 40) % state->containers;
		event->owner_cgroup_id = CGROUP_BASE + owner_container;
		event->owner_pid = PID_BASE + owner_container * LOCKSCOPE_BENCH_PIDS_PER_CONTAINER;
		event->owner_tid = event->owner_pid;
		__builtin_memcpy(event->owner_comm, event->comm, sizeof(event->owner_comm));
	} else {
		event->owner_cgroup_id = 0;
		event->owner_pid = 0;
		event->owner_tid = 0;
		event->owner_comm[0] = 0;
	}
	bpf_ringbuf_submit(event, submit_flags());
	state->sent++;
	return 0;
}

/* ctx: the lockscope_bench_arg values. Emits ctx[EVENTS] events; counts every one produced and lost. */
SEC("raw_tp")
int emit_events(__u64 *ctx)
{
	struct emit_state state = {
		.first = ctx[LOCKSCOPE_BENCH_ARG_FIRST],
		.seed = ctx[LOCKSCOPE_BENCH_ARG_SEED],
		.locks = ctx[LOCKSCOPE_BENCH_ARG_LOCKS],
		.cpus = ctx[LOCKSCOPE_BENCH_ARG_CPUS],
		.containers = ctx[LOCKSCOPE_BENCH_ARG_CONTAINERS],
		.end_ns = bpf_ktime_get_ns(),
	};

	if (state.locks <= LOCKSCOPE_BENCH_HOT_LOCKS || !state.cpus || !state.containers)
		return -1;
	bpf_loop((__u32)ctx[LOCKSCOPE_BENCH_ARG_EVENTS], emit_one, &state, 0);
	add(LOCKSCOPE_CTR_WAITS_COMPLETED, state.sent + state.dropped);
	add(LOCKSCOPE_CTR_RINGBUF_FULL, state.dropped);
	return 0;
}
