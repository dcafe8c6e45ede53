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
/// clone(CLONE_NEWUSER) a child that only waits to be killed (it also dies with its parent),
/// so the caller can write its uid_map/gid_map and open /proc/<pid>/ns/user.
/// Returns the child's pid. Safe in a multithreaded caller: the child makes raw syscalls only.
pid_t lockscope_spawn_userns_holder(void);
/// prctl(PR_SET_PDEATHSIG, SIGKILL): the caller is killed when the thread that started it exits.
/// Returns -1 (errno ESRCH) if the caller's parent is no longer `expected_parent` (it died before
/// the signal was armed), 0 otherwise.
int lockscope_die_with_parent(pid_t expected_parent);

#endif
