/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The Varlink parser and dispatcher on arbitrary bytes: the input is cut into reads (each read's
 * length and number of fds taken from a control byte), fed with /dev/null fds as a socket would
 * deliver them, and every complete message dispatched to a service whose methods take fds by index
 * (single and in arrays) and check their fields. Properties: no crash, no fd leaked, the buffer
 * never holds more than one message's limit, replies are valid Varlink messages. */

#include <dirent.h>
#include <json-c/json.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "varlink.h"

#define MSG_MAX 4096

static int sp[2] = { -1, -1 };

static int m_take(VarlinkCall *c) {
        static const char * const fields[] = { "fd", "fds", "x", NULL };
        struct json_object *l = NULL, *p;
        int r, fd = -EBADF;

        r = varlink_call_check_fields(c, fields);
        if (r < 0)
                return r;
        r = varlink_call_get_fd(c, "fd", true, &fd);
        if (r < 0)
                return r;
        p = json_object_new_object();
        if (fd >= 0)
                json_object_object_add(p, "fd", json_object_new_int(varlink_call_push_fd(c, fd)));
        if (json_object_object_get_ex(c->parameters, "fds", &l) && json_object_is_type(l, json_type_array))
                for (size_t i = 0; i < json_object_array_length(l) && i < 8; i++) {
                        r = varlink_call_fd_of(c, "fds", json_object_array_get_idx(l, i), &fd);
                        if (r < 0) {
                                json_object_put(p);
                                return r;
                        }
                        (void) varlink_call_push_fd(c, fd);
                }
        return varlink_reply(c, p);
}

static int m_fail(VarlinkCall *c) {
        return -EIO;
}

static int reply_errno(VarlinkCall *c, int e) {
        return varlink_reply_error(c, "fuzz.Failed", NULL);
}

static const VarlinkInterface interfaces[] = { { "fuzz", "interface fuzz\nmethod Take() -> ()\n" } };
static const VarlinkMethod methods[] = { { "fuzz.Take", m_take }, { "fuzz.Fail", m_fail } };
static const VarlinkService service = {
        .vendor = "v", .product = "p", .version = "1", .url = "u",
        .interfaces = interfaces, .n_interfaces = 1, .methods = methods, .n_methods = 2,
        .reply_errno = reply_errno,
};

static size_t count_fds(void) {
        size_t n = 0;
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;

        while (d && (de = readdir(d)))
                n += de->d_name[0] != '.';
        if (d)
                closedir(d);
        return n;
}

/* Reads every reply the dispatcher wrote; each must parse as a JSON object, and their fds are
 * closed. */
static void drain(void) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * VARLINK_FDS_MAX_KERNEL)];
        } control;
        char buf[65536];

        for (;;) {
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                                     .msg_controllen = sizeof(control.buf) };
                ssize_t n = recvmsg(sp[1], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (n <= 0)
                        return;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_type == SCM_RIGHTS)
                                for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                        int fd;
                                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                                        close(fd);
                                }
        }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        int size = 4 * 1024 * 1024;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                abort();
        (void) setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        (void) setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        return 0;
}

/* One read: control byte c: length 1 + (c & 0x3f) * 4 bytes (or the rest), fds (c >> 6) * 3. */
static int feed_one(Varlink *v, const uint8_t **data, size_t *size) {
        uint8_t c = **data;
        size_t len = 1 + (size_t) (c & 0x3f) * 4, n_fds = (size_t) (c >> 6) * 3;
        int fds[9];

        (*data)++, (*size)--;
        if (len > *size)
                len = *size;
        for (size_t i = 0; i < n_fds; i++)
                fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int r = varlink_feed(v, *data, len, fds, n_fds);
        *data += len, *size -= len;
        return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t before = count_fds();
        Varlink *v = NULL;
        int r = 0;

        if (size > 64 * 1024)
                return -1;
        FUZZ_ASSERT(varlink_new(fcntl(sp[0], F_DUPFD_CLOEXEC, 3), MSG_MAX, 4, &v) == 0, "varlink_new");
        while (size > 0 && r >= 0) {
                r = feed_one(v, &data, &size);
                while (r >= 0) {
                        VarlinkMessage m = {};
                        r = varlink_next_message(v, &m);
                        if (r <= 0)
                                break;
                        FUZZ_ASSERT(m.root && json_object_is_type(m.root, json_type_object), "message not an object");
                        FUZZ_ASSERT(m.n_fds <= 4, "%zu fds on one message", m.n_fds);
                        r = varlink_dispatch(v, &service, &m, NULL);
                        drain();
                }
                FUZZ_ASSERT(varlink_pending_bytes(v) <= MSG_MAX + 256, "buffer grew to %zu", varlink_pending_bytes(v));
                if (r == 0)
                        r = 1;
        }
        FUZZ_ASSERT(r >= 0 || r == -EBADMSG || r == -EMSGSIZE || r == -ENOMEM || r == -EPROTO,
                    "unexpected error %d", r);
        varlink_free(v);
        drain();
        FUZZ_ASSERT(count_fds() == before, "fds leaked: %zu → %zu", before, count_fds());
        return 0;
}
