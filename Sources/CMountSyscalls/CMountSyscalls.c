#define _GNU_SOURCE
#include "CMountSyscalls.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <string.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

// The mount-API syscall numbers are the same on every architecture.
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
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

int lockscope_unshare_fs(void)
{
    return (int)syscall(SYS_unshare, CLONE_FS);
}

int lockscope_set_name(const char *name)
{
    return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
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

int lockscope_set_cmdline(char *arg_start, size_t arg_capacity, const char *args, size_t length)
{
    if (length == 0 || length > arg_capacity || args[length - 1] != '\0') {
        errno = EINVAL;
        return -1;
    }
    memcpy(arg_start, args, length);
    if (length == arg_capacity) {
        return 0;
    }
    memset(arg_start + length, 0, arg_capacity - length);
    if (prctl(PR_SET_MM, PR_SET_MM_ARG_END, (unsigned long)(arg_start + length), 0, 0) == 0) {
        return 0;
    }
    if (memchr(args, '\0', length) == args + length - 1) {
        // One argument: fill the rest without NULs, as setproctitle(3) does; when the area's last byte
        // is not NUL, /proc/PID/cmdline ends at the first NUL.
        memset(arg_start + length, ' ', arg_capacity - length);
        return 0;
    }
    return -1;
}

pid_t lockscope_spawn_named_holder(const char *comm, const char *args, size_t length,
                                   char *arg_start, size_t arg_capacity, int new_user_namespace)
{
    int ready[2];
    if (syscall(SYS_pipe2, ready, O_CLOEXEC) != 0) {
        return -1;
    }
    pid_t parent = getpid();
    // No stack argument: the child continues on a copy of this stack, like fork().
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        // The child only makes plain syscalls (async-signal-safe), as after fork() in a threaded process.
        // It keeps no copy of the caller's descriptors (an open_tree fd would keep a mount busy), and
        // is named and its command line rewritten first: in a new user namespace it lacks CAP_SYS_RESOURCE.
        if (ready[1] > 0) {
            syscall(SYS_close_range, 0, ready[1] - 1, 0);
        }
        syscall(SYS_close_range, ready[1] + 1, ~0U, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent) {
            _exit(0);
        }
        prctl(PR_SET_NAME, (unsigned long)comm, 0, 0, 0);
        lockscope_set_cmdline(arg_start, arg_capacity, args, length);
        if (new_user_namespace && syscall(SYS_unshare, CLONE_NEWUSER) != 0) {
            _exit(1);
        }
        char byte = 1;
        if (write(ready[1], &byte, 1) != 1) {
            _exit(1);
        }
        for (;;) {
            pause();
        }
    }
    int saved = errno;
    close(ready[1]);
    if (pid > 0) {
        char byte = 0;
        ssize_t count;
        while ((count = read(ready[0], &byte, 1)) == -1 && errno == EINTR) {
        }
        if (count != 1) {
            // The child failed (it exited and closed its end): reap it and report why.
            int status;
            while (waitpid(pid, &status, 0) == -1 && errno == EINTR) {
            }
            pid = -1;
            saved = EPERM;
        }
    }
    close(ready[0]);
    errno = saved;
    return pid;
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
