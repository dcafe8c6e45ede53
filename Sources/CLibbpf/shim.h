#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>

/* The on-CPU sampler's perf events (SpinSampler.swift): perf_event_open(2) has no glibc wrapper, and
 * Swift cannot call the variadic syscall(2). A cpu-clock software event on one CPU, for every task,
 * sampling every `period_ns` nanoseconds of that CPU's clock. Returns the fd, or -1 with errno set. */
#include <linux/perf_event.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline int lockscope_open_cpu_clock(int cpu, unsigned long long period_ns)
{
	struct perf_event_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_CPU_CLOCK;
	attr.sample_period = period_ns;
	return (int)syscall(SYS_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}
