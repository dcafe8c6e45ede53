/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The arguments of the benchmark's synthetic event source (bpf/lockscope_bench.bpf.c), shared with
 * lockscope-bench. They are the raw_tp context of a BPF_PROG_TEST_RUN call: one __u64 each.
 */
#ifndef LOCKSCOPE_BENCH_H
#define LOCKSCOPE_BENCH_H

enum lockscope_bench_arg {
	LOCKSCOPE_BENCH_ARG_EVENTS = 0,  /* wait events to emit in this call */
	LOCKSCOPE_BENCH_ARG_FIRST,       /* sequence number of the first one (the producer's running total) */
	LOCKSCOPE_BENCH_ARG_SEED,        /* same seed and sequence number: same event */
	LOCKSCOPE_BENCH_ARG_LOCKS,       /* distinct lock addresses, more than LOCKSCOPE_BENCH_HOT_LOCKS */
	LOCKSCOPE_BENCH_ARG_CPUS,        /* distinct CPU numbers */
	LOCKSCOPE_BENCH_ARG_CONTAINERS,  /* distinct cgroup ids, each with its own processes and CPU set */
	LOCKSCOPE_BENCH_ARG_COUNT,
};

/*
 * Half of all events go to this many hot locks, contended from every container (and so every CPU);
 * each other lock belongs to one container. A container runs this many processes, on this many CPUs.
 */
#define LOCKSCOPE_BENCH_HOT_LOCKS 16
#define LOCKSCOPE_BENCH_PIDS_PER_CONTAINER 4
#define LOCKSCOPE_BENCH_CPUS_PER_CONTAINER 4

#endif /* LOCKSCOPE_BENCH_H */
