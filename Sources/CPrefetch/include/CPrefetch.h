#ifndef LOCKSCOPE_CPREFETCH_H
#define LOCKSCOPE_CPREFETCH_H

/* Asks the CPU to start loading the cache line at `address` without waiting for it: the aggregator
 * issues these for the table slots and histogram buckets an event will touch, so that their cache
 * misses overlap with other work instead of stalling one after another. Never faults. */
static inline __attribute__((always_inline)) void lockscope_prefetch(const void *address)
{
	__builtin_prefetch(address, 1, 3);
}

/* The same for a line that will only be read (the ring buffer's records, which the producer writes). */
static inline __attribute__((always_inline)) void lockscope_prefetch_read(const void *address)
{
	__builtin_prefetch(address, 0, 3);
}

#endif
