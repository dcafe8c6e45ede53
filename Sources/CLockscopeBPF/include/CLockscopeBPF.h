#ifndef CLOCKSCOPE_BPF_H
#define CLOCKSCOPE_BPF_H
/* The event layout shared with the BPF programs, and the compiled programs themselves. */
#include "lockscope.h"
#include "lockscope_bench.h"

/* bpf/lockscope.bpf.c compiled by `make bpf`: an ELF object with BTF, loaded by libbpf. */
const unsigned char *lockscope_bpf_object_bytes(void);
unsigned long lockscope_bpf_object_size(void);

/* bpf/lockscope_bench.bpf.c: lockscope-bench's synthetic event source (never loaded by `record`). */
const unsigned char *lockscope_bench_object_bytes(void);
unsigned long lockscope_bench_object_size(void);

/* bpf/lockscope_spin.bpf.c: the on-CPU sampler, loaded only when `record --spin-hz` is not 0. */
const unsigned char *lockscope_spin_object_bytes(void);
unsigned long lockscope_spin_object_size(void);
#endif
