// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * lockscope's BPF side: time every contended lock wait between lock:contention_begin and
 * lock:contention_end, and every mount-family syscall between its syscalls:sys_enter_* and
 * sys_exit_* tracepoints, and stream one record per completed wait or syscall to user space
 * through a ring buffer.
 *
 * The lock programs are raw_tp: they attach without tracefs and can be driven by
 * BPF_PROG_TEST_RUN. The per-syscall tracepoints need tracefs and CONFIG_FTRACE_SYSCALLS; where
 * they are missing, user space attaches raw_syscalls sys_enter/sys_exit (raw_tp) instead, which
 * run on every syscall of the host and pick the mount-family ones by number.
 * Filters run here, before anything is written; every way to lose data bumps a counter.
 */
#include "kernel_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "lockscope.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define CLONE_NEWNS 0x00020000ULL
/* Low bits of mutex::owner and rw_semaphore::owner are flags; RWSEM_READER_OWNED is bit 0. */
#define OWNER_FLAGS_MASK 0x7UL
#define RWSEM_READER_OWNED 0x1UL

/* Set by user space before load; the verifier prunes what a recording does not use. */
const volatile struct lockscope_config config = {};

/* A mount-family syscall between sys_enter and sys_exit, with the arguments its event carries
 * (read at sys_enter: the exit tracepoints do not have them). */
struct open_syscall {
	__u64 begin_ns;
	__u32 syscall;
	__s32 fd;
	__u32 truncated;
	__s32 user_frames; /* of the issuer's user stack, walked at the syscall's first wait; USER_STACK_UNWALKED before */
	char path[LOCKSCOPE_PATH_LEN];
	char data[LOCKSCOPE_DATA_LEN];
	__u64 user_stack[LOCKSCOPE_MAX_USER_STACK_DEPTH];
};
/* The on-CPU sampler reads `open_syscalls` too, only the syscall's begin time (bpf/lockscope_spin.bpf.c). */
_Static_assert(__builtin_offsetof(struct open_syscall, begin_ns) == 0, "begin_ns first: the sampler reads it there");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* user space sets --ringbuf-size */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, LOCKSCOPE_MAX_STACK_DEPTH * sizeof(__u64));
	__uint(max_entries, LOCKSCOPE_MAX_STACKS);
} stacks SEC(".maps");

/* Processes that may have user stacks and have already woken the reader once: their first such event
 * (a mount syscall, or a wait with a user stack) wakes it at once, so that it reads the process's
 * mappings while the process still runs (least recently used make room; see user_stack_submit_flags). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
	__uint(max_entries, LOCKSCOPE_MAX_PROCESSES);
} user_stack_processes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32); /* thread id */
	__type(value, struct task_waits);
	__uint(max_entries, LOCKSCOPE_MAX_TASKS);
} open_waits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32); /* thread id */
	__type(value, struct open_syscall);
	__uint(max_entries, LOCKSCOPE_MAX_OPEN_SYSCALLS);
} open_syscalls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, LOCKSCOPE_CTR_COUNT);
} counters SEC(".maps");

/* Least recently used names make room for new ones: user space reads the table every second, so an
 * evicted name is normally kept already; evictions are counted as added minus still present. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64); /* cgroup id */
	__type(value, struct lockscope_cgroup_names);
	__uint(max_entries, LOCKSCOPE_MAX_CGROUPS); /* user space may set another size */
} cgroup_names SEC(".maps");

/* Room to build a cgroup_names entry (too big for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lockscope_cgroup_names);
	__uint(max_entries, 1);
} cgroup_names_scratch SEC(".maps");

/* Command lines of mount syscall issuers (least recently used make room). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u32); /* tgid */
	__type(value, struct lockscope_process_args);
	__uint(max_entries, LOCKSCOPE_MAX_PROCESSES);
} process_args SEC(".maps");

/* Room to build a process_args entry. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lockscope_process_args);
	__uint(max_entries, 1);
} process_args_scratch SEC(".maps");

/* Syscall number -> lockscope_mount_syscall (0: not mount-family). Filled by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, LOCKSCOPE_MAX_SYSCALL_NR);
} syscall_table SEC(".maps");

/* 1 while user space is still learning which addresses its selected locks are (see
 * LOCKSCOPE_FILTER_KERNEL_DATA); it writes 0 once it knows them all. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} learning SEC(".maps");

/* Filter sets; a present key means "keep". */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, __u8);
	__uint(max_entries, LOCKSCOPE_MAX_FILTER_ENTRIES);
} lock_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u8);
	__uint(max_entries, LOCKSCOPE_MAX_FILTER_ENTRIES);
} pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, __u8);
	__uint(max_entries, LOCKSCOPE_MAX_FILTER_ENTRIES);
} cgroup_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u8);
	__uint(max_entries, LOCKSCOPE_MAX_FILTER_ENTRIES);
} tid_filter SEC(".maps");

/* Indexed by CPU number: 1 keeps the waits that begin there. An array, so the lookup is inlined:
 * user space sizes it to the possible CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u8);
	__uint(max_entries, 1);
} cpu_filter SEC(".maps");


static __always_inline void count(__u32 counter)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &counter);
	if (value)
		__sync_fetch_and_add(value, 1);
}

static __always_inline struct kernfs_node *kernfs_parent(struct kernfs_node *node)
{
	if (bpf_core_field_exists(node->__parent))
		return BPF_CORE_READ(node, __parent);
	return BPF_CORE_READ((struct kernfs_node___parent_before_6_15 *)node, parent);
}

/* The first time a cgroup is seen, keep its name and its ancestors' names, innermost first. */
static __always_inline void remember_cgroup(__u64 cgroup_id)
{
	struct lockscope_cgroup_names *entry;
	struct kernfs_node *node;
	struct task_struct *task;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(&cgroup_names, &cgroup_id))
		return;
	entry = bpf_map_lookup_elem(&cgroup_names_scratch, &zero);
	if (!entry)
		return;
	task = (struct task_struct *)bpf_get_current_task();
	node = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);
	entry->levels = 0;
	entry->truncated = 0;
	for (int level = 0; level < LOCKSCOPE_CGROUP_LEVELS; level++) {
		struct kernfs_node *parent;

		if (!node)
			break;
		parent = kernfs_parent(node);
		if (!parent)
			break; /* the root cgroup: no name of its own */
		bpf_probe_read_kernel_str(entry->names[level], LOCKSCOPE_CGROUP_NAME_LEN, BPF_CORE_READ(node, name));
		entry->levels = level + 1;
		node = parent;
	}
	if (node && kernfs_parent(node))
		entry->truncated = 1;
	long stored = bpf_map_update_elem(&cgroup_names, &cgroup_id, entry, BPF_NOEXIST);
	if (stored == 0)
		count(LOCKSCOPE_CTR_CGROUP_NAMES_ADDED);
	else if (stored != -17 /* -EEXIST: another CPU stored it first */)
		count(LOCKSCOPE_CTR_CGROUP_MAP_FULL);
}

/* The first time a process issues a mount syscall, keep its command line (the current task's own
 * memory, readable in syscall context). */
static __always_inline void remember_args(__u32 pid)
{
	struct lockscope_process_args *entry;
	struct task_struct *task;
	unsigned long start, end;
	__u64 length;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(&process_args, &pid))
		return;
	entry = bpf_map_lookup_elem(&process_args_scratch, &zero);
	if (!entry)
		return;
	task = (struct task_struct *)bpf_get_current_task();
	start = BPF_CORE_READ(task, mm, arg_start);
	end = BPF_CORE_READ(task, mm, arg_end);
	length = end > start ? end - start : 0;
	entry->truncated = length > LOCKSCOPE_ARGS_LEN;
	if (length > LOCKSCOPE_ARGS_LEN)
		length = LOCKSCOPE_ARGS_LEN;
	entry->length = 0;
	if (length > 0 && !bpf_probe_read_user(entry->args, length, (void *)start))
		entry->length = length;
	bpf_map_update_elem(&process_args, &pid, entry, BPF_NOEXIST);
}

/* Batch wake-ups: the reader polls on a timer and is only woken early when data piles up. */
static __always_inline __u64 submit_flags(void)
{
	if (!config.wakeup_bytes)
		return 0;
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= config.wakeup_bytes ? BPF_RB_FORCE_WAKEUP
										  : BPF_RB_NO_WAKEUP;
}

/* The pid, thread and cgroup filters, shared by lock waits and syscalls. */
static __always_inline bool task_selected(__u64 pid_tgid)
{
	__u32 pid = pid_tgid >> 32, tid = (__u32)pid_tgid;

	if ((config.filters & LOCKSCOPE_FILTER_PIDS) && !bpf_map_lookup_elem(&pid_filter, &pid))
		return false;
	if ((config.filters & LOCKSCOPE_FILTER_TIDS) && !bpf_map_lookup_elem(&tid_filter, &tid))
		return false;
	if (config.filters & LOCKSCOPE_FILTER_CGROUPS) {
		__u64 cgroup_id = bpf_get_current_cgroup_id();
		if (!bpf_map_lookup_elem(&cgroup_filter, &cgroup_id))
			return false;
	}
	return true;
}

enum selection { NOT_SELECTED, SELECTED, PROVISIONAL };

/* The lock selection: by address, or by having begun inside a mount-family syscall; or, while user
 * space is learning the addresses, provisionally, for any lock in the kernel's static data. */
static __always_inline enum selection lock_selected(__u64 lock, __u32 tid, const struct task_waits *waits)
{
	const __u32 selectors = LOCKSCOPE_FILTER_LOCK_ADDRS | LOCKSCOPE_FILTER_MOUNT_PATH;
	__u32 zero = 0, *still_learning;

	if (!(config.filters & selectors))
		return SELECTED;
	/* A wait inside a selected wait's slow path (an rwsem's wait_lock) belongs to it. */
	if (waits && waits->depth > 0)
		return SELECTED;
	if ((config.filters & LOCKSCOPE_FILTER_LOCK_ADDRS) && bpf_map_lookup_elem(&lock_filter, &lock))
		return SELECTED;
	if ((config.filters & LOCKSCOPE_FILTER_MOUNT_PATH) && bpf_map_lookup_elem(&open_syscalls, &tid))
		return SELECTED;
	if ((config.filters & LOCKSCOPE_FILTER_KERNEL_DATA) && lock >= LOCKSCOPE_KERNEL_IMAGE_START) {
		still_learning = bpf_map_lookup_elem(&learning, &zero);
		if (still_learning && *still_learning)
			return PROVISIONAL;
	}
	return NOT_SELECTED;
}

/* An open syscall's user stack before its first wait walked it. */
#define USER_STACK_UNWALKED -4
#define BPF_F_USER_STACK (1ULL << 8) /* include/uapi/linux/bpf.h */

/* Whether a wait gets the waiter's user stack, as lockscope_config.user_stacks asks: inside a
 * mount-family syscall (`in_syscall`) for `mount` and `all`, in any task with a user space for `all`. */
static __always_inline bool wants_user_stack(struct open_syscall *in_syscall)
{
	struct task_struct *task;

	if (config.user_stacks == LOCKSCOPE_USER_STACKS_NONE)
		return false;
	if (in_syscall)
		return true;
	if (config.user_stacks != LOCKSCOPE_USER_STACKS_ALL)
		return false;
	task = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(task, mm) != 0; /* a kernel thread has no user space */
}

/* Walks the waiter's user stack into the record (the task is still in the kernel entry the wait happened
 * in, so its user stack is the one it waited with). Inside a mount syscall the stack is the same for
 * every wait of the syscall: it is walked at the first and kept with the syscall. Sets the event's
 * user_frames and user_stack_status; returns whether a stack was kept. */
static __always_inline bool fill_user_stack(void *ctx, struct lockscope_wait_user_event *record,
					    struct open_syscall *in_syscall)
{
	long bytes;
	__s32 frames;

	if (in_syscall) {
		if (in_syscall->user_frames == USER_STACK_UNWALKED) {
			bytes = bpf_get_stack(ctx, in_syscall->user_stack, sizeof(in_syscall->user_stack), BPF_F_USER_STACK);
			in_syscall->user_frames = bytes > 0 ? bytes / sizeof(__u64) : LOCKSCOPE_USER_STACK_FAILED;
		}
		frames = in_syscall->user_frames;
		if (frames > 0)
			__builtin_memcpy(record->user_stack, in_syscall->user_stack, sizeof(record->user_stack));
	} else {
		bytes = bpf_get_stack(ctx, record->user_stack, sizeof(record->user_stack), BPF_F_USER_STACK);
		frames = bytes > 0 ? bytes / sizeof(__u64) : LOCKSCOPE_USER_STACK_FAILED;
	}
	if (frames > 0) {
		record->event.user_frames = frames;
		record->event.user_stack_status = 0;
		return true;
	}
	record->event.user_frames = 0;
	record->event.user_stack_status = LOCKSCOPE_USER_STACK_FAILED;
	count(LOCKSCOPE_CTR_USER_STACK_FAILED);
	return false;
}

/* The ring buffer flags for an event of a process that may have user stacks: its first such event wakes
 * the reader now, because its mappings must be read before it exits (a container's process can live for
 * milliseconds, and its first wait can come in its last syscall); otherwise submit_flags(). A process's
 * first mount-family syscall counts (`wanted`: user stacks asked for), so its mappings are read while it
 * goes on with the others; in `all` mode, so does its first user stack. */
static __always_inline __u64 user_stack_submit_flags(bool wanted, __u32 pid)
{
	static const __u8 seen = 1;

	if (!wanted || bpf_map_lookup_elem(&user_stack_processes, &pid))
		return submit_flags();
	bpf_map_update_elem(&user_stack_processes, &pid, &seen, BPF_ANY);
	return BPF_RB_FORCE_WAKEUP;
}

/* Who holds a mutex, or an rwsem held for writing, when the wait begins (CO-RE reads). */
static __always_inline void read_owner(struct open_wait *wait, __u64 lock, __u32 kind)
{
	unsigned long owner;
	struct task_struct *task;

	if (kind == LOCKSCOPE_KIND_MUTEX) {
		owner = BPF_CORE_READ((struct mutex *)lock, owner.counter);
	} else if (kind == LOCKSCOPE_KIND_RWSEM) {
		owner = BPF_CORE_READ((struct rw_semaphore *)lock, owner.counter);
		if (owner & RWSEM_READER_OWNED)
			return; /* readers hold it: the owner field names only the last one */
	} else {
		return;
	}
	task = (struct task_struct *)(owner & ~OWNER_FLAGS_MASK);
	if (!task)
		return;
	wait->owner_pid = BPF_CORE_READ(task, tgid);
	wait->owner_tid = BPF_CORE_READ(task, pid);
	wait->owner_cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	BPF_CORE_READ_STR_INTO(&wait->owner_comm, task, comm);
}

SEC("raw_tp/contention_begin")
int contention_begin(__u64 *ctx)
{
	__u64 lock = ctx[0];
	__u32 flags = (__u32)ctx[1];
	__u32 kind = lockscope_kind_of(flags);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	__u32 cpu = bpf_get_smp_processor_id();
	struct task_waits *waits;
	struct open_wait *wait;
	enum selection selection;
	__u32 depth;
	__u8 *cpu_kept;

	if (config.kind_mask && !(config.kind_mask & kind))
		return 0;
	/* Cheapest first: the CPU's entry in an array, then the hash lookups of task_selected. */
	if (config.filters & LOCKSCOPE_FILTER_CPUS) {
		cpu_kept = bpf_map_lookup_elem(&cpu_filter, &cpu);
		if (!cpu_kept || !*cpu_kept)
			return 0;
	}
	if (!task_selected(pid_tgid))
		return 0;
	waits = bpf_map_lookup_elem(&open_waits, &tid);
	selection = lock_selected(lock, tid, waits);
	if (selection == NOT_SELECTED)
		return 0;
	if (selection == PROVISIONAL)
		flags |= LOCKSCOPE_WAIT_PROVISIONAL;
	if (!waits) {
		static const struct task_waits empty = {};
		if (bpf_map_update_elem(&open_waits, &tid, &empty, BPF_NOEXIST)) {
			count(LOCKSCOPE_CTR_TASK_MAP_FULL);
			return 0;
		}
		waits = bpf_map_lookup_elem(&open_waits, &tid);
		if (!waits)
			return 0;
	}
	depth = waits->depth;
	/*
	 * A mutex announces its wait twice: it first spins (MUTEX|SPIN), then sleeps (MUTEX) with a second
	 * contention_begin, and ends once. That is one wait, timed from the first begin. Any other lock
	 * begun again while open lost its contention_end (the kernel skips a program that would recurse
	 * into a running one): the old wait is stale and the new one replaces it.
	 */
	if (depth > 0 && depth <= LOCKSCOPE_MAX_NESTING) {
		wait = &waits->waits[(depth - 1) & (LOCKSCOPE_MAX_NESTING - 1)];
		if (wait->lock == lock) {
			if (flags & LOCKSCOPE_LCB_F_MUTEX) {
				wait->flags = flags | (wait->flags & LOCKSCOPE_WAIT_PROVISIONAL);
				return 0;
			}
			depth--;
		}
	}
	if (depth >= LOCKSCOPE_MAX_NESTING) {
		count(LOCKSCOPE_CTR_NESTING_OVERFLOW);
		return 0;
	}
	wait = &waits->waits[depth & (LOCKSCOPE_MAX_NESTING - 1)];
	wait->lock = lock;
	wait->flags = flags;
	wait->begin_cpu = cpu;
	wait->stack_id = bpf_get_stackid(ctx, &stacks, 0);
	wait->owner_pid = 0;
	wait->owner_tid = 0;
	wait->owner_cgroup_id = 0;
	wait->owner_comm[0] = 0;
	if (config.read_owner)
		read_owner(wait, lock, kind);
	waits->depth = depth + 1;
	/* Last, so the wait's own bookkeeping is not part of it. */
	wait->begin_ns = bpf_ktime_get_ns();
	return 0;
}

SEC("raw_tp/contention_end")
int contention_end(__u64 *ctx)
{
	__u64 end_ns = bpf_ktime_get_ns();
	__u64 lock = ctx[0];
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct lockscope_wait_event *event;
	struct lockscope_wait_user_event *with_stack = NULL;
	struct open_syscall *in_syscall;
	struct task_waits *waits;
	struct open_wait wait;
	__u64 outer_lock = 0;
	bool user_stack = false;
	int found = -1;

	waits = bpf_map_lookup_elem(&open_waits, &tid);
	if (!waits)
		return 0;
	/* The innermost open wait on this lock; anything opened after it was abandoned. */
	for (int i = LOCKSCOPE_MAX_NESTING - 1; i >= 0; i--) {
		if (i < waits->depth && waits->waits[i].lock == lock) {
			found = i;
			break;
		}
	}
	if (found < 0)
		return 0;
	wait = waits->waits[found];
	if (found > 0)
		outer_lock = waits->waits[found - 1].lock;
	waits->depth = found;
	if (found == 0)
		bpf_map_delete_elem(&open_waits, &tid);

	if (end_ns - wait.begin_ns < config.min_wait_ns)
		return 0;
	count(LOCKSCOPE_CTR_WAITS_COMPLETED);
	/* Which mount syscall the wait was for: user space ties it to the syscall's paths. */
	in_syscall = bpf_map_lookup_elem(&open_syscalls, &tid);
	if (wants_user_stack(in_syscall)) {
		with_stack = bpf_ringbuf_reserve(&events, sizeof(*with_stack), 0);
		if (!with_stack) {
			count(LOCKSCOPE_CTR_RINGBUF_FULL);
			return 0;
		}
		event = &with_stack->event;
	} else {
		event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
		if (!event) {
			count(LOCKSCOPE_CTR_RINGBUF_FULL);
			return 0;
		}
	}
	if (wait.stack_id < 0)
		count(LOCKSCOPE_CTR_STACK_FAILED);
	event->type = LOCKSCOPE_EVENT_WAIT;
	event->flags = wait.flags;
	event->end_ns = end_ns;
	event->wait_ns = end_ns - wait.begin_ns;
	event->lock_addr = lock;
	event->outer_lock_addr = outer_lock;
	event->cgroup_id = bpf_get_current_cgroup_id();
	remember_cgroup(event->cgroup_id);
	event->owner_cgroup_id = wait.owner_cgroup_id;
	event->syscall_begin_ns = in_syscall ? in_syscall->begin_ns : 0;
	event->pid = pid_tgid >> 32;
	event->tid = tid;
	event->owner_pid = wait.owner_pid;
	event->owner_tid = wait.owner_tid;
	event->stack_id = wait.stack_id;
	event->cpu = bpf_get_smp_processor_id();
	event->ret = (__s32)ctx[1];
	event->begin_cpu = wait.begin_cpu;
	if (with_stack) {
		user_stack = fill_user_stack(ctx, with_stack, in_syscall);
	} else {
		event->user_frames = 0;
		event->user_stack_status = LOCKSCOPE_USER_STACK_NOT_ASKED;
	}
	bpf_get_current_comm(&event->comm, sizeof(event->comm));
	__builtin_memcpy(event->owner_comm, wait.owner_comm, sizeof(event->owner_comm));
	bpf_ringbuf_submit(event, user_stack_submit_flags(user_stack, event->pid));
	return 0;
}

/* Namespace-creating calls count only when they create a mount namespace. `flags_arg` is the
 * argument with their flags: unshare's and clone's first, setns's second, and for clone3 its first,
 * which points at clone_args, whose first field is flags. Other syscalls always count. */
static __always_inline bool creates_mount_namespace(__u32 syscall, __u64 flags_arg)
{
	__u64 flags = 0;

	switch (syscall) {
	case LOCKSCOPE_SYS_UNSHARE:
	case LOCKSCOPE_SYS_CLONE:
	case LOCKSCOPE_SYS_SETNS:
		flags = flags_arg;
		break;
	case LOCKSCOPE_SYS_CLONE3:
		if (bpf_probe_read_user(&flags, sizeof(flags), (void *)flags_arg))
			return false;
		break;
	default:
		return true;
	}
	return flags & CLONE_NEWNS;
}

/* Reads the user string at `address` into `buffer` (`size` bytes with the NUL): true when it was cut
 * short. An absent argument (NULL) or an unreadable one leaves the buffer empty. */
static __always_inline bool read_user_string(char *buffer, __u32 size, const char *address)
{
	char next = 0;
	long length;

	buffer[0] = 0;
	if (!address)
		return false;
	length = bpf_probe_read_user_str(buffer, size, address);
	if (length < 0) {
		buffer[0] = 0;
		return false;
	}
	/* A full buffer either held the string exactly or cut it: the byte that did not fit tells. */
	return length == size && !bpf_probe_read_user(&next, 1, address + size - 1) && next != 0;
}

/* A mount-family syscall begins: remember it for the thread, with the arguments that say what it is
 * for (this is also what marks the thread as "on a mount path" for LOCKSCOPE_FILTER_MOUNT_PATH).
 * Not inlined: one copy serves every syscall program. */
static __noinline int begin_syscall(__u32 syscall, __u64 flags_arg, __s64 fd, const char *path, const char *data)
{
	static const struct open_syscall empty = {};
	struct open_syscall *open;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid;

	if (!task_selected(pid_tgid))
		return 0;
	if (!creates_mount_namespace(syscall, flags_arg))
		return 0;
	remember_args(pid_tgid >> 32);
	tid = (__u32)pid_tgid;
	/* The value is too big for the BPF stack: insert an empty one, then fill it in place. */
	if (bpf_map_update_elem(&open_syscalls, &tid, &empty, BPF_ANY)) {
		count(LOCKSCOPE_CTR_SYSCALL_MAP_FULL);
		return 0;
	}
	open = bpf_map_lookup_elem(&open_syscalls, &tid);
	if (!open)
		return 0;
	open->syscall = syscall;
	open->user_frames = USER_STACK_UNWALKED;
	open->fd = (__s32)fd;
	open->truncated = 0;
	if (read_user_string(open->path, sizeof(open->path), path))
		open->truncated |= LOCKSCOPE_TRUNCATED_PATH;
	if (read_user_string(open->data, sizeof(open->data), data))
		open->truncated |= LOCKSCOPE_TRUNCATED_DATA;
	/* Only a cut path loses anything: of the options, attribution needs the first lowerdir entry. */
	if (open->truncated & LOCKSCOPE_TRUNCATED_PATH)
		count(LOCKSCOPE_CTR_PATH_TRUNCATED);
	/* Last, so reading the arguments is not part of the syscall's time. */
	open->begin_ns = bpf_ktime_get_ns();
	return 0;
}

/* Whether a syscall's record keeps the working directory: mount(2)'s relative overlay options (and a
 * relative target) are resolved against it, as is a relative fsconfig value (`lowerdir+=`). A mount
 * without options and with an absolute target (a propagation change, a remount) has nothing relative. */
static __always_inline bool wants_cwd(const struct open_syscall *open)
{
	bool relative_path = open->path[0] && open->path[0] != '/';

	if (open->syscall == LOCKSCOPE_SYS_MOUNT)
		return open->data[0] || relative_path;
	return open->syscall == LOCKSCOPE_SYS_FSCONFIG && relative_path;
}

/* Mount roots climbed at most between two names (a directory on which mounts are stacked). */
#define CWD_MOUNT_CLIMBS 4

/* The current task's working directory's last LOCKSCOPE_CWD_LEVELS names into the record, innermost
 * first, as d_path walks it: a mount's root dentry is named by its mountpoint in the parent mount.
 * Three reads per name (the parent, the name's length and address, the name) and two per mount crossed. */
static __always_inline void read_cwd(struct lockscope_syscall_event *event)
{
	struct task_struct___fs *task = (struct task_struct___fs *)bpf_get_current_task();
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	struct dentry *dentry, *parent, *mnt_root;
	struct mount *mnt, *mnt_parent;
	struct path pwd;
	struct qstr name;

	event->cwd_levels = 0;
	event->cwd_complete = 0;
	if (!fs || BPF_CORE_READ_INTO(&pwd, fs, pwd) || !pwd.dentry || !pwd.mnt)
		return;
	dentry = pwd.dentry;
	mnt = (struct mount *)((void *)pwd.mnt - bpf_core_field_offset(struct mount, mnt));
	mnt_root = BPF_CORE_READ(mnt, mnt.mnt_root);
	for (int level = 0; level < LOCKSCOPE_CWD_LEVELS; level++) {
		for (int climb = 0; climb < CWD_MOUNT_CLIMBS && dentry == mnt_root; climb++) {
			mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
			if (mnt_parent == mnt) {
				event->cwd_complete = 1; /* the namespace's root mount's root: the whole path is kept */
				return;
			}
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = mnt_parent;
			mnt_root = BPF_CORE_READ(mnt, mnt.mnt_root);
		}
		parent = BPF_CORE_READ(dentry, d_parent);
		if (!parent || parent == dentry) {
			event->cwd_complete = 1;
			return;
		}
		if (BPF_CORE_READ_INTO(&name, dentry, d_name) ||
		    bpf_probe_read_kernel_str(event->cwd[level], LOCKSCOPE_CWD_NAME_LEN, name.name) < 0)
			return;
		if ((name.hash_len >> 32) >= LOCKSCOPE_CWD_NAME_LEN) {
			event->truncated |= LOCKSCOPE_TRUNCATED_CWD;
			count(LOCKSCOPE_CTR_PATH_TRUNCATED);
		}
		event->cwd_levels = level + 1;
		dentry = parent;
	}
	/* Names above these were left out, unless the walk stops right here. */
}

/* A syscall that may be one `begin_syscall` remembered ends with `ret`: send it. Not inlined either. */
static __noinline int end_syscall(__s64 ret)
{
	struct lockscope_syscall_event *event;
	struct open_syscall *open;
	__u64 end_ns = bpf_ktime_get_ns();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	bool cwd;

	open = bpf_map_lookup_elem(&open_syscalls, &tid);
	if (!open)
		return 0;
	count(LOCKSCOPE_CTR_SYSCALLS_COMPLETED);
	/* A record as long as its strings need: most syscalls of a storm (open_tree, mount_setattr) have none,
	 * and only mount has options and the working directory. (The reserved size must be a constant: one
	 * reserve per length.) */
	cwd = wants_cwd(open);
	if (cwd) {
		event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
		if (event) {
			__builtin_memcpy(event->path, open->path, sizeof(event->path));
			__builtin_memcpy(event->data, open->data, sizeof(event->data));
		}
	} else if (open->data[0]) {
		event = bpf_ringbuf_reserve(&events, __builtin_offsetof(struct lockscope_syscall_event, cwd_levels), 0);
		if (event) {
			__builtin_memcpy(event->path, open->path, sizeof(event->path));
			__builtin_memcpy(event->data, open->data, sizeof(event->data));
		}
	} else if (open->path[0]) {
		event = bpf_ringbuf_reserve(&events, __builtin_offsetof(struct lockscope_syscall_event, data), 0);
		if (event)
			__builtin_memcpy(event->path, open->path, sizeof(event->path));
	} else {
		event = bpf_ringbuf_reserve(&events, __builtin_offsetof(struct lockscope_syscall_event, path), 0);
	}
	if (!event) {
		count(LOCKSCOPE_CTR_SYSCALL_RINGBUF_FULL);
		bpf_map_delete_elem(&open_syscalls, &tid);
		return 0;
	}
	event->type = LOCKSCOPE_EVENT_SYSCALL;
	event->syscall = open->syscall;
	event->end_ns = end_ns;
	event->latency_ns = end_ns - open->begin_ns;
	event->cgroup_id = bpf_get_current_cgroup_id();
	remember_cgroup(event->cgroup_id);
	event->ret = ret;
	event->pid = pid_tgid >> 32;
	event->tid = tid;
	event->fd = open->fd;
	event->truncated = open->truncated;
	if (cwd)
		read_cwd(event);
	bpf_get_current_comm(&event->comm, sizeof(event->comm));
	bpf_map_delete_elem(&open_syscalls, &tid);
	bpf_ringbuf_submit(event, user_stack_submit_flags(config.user_stacks != LOCKSCOPE_USER_STACKS_NONE, event->pid));
	return 0;
}

/*
 * The per-syscall tracepoints: each runs only for its own syscall. Their records, as
 * tracefs events/syscalls/sys_{enter,exit}_NAME/format lays them out: 8 bytes of common fields,
 * the syscall number, then the arguments (or the return value) as 8-byte fields from offset 16.
 * A record holds only its syscall's arguments, and the kernel refuses to attach a program that
 * reads past them (EACCES), so each program reads at most the one argument it needs.
 */
struct syscall_enter_record {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 args[6];
};

struct syscall_exit_record {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__s64 ret;
};

/* `args` is begin_syscall's arguments after the syscall: its flags argument, fd, path and data, as
 * expressions of `record->args[...]` (only those the syscall has). */
#define SYSCALL_TRACEPOINTS(name, syscall, flags_arg, fd, path, data)             \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                \
	int enter_##name(struct syscall_enter_record *record)                     \
	{                                                                          \
		return begin_syscall(syscall, flags_arg, fd, (const char *)(path),  \
				     (const char *)(data));                         \
	}                                                                          \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                 \
	int exit_##name(struct syscall_exit_record *record)                       \
	{                                                                          \
		return end_syscall(record->ret);                                   \
	}

#define NO_FD -1
#define NO_STRING 0
#define FSCONFIG_SET_STRING 1

/* The names are the kernel's SYSCALL_DEFINE names (umount2 is `umount`); user space attaches them
 * through the skeleton (BPFProgram.tracepointPrograms). Arguments as the table above
 * `struct lockscope_syscall_event` lists them. */
SYSCALL_TRACEPOINTS(mount, LOCKSCOPE_SYS_MOUNT, 0, NO_FD, record->args[1], record->args[4])
SYSCALL_TRACEPOINTS(umount, LOCKSCOPE_SYS_UMOUNT2, 0, NO_FD, record->args[0], NO_STRING)
SYSCALL_TRACEPOINTS(open_tree, LOCKSCOPE_SYS_OPEN_TREE, 0, record->args[0], NO_STRING, NO_STRING)
SYSCALL_TRACEPOINTS(move_mount, LOCKSCOPE_SYS_MOVE_MOUNT, 0, record->args[0], record->args[3], record->args[1])
SYSCALL_TRACEPOINTS(mount_setattr, LOCKSCOPE_SYS_MOUNT_SETATTR, 0, record->args[0], record->args[1], NO_STRING)
SYSCALL_TRACEPOINTS(fsopen, LOCKSCOPE_SYS_FSOPEN, 0, NO_FD, record->args[0], NO_STRING)
SYSCALL_TRACEPOINTS(fsconfig, LOCKSCOPE_SYS_FSCONFIG, 0, record->args[0],
		    record->args[1] == FSCONFIG_SET_STRING ? record->args[3] : 0, record->args[2])
SYSCALL_TRACEPOINTS(fsmount, LOCKSCOPE_SYS_FSMOUNT, 0, record->args[0], NO_STRING, NO_STRING)
SYSCALL_TRACEPOINTS(fspick, LOCKSCOPE_SYS_FSPICK, 0, record->args[0], record->args[1], NO_STRING)
SYSCALL_TRACEPOINTS(unshare, LOCKSCOPE_SYS_UNSHARE, record->args[0], NO_FD, NO_STRING, NO_STRING)
SYSCALL_TRACEPOINTS(clone, LOCKSCOPE_SYS_CLONE, record->args[0], NO_FD, NO_STRING, NO_STRING)
SYSCALL_TRACEPOINTS(clone3, LOCKSCOPE_SYS_CLONE3, record->args[0], NO_FD, NO_STRING, NO_STRING)
SYSCALL_TRACEPOINTS(setns, LOCKSCOPE_SYS_SETNS, record->args[1], NO_FD, NO_STRING, NO_STRING)

/* The fallback: raw_syscalls, on every syscall of the host. */

/* The lockscope_mount_syscall that syscall number `id` is, or 0 for one lockscope does not account for. */
static __always_inline __u32 mount_syscall(long id)
{
	__u32 key, *syscall;

	if (id < 0 || id >= LOCKSCOPE_MAX_SYSCALL_NR)
		return 0;
	key = id;
	syscall = bpf_map_lookup_elem(&syscall_table, &key);
	return syscall ? *syscall : 0;
}

/* begin_syscall with the arguments from the registers (x86-64: di, si, dx, r10, r8), as the
 * per-syscall tracepoints pass them. */
static __always_inline int begin_raw_syscall(__u32 syscall, struct pt_regs *regs)
{
	__u64 arg0 = BPF_CORE_READ(regs, di), arg1 = BPF_CORE_READ(regs, si);

	switch (syscall) {
	case LOCKSCOPE_SYS_MOUNT:
		return begin_syscall(syscall, 0, NO_FD, (const char *)arg1, (const char *)BPF_CORE_READ(regs, r8));
	case LOCKSCOPE_SYS_UMOUNT2:
	case LOCKSCOPE_SYS_FSOPEN:
		return begin_syscall(syscall, 0, NO_FD, (const char *)arg0, NO_STRING);
	case LOCKSCOPE_SYS_OPEN_TREE:
		return begin_syscall(syscall, 0, arg0, NO_STRING, NO_STRING);
	case LOCKSCOPE_SYS_MOUNT_SETATTR:
	case LOCKSCOPE_SYS_FSPICK:
		return begin_syscall(syscall, 0, arg0, (const char *)arg1, NO_STRING);
	case LOCKSCOPE_SYS_MOVE_MOUNT:
		return begin_syscall(syscall, 0, arg0, (const char *)BPF_CORE_READ(regs, r10), (const char *)arg1);
	case LOCKSCOPE_SYS_FSCONFIG:
		return begin_syscall(syscall, 0, arg0,
				     arg1 == FSCONFIG_SET_STRING ? (const char *)BPF_CORE_READ(regs, r10) : NO_STRING,
				     (const char *)BPF_CORE_READ(regs, dx));
	case LOCKSCOPE_SYS_FSMOUNT:
		return begin_syscall(syscall, 0, arg0, NO_STRING, NO_STRING);
	case LOCKSCOPE_SYS_SETNS:
		return begin_syscall(syscall, arg1, NO_FD, NO_STRING, NO_STRING);
	default:
		return begin_syscall(syscall, arg0, NO_FD, NO_STRING, NO_STRING);
	}
}

SEC("raw_tp/sys_enter")
int syscall_enter(__u64 *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	__u32 syscall = mount_syscall((long)ctx[1]);

	if (!syscall)
		return 0;
	return begin_raw_syscall(syscall, regs);
}

SEC("raw_tp/sys_exit")
int syscall_exit(__u64 *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	long id;

	/* This runs after every syscall on the host and almost none are ours: rule them out by number
	 * (an array lookup) before anything else. When the number cannot be read (BPF_PROG_TEST_RUN
	 * passes no registers), the hash lookup in end_syscall decides alone. */
	if (!bpf_core_read(&id, sizeof(id), &regs->orig_ax) && !mount_syscall(id))
		return 0;
	return end_syscall((__s64)ctx[1]);
}
