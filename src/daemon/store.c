/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The layer store's side in the main process: pins from workers, their copies in the service
 * manager's fd store (so that sharing survives a restart of the daemon), and garbage collection. */

#include <stdio.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include "daemon.h"

/* An fd store name may hold printable ASCII but ':' (systemd's fdname_is_valid()), at most 255
 * characters: every other byte, ':' and the escape character '%' become %XX. */
int daemon_fdname_from_key(const char *key, char **ret) {
        size_t n = strlen(key), k = STRLEN(DAEMON_FDNAME_PREFIX);
        char *s = malloc(k + 3 * n + 1), *p;

        if (!s)
                return -ENOMEM;
        p = stpcpy(s, DAEMON_FDNAME_PREFIX);
        for (const unsigned char *c = (const unsigned char *) key; *c; c++)
                if (*c <= ' ' || *c >= 127 || *c == ':' || *c == '%')
                        p += sprintf(p, "%%%02X", *c);
                else
                        *p++ = (char) *c;
        *p = 0;
        if (p - s > 255) {
                free(s);
                return -ENAMETOOLONG;
        }
        *ret = s;
        return 0;
}

int daemon_key_from_fdname(const char *name, char **ret) {
        const char *e = startswith_ptr(name, DAEMON_FDNAME_PREFIX);
        char *s, *p;

        if (!e || !*e)
                return -EINVAL;
        s = p = malloc(strlen(e) + 1);
        if (!s)
                return -ENOMEM;
        for (; *e; e++) {
                if (*e != '%') {
                        *p++ = *e;
                        continue;
                }
                int a = unhexchar(e[1]), b = a < 0 ? -EINVAL : unhexchar(e[2]);
                if (b < 0 || (a == 0 && b == 0)) {
                        free(s);
                        return -EINVAL;
                }
                *p++ = (char) (a << 4 | b);
                e += 2;
        }
        *p = 0;
        *ret = s;
        return 0;
}

static void fdstore_push(Daemon *d, const char *key, int fd) {
        _cleanup_free_ char *name = NULL, *msg = NULL;
        int r;

        if (!d->fdstore)
                return;
        r = daemon_fdname_from_key(key, &name);
        if (r >= 0)
                r = asprintf_safe(&msg, "FDSTORE=1\nFDPOLL=0\nFDNAME=%s", name);
        if (r >= 0)
                r = sd_pid_notify_with_fds(0, false, msg, &fd, 1);
        if (r < 0)
                fprintf(stderr, "sysext-idmapd: could not put layer %s into the fd store: %s\n", key,
                        strerror(-r));
}

static void fdstore_remove(Daemon *d, const char *key) {
        _cleanup_free_ char *name = NULL, *msg = NULL;

        if (!d->fdstore || daemon_fdname_from_key(key, &name) < 0 ||
            asprintf_safe(&msg, "FDSTOREREMOVE=1\nFDNAME=%s", name) < 0)
                return;
        (void) sd_pid_notify(0, false, msg);
}

int daemon_store_add(Daemon *d, const char *key, int fd) {
        int old = -EBADF, r;

        /* two workers may have made the same superblock at once: keep the first, drop the second */
        if (broker_store_lookup(d->store, key, &old) > 0) {
                safe_close(fd);
                return 0;
        }
        fdstore_push(d, key, fd);
        r = broker_store_insert(d->store, key, fd);
        return r < 0 ? r : 1;
}

int daemon_store_gc(Daemon *d) {
        _cleanup_strv_free_ char **removed = NULL;
        int r;

        r = broker_store_gc(d->store, &removed);
        STRV_FOREACH(k, removed) {
                bool dormant = broker_store_lookup_dormant(d->store, *k, NULL, NULL) > 0;
                fdstore_remove(d, *k);
                fprintf(stderr, "sysext-idmapd: layer %s: %s\n", *k,
                        dormant ? "in no mount table but still in use (an overlay's layer): its device is kept"
                                : "in use nowhere: released");
        }
        return r;
}

/* One datagram: the key as bytes, one SCM_RIGHTS fd. Anything else is dropped. */
int daemon_read_report(Daemon *d) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 4)];
        } control;
        char key[512];
        struct iovec iov = { .iov_base = key, .iov_len = sizeof(key) - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control.buf) };
        int fd = -EBADF;
        ssize_t n;

        n = recvmsg(d->report_fds[0], &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : negative_errno();
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                        int x;
                        memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (fd < 0)
                                fd = x;
                        else
                                safe_close(x);
                }
        }
        key[n] = 0;
        if (fd < 0 || n == 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || strlen(key) != (size_t) n) {
                safe_close(fd);
                return 0;
        }
        return daemon_store_add(d, key, fd);
}

int daemon_add_listen_fd(Daemon *d, int fd) {
        int *n = reallocarray(d->listen_fds, d->n_listen_fds + 1, sizeof(int));

        if (!n) {
                safe_close(fd);
                return -ENOMEM;
        }
        d->listen_fds = n;
        d->listen_fds[d->n_listen_fds++] = fd;
        return 0;
}

/* Listening AF_UNIX stream sockets are ours to serve; fds named "layer.…" are the store's pins
 * from before a restart; anything else is closed. */
int daemon_take_listen_fds(Daemon *d) {
        _cleanup_strv_free_ char **names = NULL;
        int n, r;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return n;
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *name = names && (size_t) i < strv_length(names) ? names[i] : "";
                _cleanup_free_ char *key = NULL;

                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
                if (daemon_key_from_fdname(name, &key) >= 0) {
                        r = broker_store_insert(d->store, key, fd);
                        if (r < 0)
                                return r;
                } else if (sd_is_socket(fd, AF_UNIX, SOCK_STREAM, 1) > 0) {
                        r = daemon_add_listen_fd(d, fd);
                        if (r < 0)
                                return r;
                } else
                        safe_close(fd);
        }
        return n;
}
