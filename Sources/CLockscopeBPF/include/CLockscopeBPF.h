#ifndef CLOCKSCOPE_BPF_H
#define CLOCKSCOPE_BPF_H
/* The event layout shared with the BPF programs, and the compiled programs themselves. */
#include "lockscope.h"
#include "lockscope_bench.h"

/*
 * bpftool skeletons written by `make bpf`: each embeds its object (ELF with BTF) and gives typed
 * fields for its programs, maps and .rodata (struct lockscope_bpf, struct lockscope_bench_bpf).
 * They name `struct lockscope_config` without defining it, so lockscope.h comes first; their
 * _Static_asserts check its size against the object's BTF.
 */
#include "lockscope.skel.h"
/* lockscope-bench's synthetic event source (bpf/lockscope_bench.bpf.c), never loaded by `record`. */
#include "lockscope_bench.skel.h"
/* The on-CPU sampler (bpf/lockscope_spin.bpf.c), loaded only when `record --spin-hz` is not 0. */
#include "lockscope_spin.skel.h"
#endif
