/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one layout shared by the BPF programs (bpf/lockscope.bpf.c) and the Swift collector
 * (imported through the CLockscopeBPF module). Change it in one place, run `make bpf`.
 *
 * Everything the kernel sends to user space goes through one BPF ring buffer as records that
 * start with a `__u32 type`; everything user space tells the kernel goes through the read-only
 * `lockscope_config` (set before load) and a few small filter maps.
 */
#ifndef LOCKSCOPE_H
#define LOCKSCOPE_H

#ifndef __BPF__
#include <linux/types.h>
#endif

#define LOCKSCOPE_COMM_LEN 16
/* How many contended waits one task can have open at once (a spinlock inside an rwsem slow path...). */
#define LOCKSCOPE_MAX_NESTING 4
/* Kernel frames kept per stack (at most: user space may set a smaller value size on the `stacks` map,
 * `record --max-stack`, which also shortens the kernel's walk), and distinct stacks kept per recording. */
#define LOCKSCOPE_MAX_STACK_DEPTH 48
#define LOCKSCOPE_MAX_STACKS 16384
/* User frames kept per user stack (walked by frame pointer). */
#define LOCKSCOPE_MAX_USER_STACK_DEPTH 32
/* Tasks with an open wait or an open mount-family syscall, at once. */
#define LOCKSCOPE_MAX_TASKS 16384
/* Entries in each filter map (lock addresses, pids, thread ids, cgroups). */
#define LOCKSCOPE_MAX_FILTER_ENTRIES 1024
/* Cgroups whose names are kept, and how much of each name. */
#define LOCKSCOPE_MAX_CGROUPS 4096
#define LOCKSCOPE_CGROUP_LEVELS 5
#define LOCKSCOPE_CGROUP_NAME_LEN 128
/* Syscall numbers covered by the mount-syscall table. */
#define LOCKSCOPE_MAX_SYSCALL_NR 512
/* Mount-family syscalls open at once (each keeps its paths until it returns). */
#define LOCKSCOPE_MAX_OPEN_SYSCALLS 4096
/* Bytes kept (with the NUL) of a mount-family syscall's path argument, and of mount(2)'s data
 * (the options: an overlay's lowerdir= comes after its upperdir= and workdir=). */
#define LOCKSCOPE_PATH_LEN 256
#define LOCKSCOPE_DATA_LEN 512

/* Processes whose command lines are kept (mount syscall issuers), and how much of each. */
#define LOCKSCOPE_MAX_PROCESSES 4096
#define LOCKSCOPE_ARGS_LEN 256

/* Contention flags from include/trace/events/lock.h. */
#define LOCKSCOPE_LCB_F_SPIN (1U << 0)
#define LOCKSCOPE_LCB_F_READ (1U << 1)
#define LOCKSCOPE_LCB_F_WRITE (1U << 2)
#define LOCKSCOPE_LCB_F_RT (1U << 3)
#define LOCKSCOPE_LCB_F_PERCPU (1U << 4)
#define LOCKSCOPE_LCB_F_MUTEX (1U << 5)

/* Lock kinds, as bits so a set of kinds fits in `lockscope_config.kind_mask`. */
enum lockscope_kind {
	LOCKSCOPE_KIND_SPINLOCK = 1 << 0,
	LOCKSCOPE_KIND_RWLOCK = 1 << 1,
	LOCKSCOPE_KIND_RWSEM = 1 << 2,
	LOCKSCOPE_KIND_MUTEX = 1 << 3,
	LOCKSCOPE_KIND_RTMUTEX = 1 << 4,
	LOCKSCOPE_KIND_PERCPU_RWSEM = 1 << 5,
	LOCKSCOPE_KIND_OTHER = 1 << 6,
};

/* The kind of lock a contention_begin's flags describe; used by both sides so they always agree. */
static inline __u32 lockscope_kind_of(__u32 flags)
{
	if (flags & LOCKSCOPE_LCB_F_PERCPU)
		return LOCKSCOPE_KIND_PERCPU_RWSEM;
	if (flags & LOCKSCOPE_LCB_F_MUTEX)
		return LOCKSCOPE_KIND_MUTEX;
	if (flags & LOCKSCOPE_LCB_F_RT)
		return LOCKSCOPE_KIND_RTMUTEX;
	if (flags & LOCKSCOPE_LCB_F_SPIN)
		return (flags & (LOCKSCOPE_LCB_F_READ | LOCKSCOPE_LCB_F_WRITE)) ? LOCKSCOPE_KIND_RWLOCK
									      : LOCKSCOPE_KIND_SPINLOCK;
	if (flags & (LOCKSCOPE_LCB_F_READ | LOCKSCOPE_LCB_F_WRITE))
		return LOCKSCOPE_KIND_RWSEM;
	return LOCKSCOPE_KIND_OTHER;
}

/* Which filters are on (`lockscope_config.filters`). */
enum lockscope_filter {
	/* Keep a wait only if its lock address is in `lock_filter`... */
	LOCKSCOPE_FILTER_LOCK_ADDRS = 1 << 0,
	/* ...or (when both are set: either) if it began inside a mount-family syscall. */
	LOCKSCOPE_FILTER_MOUNT_PATH = 1 << 1,
	/* Keep only tasks whose tgid is in `pid_filter`. */
	LOCKSCOPE_FILTER_PIDS = 1 << 2,
	/* Keep only tasks whose cgroup v2 id is in `cgroup_filter`. */
	LOCKSCOPE_FILTER_CGROUPS = 1 << 3,
	/* With LOCK_ADDRS: until user space has found every lock it selects by name (the `learning` map
	 * holds 1 until then), also keep waits on locks in the kernel image's static data (where
	 * namespace_sem and mount_lock are), flagged LOCKSCOPE_WAIT_PROVISIONAL: user space keeps those on
	 * the locks it then recognises and drops the others. No wait on them is lost before they are named. */
	LOCKSCOPE_FILTER_KERNEL_DATA = 1 << 4,
	/* Keep only waits that began on a CPU whose `cpu_filter` entry is 1 (perf lock contention -C). */
	LOCKSCOPE_FILTER_CPUS = 1 << 5,
	/* Keep only threads whose id is in `tid_filter` (perf lock contention --tid). */
	LOCKSCOPE_FILTER_TIDS = 1 << 6,
};

/* In a wait event's `flags`, above the contention flags: kept only by LOCKSCOPE_FILTER_KERNEL_DATA. */
#define LOCKSCOPE_WAIT_PROVISIONAL (1U << 31)
/* Where x86-64 maps the kernel image and modules: their static data lies above, the heap below. */
#define LOCKSCOPE_KERNEL_IMAGE_START 0xffffffff80000000ULL

/* Set by user space in .rodata before the programs are loaded. */
struct lockscope_config {
	__u64 min_wait_ns;    /* drop waits shorter than this */
	__u32 kind_mask;      /* lockscope_kind bits to keep; 0 keeps every kind */
	__u32 filters;        /* lockscope_filter bits */
	__u64 wakeup_bytes;   /* wake the reader once this much data waits in the ring buffer */
	__u32 read_owner;     /* read mutex / rwsem owners at contention begin (1) or not (0) */
	__u32 user_stacks;    /* lockscope_user_stacks: which waits get the waiter's user stack */
};

/* Which waits get the waiter's user stack (`record --user-stacks`). */
enum lockscope_user_stacks {
	LOCKSCOPE_USER_STACKS_NONE = 0,
	/* Waits inside mount-family syscalls: there the waiter is the syscall's issuer, and its user stack
	 * is the issuer's call path into the syscall. Walked once per syscall, at its first wait's end. */
	LOCKSCOPE_USER_STACKS_MOUNT = 1,
	/* Every wait of a task with a user space (kernel threads have none). */
	LOCKSCOPE_USER_STACKS_ALL = 2,
};

/* A wait event's `user_stack_status`: 0 with a user stack, otherwise why it has none. */
enum lockscope_user_stack_missing {
	LOCKSCOPE_USER_STACK_NOT_ASKED = -1, /* not asked for (--user-stacks), or a kernel thread */
	LOCKSCOPE_USER_STACK_FAILED = -2,    /* the walk gave no frame */
};

/* Per-CPU counters (`counters` map), summed by user space. Every way to lose data has one. */
enum lockscope_counter {
	LOCKSCOPE_CTR_WAITS_COMPLETED = 0, /* waits that passed every filter: each becomes an event or a drop */
	LOCKSCOPE_CTR_RINGBUF_FULL,        /* events lost: no room in the ring buffer */
	LOCKSCOPE_CTR_TASK_MAP_FULL,       /* waits lost: no room to remember the task's open wait */
	LOCKSCOPE_CTR_NESTING_OVERFLOW,    /* waits lost: more than LOCKSCOPE_MAX_NESTING open at once */
	LOCKSCOPE_CTR_STACK_FAILED,        /* events sent without a stack (stack map full or capture failed) */
	LOCKSCOPE_CTR_SYSCALLS_COMPLETED,  /* mount-family syscalls seen: each becomes an event or a drop */
	LOCKSCOPE_CTR_SYSCALL_RINGBUF_FULL,/* syscall events lost: no room in the ring buffer */
	LOCKSCOPE_CTR_SYSCALL_MAP_FULL,    /* syscalls lost: no room to remember the open syscall */
	LOCKSCOPE_CTR_CGROUP_MAP_FULL,     /* cgroup names that could not be stored (not counted as evictions) */
	LOCKSCOPE_CTR_CGROUP_NAMES_ADDED,  /* cgroup names stored; minus those still stored = evicted (LRU) */
	LOCKSCOPE_CTR_PATH_TRUNCATED,      /* syscall path arguments cut at LOCKSCOPE_PATH_LEN, and working-directory names
	                                    * at LOCKSCOPE_CWD_NAME_LEN (options cut are not counted) */
	LOCKSCOPE_CTR_USER_STACK_FAILED,   /* events sent without the user stack asked for: the walk failed */
	LOCKSCOPE_CTR_COUNT,
};

enum lockscope_event_type {
	LOCKSCOPE_EVENT_WAIT = 1,
	LOCKSCOPE_EVENT_SYSCALL = 2,
};

/* One completed contended wait, sent at contention_end. */
struct lockscope_wait_event {
	__u32 type;              /* LOCKSCOPE_EVENT_WAIT */
	__u32 flags;             /* LCB_F_* flags from contention_begin, and LOCKSCOPE_WAIT_PROVISIONAL */
	__u64 end_ns;            /* bpf_ktime_get_ns() at contention_end (CLOCK_MONOTONIC) */
	__u64 wait_ns;           /* contention_end - contention_begin */
	__u64 lock_addr;
	__u64 outer_lock_addr;   /* the lock whose slow path this wait happened in, or 0 */
	__u64 cgroup_id;         /* cgroup v2 id (inode number) of the waiter */
	__u64 owner_cgroup_id;   /* the owner's cgroup v2 id, when the owner is known */
	__u64 syscall_begin_ns;  /* start of the mount-family syscall the waiter was in, 0 outside one */
	__u32 pid;               /* waiter tgid */
	__u32 tid;               /* waiter thread id */
	__u32 owner_pid;         /* owner tgid at contention_begin, 0 when unknown */
	__u32 owner_tid;
	__s32 stack_id;          /* id in the `stacks` map; negative when no stack was captured */
	__u32 cpu;               /* CPU that acquired the lock (at contention_end) */
	__s32 ret;               /* contention_end's ret: 0 acquired, negative errno otherwise */
	__u32 begin_cpu;         /* CPU where the wait began */
	char comm[LOCKSCOPE_COMM_LEN];
	char owner_comm[LOCKSCOPE_COMM_LEN];
	__u32 user_frames;       /* return addresses in the user stack after the event (lockscope_wait_user_event), or 0 */
	__s32 user_stack_status; /* 0 with a user stack, else lockscope_user_stack_missing */
};

/* A wait event with the waiter's user stack (`event.user_frames` > 0): the record is this long, the
 * addresses innermost first (where the task entered the kernel), as the kernel walked them by frame
 * pointer, zero past `user_frames`. A copy in each event rather than an id in a stack map: a storm's
 * processes each have their own addresses (ASLR), so their stacks are many, and a stack map refuses
 * one whose hash bucket another took (6.8% of a 100-container storm's waits lost theirs, measured). */
struct lockscope_wait_user_event {
	struct lockscope_wait_event event;
	__u64 user_stack[LOCKSCOPE_MAX_USER_STACK_DEPTH];
};

/*
 * The names of a cgroup and its ancestors, innermost first (`cgroup_names` map, keyed by cgroup id),
 * recorded the first time the cgroup is seen: containers remove their cgroups when they exit, often
 * before user space could look the id up, so the kernel keeps what identifies the container.
 */
struct lockscope_cgroup_names {
	__u32 levels;    /* valid entries in `names` */
	__u32 truncated; /* 1 when ancestors above the last name were left out */
	char names[LOCKSCOPE_CGROUP_LEVELS][LOCKSCOPE_CGROUP_NAME_LEN];
};

/*
 * The command line of a process that issued a mount-family syscall (`process_args` map, keyed by
 * tgid), kept the first time it issues one: a containerd shim's `-id` names the pod it serves, and a
 * shim can be gone before user space could read /proc/<pid>/cmdline.
 */
struct lockscope_process_args {
	__u32 length;    /* bytes of `args` used: NUL-separated arguments, as /proc/<pid>/cmdline */
	__u32 truncated; /* 1 when the command line was longer than LOCKSCOPE_ARGS_LEN */
	char args[LOCKSCOPE_ARGS_LEN];
};

/* Mount-family syscalls, as indices (user space maps syscall numbers of its arch to these). */
enum lockscope_mount_syscall {
	LOCKSCOPE_SYS_MOUNT = 1,
	LOCKSCOPE_SYS_UMOUNT2,
	LOCKSCOPE_SYS_OPEN_TREE,
	LOCKSCOPE_SYS_MOVE_MOUNT,
	LOCKSCOPE_SYS_MOUNT_SETATTR,
	LOCKSCOPE_SYS_FSOPEN,
	LOCKSCOPE_SYS_FSCONFIG,
	LOCKSCOPE_SYS_FSMOUNT,
	LOCKSCOPE_SYS_FSPICK,
	LOCKSCOPE_SYS_UNSHARE,   /* counted only with CLONE_NEWNS */
	LOCKSCOPE_SYS_CLONE,     /* counted only with CLONE_NEWNS */
	LOCKSCOPE_SYS_CLONE3,    /* counted only with CLONE_NEWNS */
	LOCKSCOPE_SYS_SETNS,     /* counted only with CLONE_NEWNS */
	LOCKSCOPE_SYS_COUNT,
};

/* Which of a syscall event's strings were cut short. */
enum lockscope_truncated {
	LOCKSCOPE_TRUNCATED_PATH = 1 << 0,
	LOCKSCOPE_TRUNCATED_DATA = 1 << 1,
	LOCKSCOPE_TRUNCATED_CWD = 1 << 2, /* a working-directory name was longer than LOCKSCOPE_CWD_NAME_LEN - 1 */
};

/* The working directory's last components a syscall event keeps (mount(2) with options or a relative
 * target; fsconfig with a relative value), and how much of each name (with the NUL). When an overlay's
 * options near a page, containerd chdirs into the lower directories' common parent and names them
 * relative to it: the options then name no `ovl-idmapped` directory, the working directory does. That
 * directory can be a mount's root (an idmapped bind of the snapshots directory): the walk climbs to the
 * mountpoint's name, as a path lookup of `..` would. */
#define LOCKSCOPE_CWD_LEVELS 8
#define LOCKSCOPE_CWD_NAME_LEN 64

/*
 * One completed mount-family syscall, sent at sys_exit, with the arguments that say what it was for.
 * `fd` and the two strings, per syscall (empty or -1 where the syscall has no such argument):
 *   mount         path: target       data: options (data argument)
 *   umount2       path: target
 *   open_tree                        fd: dfd           (ret: the new mount's fd; its path is not kept)
 *   move_mount    path: to_pathname  fd: from_dfd      data: from_pathname
 *   mount_setattr path: path         fd: dfd
 *   fsopen        path: fs name                        (ret: the fs context's fd)
 *   fsconfig      path: value (FSCONFIG_SET_STRING)    fd: fs fd   data: key
 *   fsmount                          fd: fs fd         (ret: the mount's fd)
 *   fspick        path: path         fd: dfd
 * and `cwd`, the working directory's last names, for a mount with options or a relative target and for
 * an fsconfig with a relative value.
 */
/* The record ends where its strings do: before `path` when both are empty, before `data` when only the
 * path is set, before `cwd_levels` when there is no working directory (user space reads what is missing
 * as empty). */
struct lockscope_syscall_event {
	__u32 type;              /* LOCKSCOPE_EVENT_SYSCALL */
	__u32 syscall;           /* lockscope_mount_syscall */
	__u64 end_ns;
	__u64 latency_ns;        /* end_ns - begin; the begin is what waits inside it carry as syscall_begin_ns */
	__u64 cgroup_id;
	__s64 ret;
	__u32 pid;
	__u32 tid;
	__s32 fd;
	__u32 truncated;         /* lockscope_truncated bits */
	char comm[LOCKSCOPE_COMM_LEN];
	char path[LOCKSCOPE_PATH_LEN];
	char data[LOCKSCOPE_DATA_LEN];
	__u32 cwd_levels;        /* valid entries in `cwd`: 0 when not kept */
	__u32 cwd_complete;      /* 1 when `cwd` reaches the mount namespace's root (the whole path) */
	char cwd[LOCKSCOPE_CWD_LEVELS][LOCKSCOPE_CWD_NAME_LEN]; /* the working directory's names, innermost first */
};

#endif /* LOCKSCOPE_H */

/* The open waits of each task (`open_waits`, keyed by thread id), in the header because the on-CPU
 * sampler (bpf/lockscope_spin.bpf.c) reads the same map (user space hands it over with
 * bpf_map__reuse_fd) to tell whether a sampled task is inside a traced wait. */
/* A wait between contention_begin and contention_end. */
struct open_wait {
	__u64 lock;
	__u64 begin_ns;
	__u64 owner_cgroup_id;
	__u32 flags;
	__s32 stack_id;
	__u32 owner_pid;
	__u32 owner_tid;
	__u32 begin_cpu;
	__u32 pad;
	char owner_comm[LOCKSCOPE_COMM_LEN];
};

/* The open waits of one task, innermost last: a spinlock taken inside an rwsem slow path nests. */
struct task_waits {
	__u32 depth;
	__u32 pad;
	struct open_wait waits[LOCKSCOPE_MAX_NESTING];
};

/*
 * Sampled on-CPU time (bpf/lockscope_spin.bpf.c, a separate object loaded only when `record --spin-hz`
 * is not 0): a cpu-clock perf event on every CPU runs `spin_sample`, which counts the sample into the
 * `spin_samples` hash map under a key of (kernel stack, CPU, cgroup, process, flags). Samples are
 * aggregated in the kernel rather than streamed: one map update per sample, nothing per sample for user
 * space to read, and memory bounded by the map (a full map is counted, never silent). User space reads
 * the map once, when the recording stops, and classifies each stack (known spin function, PAUSE loop,
 * not spinning).
 */
#ifndef LOCKSCOPE_SPIN_H
#define LOCKSCOPE_SPIN_H

/* Distinct (CPU, cgroup, process, flags, thread name, mount syscall, kernel stack) keys kept. The stack is part of the
 * key, not an id in a stack-trace map: bpf_get_stackid fails for good on a stack whose hash bucket another
 * stack took first, so on a busy host every sample of such a stack would be lost. 32768 keys of 464 bytes. */
#define LOCKSCOPE_MAX_SPIN_KEYS 32768

/* `lockscope_spin_key.flags`. */
enum lockscope_spin_flag {
	LOCKSCOPE_SPIN_F_USER = 1 << 0,  /* the CPU was in user mode: no kernel stack */
	LOCKSCOPE_SPIN_F_PAUSE = 1 << 1, /* the instruction at or just before the sampled IP is PAUSE (f3 90) */
	/* a kernel sample of a task inside a traced wait (an entry of depth > 0 in `open_waits`): its time
	 * is already counted in that wait, between contention_begin and contention_end */
	LOCKSCOPE_SPIN_F_IN_WAIT = 1 << 2,
};

struct lockscope_spin_key {
	__u32 frames;     /* valid entries in `stack`: 0 in user mode or when the walk failed */
	__u32 cpu;
	__u64 cgroup_id;  /* cgroup v2 id of the task on the CPU */
	__u32 tgid;
	__u32 flags;      /* lockscope_spin_flag */
	char comm[LOCKSCOPE_COMM_LEN]; /* the thread's: threads of one process can be named apart */
	/* Inside a mount-family syscall (an entry in `open_syscalls`): its thread id and begin time, as the
	 * syscall's event has them; 0 outside one, and when the map had no room for a key with them. */
	__u32 syscall_tid;
	__u32 pad;
	__u64 syscall_begin_ns;
	__u64 stack[LOCKSCOPE_MAX_STACK_DEPTH]; /* kernel stack, innermost (the sampled IP) first; zero past `frames` */
};

struct lockscope_spin_value {
	__u64 count;
};

/* Per-CPU counters of the sampler (`spin_counters` map). Every sample is counted once in SAMPLES
 * and once in exactly one of IDLE / FILTERED / USER / KERNEL; the others count losses, PAUSE hits and
 * kernel samples inside traced waits. */
enum lockscope_spin_counter {
	LOCKSCOPE_SPIN_CTR_SAMPLES = 0,     /* every sample taken */
	LOCKSCOPE_SPIN_CTR_IDLE,            /* the idle task was on the CPU (not kept) */
	LOCKSCOPE_SPIN_CTR_USER,            /* a task in user mode (kept, without a kernel stack) */
	LOCKSCOPE_SPIN_CTR_KERNEL,          /* a task in the kernel (kept with its kernel stack) */
	LOCKSCOPE_SPIN_CTR_PAUSE,           /* kernel samples at a PAUSE instruction */
	LOCKSCOPE_SPIN_CTR_TEXT_UNREADABLE, /* kernel samples whose instruction bytes could not be read */
	LOCKSCOPE_SPIN_CTR_STACK_FAILED,    /* kernel samples kept without a stack (the walk failed) */
	LOCKSCOPE_SPIN_CTR_MAP_FULL,        /* samples lost: no room for a new key in `spin_samples` */
	LOCKSCOPE_SPIN_CTR_FILTERED,        /* a task the pid or cgroup filter leaves out (not kept) */
	LOCKSCOPE_SPIN_CTR_IN_WAIT,         /* kernel samples of a task inside a traced wait */
	LOCKSCOPE_SPIN_CTR_SYSCALL_UNLINKED, /* samples in a mount syscall kept without it (no room for the key) */
	LOCKSCOPE_SPIN_CTR_COUNT,
};

/* `spin_settings[0]`: the lockscope_filter bits (PIDS, CGROUPS) the sampler applies, with the pids in
 * `spin_pid_filter` and the cgroup ids in `spin_cgroup_filter` (record's --pid and --container). */
#define LOCKSCOPE_SPIN_SETTINGS 1

#endif /* LOCKSCOPE_SPIN_H */
