#ifndef CLOCKSCOPE_BPF_H
#define CLOCKSCOPE_BPF_H
/* The event layout shared with the BPF programs, and the compiled programs themselves. */
#include "lockscope.h"

/* bpf/lockscope.bpf.c compiled by `make bpf`: an ELF object with BTF, loaded by libbpf. */
const unsigned char *lockscope_bpf_object_bytes(void);
unsigned long lockscope_bpf_object_size(void);
#endif
