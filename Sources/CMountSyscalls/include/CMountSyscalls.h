// The mount-API and namespace syscalls that Swift's Glibc module does not expose.
// Every function is a thin wrapper over syscall(2): it returns -1 and sets errno on failure.
#ifndef LOCKSCOPE_CMOUNTSYSCALLS_H
#define LOCKSCOPE_CMOUNTSYSCALLS_H

#include <stdint.h>
#include <sys/types.h>

// open_tree(2) flags.
#define LOCKSCOPE_OPEN_TREE_CLONE 1u
// move_mount(2) flags.
#define LOCKSCOPE_MOVE_MOUNT_F_EMPTY_PATH 0x00000004u
// *at(2) path flags used with the mount API.
#define LOCKSCOPE_AT_EMPTY_PATH 0x1000u
// mount_setattr(2) attribute: idmap the mount through mount_attr.userns_fd.
#define LOCKSCOPE_MOUNT_ATTR_IDMAP 0x00100000ull

/// The kernel's struct mount_attr (MOUNT_ATTR_SIZE_VER0).
struct lockscope_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

int lockscope_open_tree(int dirfd, const char *path, unsigned int flags);
int lockscope_move_mount(int from_dirfd, const char *from_path,
                         int to_dirfd, const char *to_path, unsigned int flags);
int lockscope_mount_setattr(int dirfd, const char *path, unsigned int flags,
                            struct lockscope_mount_attr *attr);
/// unshare(CLONE_NEWNS): gives the calling thread a private copy of the mount namespace.
int lockscope_unshare_mount_namespace(void);
/// unshare(CLONE_FS): gives the calling thread its own working directory.
int lockscope_unshare_fs(void);
/// prctl(PR_SET_NAME): names the calling thread (the main thread's name is the process's comm).
int lockscope_set_name(const char *name);
/// clone(CLONE_NEWUSER) a child that only waits to be killed (it also dies with its parent),
/// so the caller can write its uid_map/gid_map and open /proc/<pid>/ns/user.
/// Returns the child's pid. Safe in a multithreaded caller: the child makes raw syscalls only.
pid_t lockscope_spawn_userns_holder(void);
/// Forks a child that closes every descriptor it inherited, names itself `comm` (PR_SET_NAME, which keeps 15 bytes), rewrites its command
/// line to the `length` bytes `args` (NUL-separated arguments, see lockscope_set_cmdline), enters a
/// new user namespace if `new_user_namespace` is non-zero, and then only waits to be killed (it also
/// dies with the thread that forked it). Returns once the child has done all that, with its pid, or
/// -1 with errno set. Safe in a multithreaded caller: the child makes raw syscalls only.
pid_t lockscope_spawn_named_holder(const char *comm, const char *args, size_t length,
                                   char *arg_start, size_t arg_capacity, int new_user_namespace);
/// Replaces this process's command line (/proc/PID/cmdline): copies the `length` bytes `args`
/// (NUL-separated arguments, the last one NUL-terminated) over the original argument area that starts
/// at `arg_start` (argv[0]) and is `arg_capacity` bytes long. When `args` is shorter than the area,
/// the area's end is moved (prctl PR_SET_MM_ARG_END, which needs CAP_SYS_RESOURCE) or, without that
/// capability, a single argument is followed by spaces, as setproctitle(3) does. Returns 0, or -1 with
/// errno set (EINVAL if `args` does not fit, EPERM if several shorter arguments cannot be shown exactly).
int lockscope_set_cmdline(char *arg_start, size_t arg_capacity, const char *args, size_t length);
/// prctl(PR_SET_PDEATHSIG, SIGKILL): the caller is killed when the thread that started it exits.
/// Returns -1 (errno ESRCH) if the caller's parent is no longer `expected_parent` (it died before
/// the signal was armed), 0 otherwise.
int lockscope_die_with_parent(pid_t expected_parent);

#endif
