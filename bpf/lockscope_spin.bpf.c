// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * lockscope's on-CPU sampler: one program on a cpu-clock perf event per CPU (`record --spin-hz`).
 * Each sample is counted in a hash map keyed by its whole kernel stack, CPU, cgroup, process, thread name, the mount-family
 * syscall the thread is in if any, and three flags:
 * user mode, PAUSE at the sampled instruction (an inlined spin-wait loop such as a seqcount
 * reader's `cpu_relax()`), and inside a traced wait. Which stacks are in known spin functions, and which lock they spin on,
 * user space decides from the symbolized stack (docs/how-it-works.md, "Spinning on CPU").
 *
 * A separate object from bpf/lockscope.bpf.c: it is loaded only when sampling is on and attaches to perf
 * events rather than tracepoints. It shares two maps with the wait programs (user space hands the wait
 * object's maps over with bpf_map__reuse_fd before load): `open_waits`, to flag samples of a task that
 * is inside a traced wait (between contention_begin and contention_end: their time is already in the
 * wait time, and the report keeps them apart from the spinning no tracepoint sees), and `open_syscalls`,
 * to tie a sample inside a mount-family syscall to that syscall (and so to its container).
 */
#include "kernel_types.h"
#include <bpf/bpf_helpers.h>
#include "lockscope.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* struct bpf_perf_event_data on x86-64 (include/uapi/linux/bpf_perf_event.h): the interrupted
 * registers as uapi struct pt_regs, then the sample period. Context accesses are rewritten by the
 * verifier at these fixed uapi offsets, so this is declared exactly, without CO-RE. */
struct perf_event_regs {
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};
struct perf_event_data {
	struct perf_event_regs regs;
	__u64 sample_period;
	__u64 addr;
};

#define PAUSE_BYTE0 0xf3
#define PAUSE_BYTE1 0x90

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lockscope_spin_key);
	__type(value, struct lockscope_spin_value);
	__uint(max_entries, LOCKSCOPE_MAX_SPIN_KEYS);
} spin_samples SEC(".maps");

/* The wait programs' open waits by thread id (the same map: bpf_map__reuse_fd before load). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32); /* thread id */
	__type(value, struct task_waits);
	__uint(max_entries, LOCKSCOPE_MAX_TASKS);
} open_waits SEC(".maps");

/* The wait programs' open mount-family syscalls by thread id (the same map: bpf_map__reuse_fd before
 * load, which also gives it its real value size). Only the first field, the syscall's begin time, is
 * read here; bpf/lockscope.bpf.c asserts that it stays first. */
struct open_syscall_begin {
	__u64 begin_ns;
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32); /* thread id */
	__type(value, struct open_syscall_begin);
	__uint(max_entries, LOCKSCOPE_MAX_OPEN_SYSCALLS);
} open_syscalls SEC(".maps");

/* Room to build a key: 464 bytes, too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lockscope_spin_key);
	__uint(max_entries, 1);
} spin_key_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, LOCKSCOPE_SPIN_CTR_COUNT);
} spin_counters SEC(".maps");

/* The filters of record's --pid and --container (written before attaching; a present key keeps). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, LOCKSCOPE_SPIN_SETTINGS);
} spin_settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u8);
	__uint(max_entries, LOCKSCOPE_MAX_FILTER_ENTRIES);
} spin_pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, __u8);
	__uint(max_entries, LOCKSCOPE_MAX_FILTER_ENTRIES);
} spin_cgroup_filter SEC(".maps");

static __always_inline void count(__u32 counter)
{
	__u64 *value = bpf_map_lookup_elem(&spin_counters, &counter);
	if (value)
		__sync_fetch_and_add(value, 1);
}

/* Whether the task on the CPU passes record's --pid and --container filters. */
static __always_inline bool selected(__u32 tgid, __u64 cgroup_id)
{
	__u32 zero = 0, *filters = bpf_map_lookup_elem(&spin_settings, &zero);

	if (!filters || !*filters)
		return true;
	if ((*filters & LOCKSCOPE_FILTER_PIDS) && !bpf_map_lookup_elem(&spin_pid_filter, &tgid))
		return false;
	if ((*filters & LOCKSCOPE_FILTER_CGROUPS) && !bpf_map_lookup_elem(&spin_cgroup_filter, &cgroup_id))
		return false;
	return true;
}

/* PAUSE at the sampled IP, or just before it (the interrupt is taken after the PAUSE completes). */
static __always_inline bool at_pause(__u64 ip)
{
	__u8 text[4];

	if (bpf_probe_read_kernel(text, sizeof(text), (void *)(ip - 2))) {
		count(LOCKSCOPE_SPIN_CTR_TEXT_UNREADABLE);
		return false;
	}
	return (text[2] == PAUSE_BYTE0 && text[3] == PAUSE_BYTE1) || (text[0] == PAUSE_BYTE0 && text[1] == PAUSE_BYTE1);
}

/* The thread is between a traced contention_begin and its contention_end (a wait the wait programs
 * time): its spinning there is part of that wait's time already. */
static __always_inline bool in_traced_wait(__u32 tid)
{
	struct task_waits *waits = bpf_map_lookup_elem(&open_waits, &tid);

	return waits && waits->depth > 0;
}

/* Counts one sample under `key`; false when the map has no room for a new key. */
static __always_inline bool add_sample(const struct lockscope_spin_key *key)
{
	static const struct lockscope_spin_value first = { .count = 1 };
	struct lockscope_spin_value *value = bpf_map_lookup_elem(&spin_samples, key);

	if (value) {
		__sync_fetch_and_add(&value->count, 1);
		return true;
	}
	if (bpf_map_update_elem(&spin_samples, key, &first, BPF_NOEXIST) == 0)
		return true;
	/* Another CPU may have added the key meanwhile (-EEXIST); otherwise the map is full. */
	value = bpf_map_lookup_elem(&spin_samples, key);
	if (value) {
		__sync_fetch_and_add(&value->count, 1);
		return true;
	}
	return false;
}

SEC("perf_event")
int spin_sample(struct perf_event_data *ctx)
{
	struct lockscope_spin_key *key;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 zero = 0;
	__u32 tgid, tid = (__u32)pid_tgid;
	__u64 cgroup_id;
	long bytes;

	count(LOCKSCOPE_SPIN_CTR_SAMPLES);
	/* The idle task (thread id 0): nothing to attribute, and no stack walk (the expensive part). */
	if ((__u32)pid_tgid == 0) {
		count(LOCKSCOPE_SPIN_CTR_IDLE);
		return 0;
	}
	tgid = pid_tgid >> 32;
	cgroup_id = bpf_get_current_cgroup_id();
	/* Left out before the stack walk, so that a filtered recording samples the rest cheaply. */
	if (!selected(tgid, cgroup_id)) {
		count(LOCKSCOPE_SPIN_CTR_FILTERED);
		return 0;
	}
	key = bpf_map_lookup_elem(&spin_key_scratch, &zero);
	if (!key)
		return 0;
	/* The whole key is hashed and compared: every byte is set, the stack zeroed past its end. */
	__builtin_memset(key, 0, sizeof(*key));
	key->tgid = tgid;
	key->cgroup_id = cgroup_id;
	bpf_get_current_comm(&key->comm, sizeof(key->comm));
	key->cpu = bpf_get_smp_processor_id();
	if (ctx->regs.cs & 3) {
		count(LOCKSCOPE_SPIN_CTR_USER);
		key->flags = LOCKSCOPE_SPIN_F_USER;
	} else {
		count(LOCKSCOPE_SPIN_CTR_KERNEL);
		if (at_pause(ctx->regs.ip)) {
			count(LOCKSCOPE_SPIN_CTR_PAUSE);
			key->flags |= LOCKSCOPE_SPIN_F_PAUSE;
		}
		if (in_traced_wait(tid)) {
			count(LOCKSCOPE_SPIN_CTR_IN_WAIT);
			key->flags |= LOCKSCOPE_SPIN_F_IN_WAIT;
		}
		/* Inside a mount-family syscall: the syscall (thread, begin time), which user space ties to a
		 * container by its paths, as it does the syscall's waits. */
		struct open_syscall_begin *syscall = bpf_map_lookup_elem(&open_syscalls, &tid);
		if (syscall) {
			key->syscall_tid = tid;
			key->syscall_begin_ns = syscall->begin_ns;
		}
		bytes = bpf_get_stack(ctx, key->stack, sizeof(key->stack), 0);
		if (bytes > 0)
			key->frames = bytes / sizeof(__u64);
		else
			count(LOCKSCOPE_SPIN_CTR_STACK_FAILED);
	}
	if (add_sample(key))
		return 0;
	/* Full: a sample tied to its mount syscall is kept without the tie (keys per syscall are the ones
	 * that multiply), under a key that may be there already. */
	if (key->syscall_tid) {
		key->syscall_tid = 0;
		key->syscall_begin_ns = 0;
		if (add_sample(key)) {
			count(LOCKSCOPE_SPIN_CTR_SYSCALL_UNLINKED);
			return 0;
		}
	}
	count(LOCKSCOPE_SPIN_CTR_MAP_FULL);
	return 0;
}
