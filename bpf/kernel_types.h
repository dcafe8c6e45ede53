/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The few kernel types lockscope's BPF programs touch, declared CO-RE style: libbpf relocates
 * every field access against the running kernel's BTF at load time, so no vmlinux.h is needed
 * and the object stays small and stable.
 */
#ifndef LOCKSCOPE_KERNEL_TYPES_H
#define LOCKSCOPE_KERNEL_TYPES_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u8 u8;
typedef __u32 u32;
typedef __s32 s32;
typedef __u64 u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __s64 s64;
typedef _Bool bool;
#define true 1
#define false 0

/* BPF map types and flags used here (from include/uapi/linux/bpf.h, stable ABI). */
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_STACK_TRACE = 7,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum { BPF_ANY = 0, BPF_NOEXIST = 1 };
enum { BPF_F_NO_PREALLOC = 1 };
enum { BPF_RB_NO_WAKEUP = 1, BPF_RB_FORCE_WAKEUP = 2 };
enum { BPF_RB_AVAIL_DATA = 0 };

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct { long counter; } atomic_long_t;

struct mutex { atomic_long_t owner; };
struct rw_semaphore { atomic_long_t owner; };

struct kernfs_node {
	__u64 id;
	const char *name;
	struct kernfs_node *__parent; /* Linux 6.15 and later */
};
/* Before Linux 6.15 the parent pointer was called `parent`. */
struct kernfs_node___parent_before_6_15 { struct kernfs_node *parent; };
struct cgroup { struct kernfs_node *kn; };
struct css_set { struct cgroup *dfl_cgrp; };
struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
};
struct task_struct {
	int pid;
	int tgid;
	char comm[16];
	struct css_set *cgroups;
	struct mm_struct *mm;
};

/* x86-64: syscall arguments in di, si, dx, r10, r8, r9; the syscall number in orig_ax. */
struct pt_regs {
	unsigned long r10;
	unsigned long r8;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
};

/* A task's working directory, walked name by name up to the mount namespace's root (mount syscall
 * records keep its last names). A separate flavour of task_struct (CO-RE ignores the ___ suffix), so
 * that this walk's fields stay apart from the others'. */
struct qstr {
	__u64 hash_len; /* the length in the high 32 bits (x86-64, little-endian) */
	const unsigned char *name;
};
struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
};
struct vfsmount { struct dentry *mnt_root; };
struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};
struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};
struct fs_struct { struct path pwd; };
struct task_struct___fs { struct fs_struct *fs; };

#pragma clang attribute pop

#endif
