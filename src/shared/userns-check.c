/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <pwd.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "mountapi.h"
#include "subid.h"
#include "userns-check.h"

#define MAP_TEXT_MAX (IDMAP_EXTENTS_MAX * 36 + 1)

/* Close every fd but 0-2 and keep (close_range() leaves ranges out). */
static void close_all_but(int a, int b) {
        int lo = a < b ? a : b, hi = a < b ? b : a;
        if (lo > 3)
                (void) syscall(SYS_close_range, 3U, (unsigned) lo - 1, 0U);
        if (hi > lo + 1)
                (void) syscall(SYS_close_range, (unsigned) lo + 1, (unsigned) hi - 1, 0U);
        (void) syscall(SYS_close_range, (unsigned) hi + 1, ~0U, 0U);
}

static _Noreturn void maps_child(int userns_fd, int out) {
        close_all_but(userns_fd, out);
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || sys_setns(userns_fd, CLONE_NEWUSER) < 0)
                _exit(1);
        for (int i = 0; i < 2; i++) {
                _cleanup_free_ char *t = NULL;
                size_t n = 0;
                if (read_full_file_at(AT_FDCWD, i == 0 ? "/proc/self/uid_map" : "/proc/self/gid_map",
                                      MAP_TEXT_MAX, &t, &n) < 0)
                        _exit(1);
                /* NUL-terminated, one after the other. */
                if (write(out, t, n + 1) != (ssize_t) n + 1)
                        _exit(1);
        }
        _exit(0);
}

static int read_all(int fd, char *buf, size_t size, size_t *ret_n) {
        size_t got = 0;

        while (got < size) {
                ssize_t k = read(fd, buf + got, size - got);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break;
                got += (size_t) k;
        }
        *ret_n = got;
        return 0;
}

/* "INSIDE OUTSIDE COUNT" lines, as the kernel writes them. */
static int parse_map(const char *text, IdmapExtent *v, size_t *ret_n) {
        size_t n = 0;

        for (const char *p = text; *p;) {
                unsigned long a, b, c;
                int used = 0;
                if (sscanf(p, " %lu %lu %lu%n", &a, &b, &c, &used) != 3 || n >= IDMAP_EXTENTS_MAX ||
                    a > UINT32_MAX || b > UINT32_MAX || c > UINT32_MAX)
                        return -EBADMSG;
                v[n++] = (IdmapExtent) { (uint32_t) a, (uint32_t) b, (uint32_t) c };
                p += used;
                while (*p == '\n' || *p == ' ')
                        p++;
        }
        *ret_n = n;
        return 0;
}

static int maps_from_text(const char *buf, size_t len, UsernsMaps *ret) {
        const char *second = memchr(buf, 0, len);

        if (!second || !memchr(second + 1, 0, len - (size_t) (second + 1 - buf)))
                return -EIO;
        if (parse_map(buf, ret->uid, &ret->n_uid) < 0 || parse_map(second + 1, ret->gid, &ret->n_gid) < 0)
                return -EBADMSG;
        return 0;
}

int userns_read_maps_isolated(int userns_fd, UsernsMaps *ret) {
        _cleanup_free_ char *buf = malloc(2 * MAP_TEXT_MAX + 2);
        int pipefd[2], status = 0, r;
        size_t len = 0;
        pid_t pid;

        if (!buf)
                return -ENOMEM;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                safe_close(pipefd[0]);
                safe_close(pipefd[1]);
                return r;
        }
        if (pid == 0)
                maps_child(userns_fd, pipefd[1]);
        safe_close(pipefd[1]);
        r = read_all(pipefd[0], buf, 2 * MAP_TEXT_MAX + 2, &len);
        safe_close(pipefd[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (r < 0)
                return r;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -EIO;
        return maps_from_text(buf, len, ret);
}

bool id_range_entitled(uint32_t start, uint32_t count, uint32_t own, const SubidRange *ranges, size_t n_ranges) {
        uint64_t pos = start, end = (uint64_t) start + count;

        /* Walk from the start: each step needs an allowed range containing pos. */
        while (pos < end) {
                uint64_t next = pos;
                if (pos == own)
                        next = pos + 1;
                for (size_t i = 0; next == pos && i < n_ranges; i++)
                        if (pos >= ranges[i].start && pos < (uint64_t) ranges[i].start + ranges[i].count)
                                next = (uint64_t) ranges[i].start + ranges[i].count;
                if (next == pos)
                        return false;
                pos = next;
        }
        return true;
}

static int ns_same(int a, int b) {
        struct stat sa, sb;

        if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
                return negative_errno();
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Type, parent and owner (*ret_owner; the caller's own uid for root callers). */
static int check_ns_identity(int userns_fd, uid_t caller_uid, uid_t *ret_owner) {
        _cleanup_close_ int own = -EBADF, parent = -EBADF;
        uid_t owner;
        int type, r;

        type = ioctl(userns_fd, NS_GET_NSTYPE);
        if (type < 0 || type != CLONE_NEWUSER)
                return sx_error(-EPERM, "namespace: the fd is not a user namespace");
        own = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
        if (own < 0)
                return sx_error(negative_errno(), "cannot open our own user namespace: %m");
        r = ns_same(own, userns_fd);
        if (r != 0)
                return r < 0 ? r : sx_error(-EPERM, "namespace: it is the daemon's own user namespace");
        *ret_owner = caller_uid;
        if (caller_uid == 0)
                return 0;
        if (ioctl(userns_fd, NS_GET_OWNER_UID, &owner) < 0)
                return sx_error(negative_errno(), "namespace: cannot query its owner: %m");
        *ret_owner = owner;
        parent = ioctl(userns_fd, NS_GET_PARENT);
        if (parent < 0 && errno != EPERM)
                return sx_error(negative_errno(), "namespace: cannot query its parent: %m");
        if (parent < 0 || (r = ns_same(own, parent)) == 0)
                return sx_error(-EPERM, "namespace: nested user namespaces are not supported, it must be a child of the initial one");
        return r < 0 ? r : 0;
}

static int check_extents(const char *what, const IdmapExtent *v, size_t n, uint32_t own, const SubidRange *ranges,
                         size_t n_ranges) {
        for (size_t i = 0; i < n; i++)
                if (!id_range_entitled(v[i].to, v[i].count, own, ranges, n_ranges))
                        return sx_error(-EPERM, "namespace: its %s maps %" PRIu32 "-%" PRIu32 ", ids the caller is not entitled to",
                                        what, v[i].to, (uint32_t) ((uint64_t) v[i].to + v[i].count - 1));
        return 0;
}

static int check_entitlement(const UsernsMaps *m, uid_t uid, gid_t gid, const char *root) {
        _cleanup_free_ SubidRange *su = NULL, *sg = NULL;
        size_t nsu = 0, nsg = 0;
        int r;

        r = subid_load(root, "etc/subuid", uid, &su, &nsu, NULL);
        if (r >= 0)
                r = subid_load(root, "etc/subgid", uid, &sg, &nsg, NULL);
        if (r < 0)
                return r;
        r = check_extents("uid_map", m->uid, m->n_uid, uid, su, nsu);
        if (r >= 0)
                r = check_extents("gid_map", m->gid, m->n_gid, gid, sg, nsg);
        return r;
}

#ifndef PIDFD_GET_USER_NAMESPACE
#define PIDFD_GET_USER_NAMESPACE _IO(0xFF, 9)   /* Linux 6.11 */
#endif

/* Kernels 6.5 to 6.10: the pid number read from fdinfo names the pidfd's process only while it
 * lives, so it must still live after /proc/PID/ns/user was opened (a pidfd keeps the process's
 * struct pid, not its number). */
int userns_of_pidfd_by_proc(int pidfd) {
        _cleanup_free_ char *info = NULL;
        _cleanup_close_ int ns = -EBADF;
        char path[64];
        const char *line;
        long pid;
        size_t n = 0;
        int r;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%i", pidfd);
        r = read_full_file_at(AT_FDCWD, path, 4096, &info, &n);
        if (r < 0)
                return r;
        line = strstr(info, "\nPid:");
        if (!line || sscanf(line + strlen("\nPid:"), "%ld", &pid) != 1)
                return -EIO;
        if (pid <= 0)   /* -1: exited; 0: in a pid namespace we cannot see */
                return -ESRCH;
        snprintf(path, sizeof(path), "/proc/%ld/ns/user", pid);
        ns = open(path, O_RDONLY | O_CLOEXEC);
        if (ns < 0)
                return errno == ENOENT ? -ESRCH : negative_errno();
        if (pidfd_send_signal(pidfd, 0, NULL, 0) < 0)
                return errno == ESRCH ? -ESRCH : negative_errno();
        return TAKE_FD(ns);
}

/* The user namespace of the process pidfd refers to (a new fd), or -ESRCH if it has exited. */
static int pidfd_user_ns(int pidfd) {
        int ns = ioctl(pidfd, PIDFD_GET_USER_NAMESPACE, 0);

        if (ns >= 0)
                return ns;
        if (errno == ESRCH)
                return -ESRCH;
        if (errno != ENOTTY && errno != EINVAL && errno != EOPNOTSUPP)
                return negative_errno();
        return userns_of_pidfd_by_proc(pidfd);
}

/* A caller that is not the namespace's owner may still use it if it lives in it: the root of a
 * subuid-mapped container is, to us, one of the owner's subordinate uids (SO_PEERCRED says
 * 300000, the namespace belongs to 4251). It is then served as the owner, never as more: its own
 * uid must be one the namespace maps (an outside id of uid_map, so within the owner's entitlement
 * once that is checked), and the process that connected must be in that very namespace: judged
 * through its pidfd where there is one, else by its pid. */
static int check_delegated(const UsernsMaps *m, int userns_fd, uid_t caller_uid, pid_t caller_pid, int caller_pidfd,
                           uid_t owner, gid_t *ret_owner_gid) {
        char path[64], buf[1024];
        _cleanup_close_ int ns = -EBADF;
        struct passwd pw, *res = NULL;
        bool mapped = false;
        int r;

        for (size_t i = 0; i < m->n_uid; i++)
                mapped = mapped || (caller_uid >= m->uid[i].to && caller_uid - m->uid[i].to < m->uid[i].count);
        if (!mapped || (caller_pid <= 0 && caller_pidfd < 0))
                return sx_error(-EPERM, "namespace: owned by uid %u, not by the caller (uid %u)", (unsigned) owner,
                                (unsigned) caller_uid);
        if (caller_pidfd >= 0)
                ns = pidfd_user_ns(caller_pidfd);
        else {
                snprintf(path, sizeof(path), "/proc/%ld/ns/user", (long) caller_pid);
                ns = open(path, O_RDONLY | O_CLOEXEC);
                if (ns < 0)
                        ns = -ESRCH;
        }
        r = ns < 0 ? ns : ns_same(ns, userns_fd);
        if (r <= 0)
                return sx_error(r < 0 && r != -ESRCH ? r : -EPERM,
                                "namespace: owned by uid %u; the caller (uid %u) is neither its owner nor in it%s",
                                (unsigned) owner, (unsigned) caller_uid,
                                r == -ESRCH ? " (the process that connected has exited)" : "");
        if (getpwuid_r(owner, &pw, buf, sizeof(buf), &res) != 0 || !res)
                return sx_error(-EPERM, "namespace: owned by uid %u, which has no user record", (unsigned) owner);
        *ret_owner_gid = pw.pw_gid;
        return 0;
}

int userns_check_caller(int userns_fd, uid_t caller_uid, gid_t caller_gid, pid_t caller_pid, int caller_pidfd,
                        const char *root) {
        _cleanup_free_ UsernsMaps *m = calloc(1, sizeof(UsernsMaps));
        uid_t owner = caller_uid;
        int r;

        if (!m)
                return -ENOMEM;
        if (userns_fd < 0)
                return sx_error(-EPERM, "namespace: no user namespace fd given");
        r = check_ns_identity(userns_fd, caller_uid, &owner);
        if (r < 0)
                return r;
        r = userns_read_maps_isolated(userns_fd, m);
        if (r < 0)
                return sx_error(r, "namespace: cannot read its uid/gid maps: %m");
        if (m->n_uid == 0 || m->n_gid == 0)
                return sx_error(-EPERM, "namespace: its %s is not written", m->n_uid == 0 ? "uid_map" : "gid_map");
        if (caller_uid == 0)
                return 0;
        if (owner != caller_uid) {
                r = check_delegated(m, userns_fd, caller_uid, caller_pid, caller_pidfd, owner, &caller_gid);
                if (r < 0)
                        return r;
                caller_uid = owner;     /* served as the owner, with the owner's entitlement */
        }
        return check_entitlement(m, caller_uid, caller_gid, root);
}
