/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "mountapi.h"
#include "namespace.h"

#define NS_PATH_MAX 64                  /* "/proc/self/ns/" and a type name */
#define CHILD_MESSAGE_MAX 2048          /* the child's error message, passed back with its result */

int namespace_new_mount(NamespacePropagation propagation) {
        unsigned long flags = propagation == NAMESPACE_SLAVE ? MS_SLAVE : MS_PRIVATE;

        assert(propagation == NAMESPACE_PRIVATE || propagation == NAMESPACE_SLAVE);
        if (sys_unshare(CLONE_NEWNS) < 0)
                return sx_error(negative_errno(), "cannot create a mount namespace: %m");
        /* Nothing done in the copy may propagate back. */
        if (mount(NULL, "/", NULL, MS_REC | flags, NULL) < 0)
                return sx_error(negative_errno(), "cannot make the new mount namespace's mounts %s: %m",
                                propagation == NAMESPACE_SLAVE ? "slaves" : "private");
        return 0;
}

int namespace_join_mount(int mntns_fd) {
        assert(mntns_fd >= 0);
        if (sys_setns(mntns_fd, CLONE_NEWNS) < 0 || chdir("/") < 0)
                return sx_error(negative_errno(), "cannot join the target mount namespace: %m");
        return 0;
}

int namespace_is_own(int ns_fd, const char *type) {
        char self[NS_PATH_MAX];
        struct stat a, b;

        assert(ns_fd >= 0);
        assert(type && path_is_safe_component(type));
        snprintf(self, sizeof(self), "/proc/self/ns/%s", type);
        if (fstat(ns_fd, &a) < 0 || stat(self, &b) < 0)
                return negative_errno();
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int namespace_join_mount_owner(void) {
        _cleanup_close_ int mnt = -EBADF, owner = -EBADF;
        int r;

        mnt = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        if (mnt < 0)
                return negative_errno();
        owner = ioctl(mnt, NS_GET_USERNS);
        if (owner < 0)
                return negative_errno();
        r = namespace_is_own(owner, "user");
        if (r != 0)
                return r < 0 ? r : 0;
        return sys_setns(owner, CLONE_NEWUSER) < 0 ? negative_errno() : 1;
}

/* ---- a child in a mount namespace that passes fds back ---- */

typedef struct ChildReply {
        int r;
        char message[CHILD_MESSAGE_MAX];
} ChildReply;

/* Enter the namespace the function is to run in: the target, or a private copy of ours. */
static int child_enter(int mntns_fd, RunFlags flags) {
        int r;

        if (mntns_fd >= 0)
                return namespace_join_mount(mntns_fd);
        if (flags & RUN_AS_MNTNS_OWNER) {
                r = namespace_join_mount_owner();
                if (r < 0)
                        return sx_error(r, "cannot join the user namespace owning our mount namespace: %m");
        }
        return namespace_new_mount(NAMESPACE_PRIVATE);
}

static _Noreturn void child_run(int sock, int mntns_fd, RunFlags flags, PrivateNsFunc fn, void *userdata, size_t max_fds) {
        int fds[RUN_IN_MNTNS_MAX_FDS];
        ChildReply reply = {};
        char cbuf[CMSG_SPACE(sizeof(int) * RUN_IN_MNTNS_MAX_FDS)] = {};
        struct iovec iov = { .iov_base = &reply, .iov_len = sizeof(reply) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        reply.r = child_enter(mntns_fd, flags);
        if (reply.r >= 0)
                reply.r = fn(userdata, fds, max_fds);
        if (reply.r < 0 && sx_last_error())
                copy_message(reply.message, sizeof(reply.message), sx_last_error());
        if (reply.r > 0) {
                mh.msg_control = cbuf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t) reply.r);
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t) reply.r);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t) reply.r);
        }
        _exit(sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? 1 : 0);
}

static void close_many(int *fds, int n) {
        for (int i = 0; i < n; i++)
                safe_close(fds[i]);
}

/* The parent's side: the child's reply and the fds it passed; the child is reaped. */
static int child_collect(int sock, pid_t pid, int *ret_fds) {
        char cbuf[CMSG_SPACE(sizeof(int) * RUN_IN_MNTNS_MAX_FDS)] = {};
        ChildReply reply = {};
        struct iovec iov = { .iov_base = &reply, .iov_len = sizeof(reply) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
        int n = 0;
        ssize_t k;

        do
                k = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        while (k < 0 && errno == EINTR);
        (void) waitpid(pid, NULL, 0);
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); k > 0 && cm; cm = CMSG_NXTHDR(&mh, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                        n = (int) ((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                        memcpy(ret_fds, CMSG_DATA(cm), sizeof(int) * (size_t) n);
                }
        if (k != (ssize_t) sizeof(reply)) {
                close_many(ret_fds, n);
                return sx_error(-EIO, "helper process in a private mount namespace died");
        }
        if (reply.r < 0) {
                reply.message[sizeof(reply.message) - 1] = 0;
                return sx_error(reply.r, "%s", reply.message[0] ? reply.message : strerror(-reply.r));
        }
        if (n != reply.r) {
                close_many(ret_fds, n);
                return sx_error(-EIO, "helper process passed %d of %d file descriptors", n, reply.r);
        }
        return n;
}

int run_in_mntns(int mntns_fd, RunFlags flags, PrivateNsFunc fn, void *userdata, int *ret_fds, size_t max_fds) {
        int sk[2], r;
        pid_t pid;

        assert(fn);
        assert(ret_fds || max_fds == 0);
        if (max_fds > RUN_IN_MNTNS_MAX_FDS)
                return -E2BIG;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sk) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                safe_close(sk[0]);
                safe_close(sk[1]);
                return r;
        }
        if (pid == 0) {
                safe_close(sk[0]);
                child_run(sk[1], mntns_fd, flags, fn, userdata, max_fds);
        }
        safe_close(sk[1]);
        r = child_collect(sk[0], pid, ret_fds);
        safe_close(sk[0]);
        return r;
}
