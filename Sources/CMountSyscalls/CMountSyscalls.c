#define _GNU_SOURCE
#include "CMountSyscalls.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

// The mount-API syscall numbers are the same on every architecture.
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

int lockscope_open_tree(int dirfd, const char *path, unsigned int flags)
{
    return (int)syscall(SYS_open_tree, dirfd, path, flags);
}

int lockscope_move_mount(int from_dirfd, const char *from_path,
                         int to_dirfd, const char *to_path, unsigned int flags)
{
    return (int)syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags);
}

int lockscope_mount_setattr(int dirfd, const char *path, unsigned int flags,
                            struct lockscope_mount_attr *attr)
{
    return (int)syscall(SYS_mount_setattr, dirfd, path, flags, attr, sizeof(*attr));
}

int lockscope_unshare_mount_namespace(void)
{
    return (int)syscall(SYS_unshare, CLONE_NEWNS);
}

pid_t lockscope_spawn_userns_holder(void)
{
    pid_t parent = getpid();
    // No stack argument: the child continues on a copy of this stack, like fork().
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid != 0) {
        return pid;
    }
    // The child only makes plain syscalls (async-signal-safe), as after fork() in a threaded process.
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent) {
        _exit(0);
    }
    for (;;) {
        pause();
    }
}

int lockscope_die_with_parent(pid_t expected_parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        return -1;
    }
    if (getppid() != expected_parent) {
        errno = ESRCH;
        return -1;
    }
    return 0;
}
