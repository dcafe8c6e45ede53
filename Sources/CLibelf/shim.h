/* libelf (libelf-dev, elfutils), for reading the symbols, PT_LOAD segments and build ids of the ELF
 * files user stacks point into (LockscopeKernel's ELFReader). */
#include <libelf.h>
#include <gelf.h>
#include <elf.h>
