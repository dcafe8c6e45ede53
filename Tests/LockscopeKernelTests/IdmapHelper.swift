/// The C helper of `UserStackEndToEndTests`, compiled by the test with `cc -O1 -fno-omit-frame-pointer`:
/// named functions issue idmapped mounts the way a container runtime prepares image layers.
enum IdmapHelper {
    static let source = #"""
/* Issues idmapped mounts in a loop from named functions, like a container runtime preparing layers:
 * main -> run_worker -> prepare_idmapped_overlay -> do_prepare_idmapped_overlay -> issue_syscall
 * (open_tree, mount_setattr(MOUNT_ATTR_IDMAP), move_mount), then umount2 from release_overlay.
 * Usage: idmap_helper DIR WORKERS ITERATIONS LAYERS (mounts held at once per worker). Each worker mounts in a private mount namespace. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NR_OPEN_TREE 428
#define NR_MOVE_MOUNT 429
#define NR_MOUNT_SETATTR 442
#define OPEN_TREE_CLONE_ 1
#define OPEN_TREE_CLOEXEC_ 02000000
#define AT_EMPTY_PATH_ 0x1000
#define MOVE_MOUNT_F_EMPTY_PATH_ 0x00000004
#define MOUNT_ATTR_IDMAP_ 0x00100000

struct mount_attr_ { unsigned long long attr_set, attr_clr, propagation, userns_fd; };

static long failed_syscalls;

__attribute__((noinline)) void note_failure(long nr, long ret)
{
	if (ret < 0 && failed_syscalls++ == 0)
		fprintf(stderr, "syscall %ld failed: %s\n", nr, strerror((int)-ret));
}

/* The syscall instruction in a function of its own, with its frame: the kernel's frame-pointer walk
 * starts here and finds every caller (glibc's syscall() keeps no frame, which hides its caller). Not a
 * leaf (it calls note_failure), because gcc sets no frame up in a leaf even with -fno-omit-frame-pointer. */
__attribute__((noinline)) long issue_syscall(long nr, long a, long b, long c, long d, long e)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
	if (ret < 0)
		note_failure(nr, ret);
	return ret;
}

__attribute__((noinline)) int do_prepare_idmapped_overlay(const char *source, const char *target, int userns)
{
	struct mount_attr_ attr = { .attr_set = MOUNT_ATTR_IDMAP_, .userns_fd = (unsigned long long)userns };
	long fd = issue_syscall(NR_OPEN_TREE, AT_FDCWD, (long)source, OPEN_TREE_CLONE_ | OPEN_TREE_CLOEXEC_, 0, 0);
	if (fd < 0)
		return -1;
	long set = issue_syscall(NR_MOUNT_SETATTR, fd, (long)"", AT_EMPTY_PATH_, (long)&attr, sizeof(attr));
	long moved = set < 0 ? set : issue_syscall(NR_MOVE_MOUNT, fd, (long)"", AT_FDCWD, (long)target, MOVE_MOUNT_F_EMPTY_PATH_);
	close((int)fd);
	return set < 0 || moved < 0 ? -1 : 0;
}

__attribute__((noinline)) int prepare_idmapped_overlay(const char *source, const char *target, int userns)
{
	int ret = do_prepare_idmapped_overlay(source, target, userns);
	return ret < 0 ? -1 : ret;
}

/* The container's root: a read-only overlay of the idmapped layers (overlayfs clones each layer's mount
 * under namespace_sem, read side, in ovl_fill_super). */
__attribute__((noinline)) int mount_overlay_root(const char *root, const char *lowerdirs)
{
	long ret = issue_syscall(SYS_mount, (long)"overlay", (long)root, (long)"overlay", MS_RDONLY, (long)lowerdirs);
	return ret < 0 ? -1 : 0;
}

__attribute__((noinline)) int release_overlay(const char *target)
{
	long ret = issue_syscall(SYS_umount2, (long)target, MNT_DETACH, 0, 0, 0);
	return ret < 0 ? -1 : 0;
}

/* A user namespace mapping root to 100000 (a child's, held open by its fd). */
static int user_namespace(void)
{
	int ready[2], go[2];
	char path[64], c = 0;
	if (pipe(ready) || pipe(go))
		return -1;
	pid_t child = fork();
	if (child == 0) {
		if (unshare(CLONE_NEWUSER))
			_exit(1);
		(void)!write(ready[1], &c, 1);
		(void)!read(go[0], &c, 1);
		_exit(0);
	}
	if (read(ready[0], &c, 1) != 1)
		return -1;
	const char *maps[][2] = { { "uid_map", "0 100000 65536" }, { "setgroups", "deny" }, { "gid_map", "0 100000 65536" } };
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "/proc/%d/%s", child, maps[i][0]);
		int fd = open(path, O_WRONLY);
		if (fd < 0 || write(fd, maps[i][1], strlen(maps[i][1])) < 0)
			return -1;
		close(fd);
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/user", child);
	int userns = open(path, O_RDONLY | O_CLOEXEC);
	(void)!write(go[1], &c, 1);
	waitpid(child, NULL, 0);
	return userns;
}

/* A new mount namespace for each batch of layers, as each container gets its own: copying the mount
 * table holds namespace_sem for writing, which the other workers' mount syscalls then wait on. */
__attribute__((noinline)) int enter_new_mount_namespace(void)
{
	return issue_syscall(SYS_unshare, CLONE_NEWNS, 0, 0, 0, 0) < 0 ? -1 : 0;
}

__attribute__((noinline)) int run_worker(const char *dir, int worker, int iterations, int layers)
{
	char source[64][4096], target[64][4096], root[4096], lowerdirs[64 * 4096 + 16];
	int userns = user_namespace();
	if (userns < 0 || unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return 1;
	for (int layer = 0; layer < layers; layer++) {
		snprintf(source[layer], sizeof(source[layer]), "%s/layer-%d", dir, layer);
		mkdir(source[layer], 0755);
		snprintf(target[layer], sizeof(target[layer]), "%s/target-%d-%d", dir, worker, layer);
		mkdir(target[layer], 0755);
	}
	snprintf(root, sizeof(root), "%s/root-%d", dir, worker);
	mkdir(root, 0755);
	strcpy(lowerdirs, "lowerdir=");
	for (int layer = 0; layer < layers; layer++) {
		strcat(lowerdirs, target[layer]);
		if (layer + 1 < layers)
			strcat(lowerdirs, ":");
	}
	int failures = 0;
	for (int i = 0; i < iterations; i++) {
		failures += enter_new_mount_namespace() != 0;
		for (int layer = 0; layer < layers; layer++)
			failures += prepare_idmapped_overlay(source[layer], target[layer], userns) != 0;
		failures += mount_overlay_root(root, lowerdirs) != 0;
		failures += release_overlay(root) != 0;
		for (int layer = 0; layer < layers; layer++)
			failures += release_overlay(target[layer]) != 0;
	}
	if (failures)
		fprintf(stderr, "worker %d: %d of %d mounts or unmounts failed\n", worker, failures, 2 * iterations * layers);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc != 5 || atoi(argv[4]) < 2 || atoi(argv[4]) > 64) {
		fprintf(stderr, "usage: %s DIR WORKERS ITERATIONS LAYERS(2-64)\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	int workers = atoi(argv[2]), iterations = atoi(argv[3]), layers = atoi(argv[4]), status, failed = 0;
	for (int w = 0; w < workers; w++) {
		if (fork() == 0)
			_exit(run_worker(dir, w, iterations, layers));
	}
	while (wait(&status) > 0)
		failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	return failed ? 1 : 0;
}
"""#
}
