/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Thin wrappers for the new mount API and friends. Debian 12's kernel headers (6.1) predate some
 * of the constants we use (MOVE_MOUNT_BENEATH, 6.5), so they are defined here when missing. The
 * wrappers return what the syscall returns (-1 and errno), like libc would. */

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "test-hooks.h"

#ifndef MOVE_MOUNT_BENEATH
#define MOVE_MOUNT_BENEATH 0x00000200
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/* Fault injection (test builds only, see test-hooks.h): the N-th step that goes through one of
 * these wrappers fails with EIO, so tests can show that a failure at any step leaves nothing
 * behind. In a default build FAULT() is a constant 0. */
#define FAULT(step) (fault_inject(step) ? (errno = EIO, -1) : 0)

static inline int sys_open_tree(int dfd, const char *path, unsigned flags) {
        if (FAULT("open_tree") < 0)
                return -1;
        return (int) syscall(SYS_open_tree, dfd, path, flags);
}
static inline int sys_move_mount(int from_dfd, const char *from, int to_dfd, const char *to, unsigned flags) {
        if (FAULT("move_mount") < 0)
                return -1;
        return (int) syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags);
}
static inline int sys_fsopen(const char *fsname, unsigned flags) {
        if (FAULT("fsopen") < 0)
                return -1;
        return (int) syscall(SYS_fsopen, fsname, flags);
}
static inline int sys_fsconfig(int fd, unsigned cmd, const char *key, const void *value, int aux) {
        if (FAULT(cmd == FSCONFIG_CMD_CREATE ? "fsconfig-create" : "fsconfig") < 0)
                return -1;
        return (int) syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}
static inline int sys_fsmount(int fd, unsigned flags, unsigned attr_flags) {
        if (FAULT("fsmount") < 0)
                return -1;
        return (int) syscall(SYS_fsmount, fd, flags, attr_flags);
}
static inline int sys_mount_setattr(int dfd, const char *path, unsigned flags, struct mount_attr *attr, size_t size) {
        if (FAULT("mount_setattr") < 0)
                return -1;
        return (int) syscall(SYS_mount_setattr, dfd, path, flags, attr, size);
}
static inline int sys_openat2(int dfd, const char *path, struct open_how *how, size_t size) {
        return (int) syscall(SYS_openat2, dfd, path, how, size);
}
static inline int sys_umount2(const char *path, int flags) {
        if (FAULT("umount2") < 0)
                return -1;
        return umount2(path, flags);
}
static inline int sys_unshare(int flags) {
        if (FAULT("unshare") < 0)
                return -1;
        return unshare(flags);
}
static inline int sys_setns(int fd, int nstype) {
        if (FAULT("setns") < 0)
                return -1;
        return setns(fd, nstype);
}
static inline int sys_mkdirat(int dfd, const char *path, mode_t mode) {
        if (FAULT("mkdirat") < 0)
                return -1;
        return mkdirat(dfd, path, mode);
}

static inline int sys_pidfd_open(pid_t pid, unsigned flags) {
        return (int) syscall(SYS_pidfd_open, pid, flags);
}

/* Read the messages the kernel left on an fs context fd (fsopen) and join them into one line,
 * e.g. "overlay: failed to resolve 'x': -2". Returns NULL if there are none. Caller frees. */
char *fs_context_messages(int fs_fd);
