/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <sys/socket.h>

#include "worker.h"

int worker_report_layer(Worker *w, const char *key, int pinned_fd) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = (void *) key, .iov_len = strlen(key) };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = &control, .msg_controllen = sizeof(control.buf),
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        int fd, r = 0;

        if (isempty(key) || pinned_fd < 0)
                return -EINVAL;
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pinned_fd, sizeof(int));
        if (w->report_fd >= 0 && sendmsg(w->report_fd, &mh, MSG_NOSIGNAL) < 0)
                r = negative_errno();

        /* later calls on this connection share it too */
        if (w->store && broker_store_lookup(w->store, key, &(int) { -EBADF }) == 0) {
                fd = fcntl(pinned_fd, F_DUPFD_CLOEXEC, 3);
                if (fd >= 0)
                        (void) broker_store_insert(w->store, key, fd);
        }
        return r;
}

int worker_serve(Worker *w, int connection_fd) {
        _cleanup_(varlink_freep) Varlink *v = NULL;
        int r;

        r = varlink_new(connection_fd, VARLINK_MESSAGE_MAX_DEFAULT, VARLINK_FDS_MAX_DEFAULT, &v);
        if (r < 0)
                return r;
        return varlink_serve(v, &daemon_service, w->request_timeout_ms, w);
}
