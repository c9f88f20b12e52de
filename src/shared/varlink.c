/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <json-c/json.h>
#include <poll.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "varlink.h"

#define VARLINK_JSON_DEPTH 32
#define VARLINK_CLIENT_MESSAGE_MAX (16U * 1024U * 1024U)
#define VARLINK_READ_CHUNK (64U * 1024U)

/* fds of one recvmsg(): they belong to the first message starting at or after `pos` within
 * [pos, pos + len) of the stream. */
typedef struct FdBatch {
        uint64_t pos, len;
        int *fds;
        size_t n_fds;
} FdBatch;

struct Varlink {
        int fd;
        size_t max_message, max_fds;
        char *buf;                      /* bytes not yet taken out as messages */
        size_t buf_len, buf_alloc;
        uint64_t buf_pos;               /* stream position of buf[0] */
        FdBatch *batches;
        size_t n_batches, n_pending_fds;
        bool eof;
};

static void close_fds(int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                safe_close(fds[i]);
}

void varlink_message_done(VarlinkMessage *m) {
        if (!m)
                return;
        if (m->root)
                json_object_put(m->root);
        close_fds(m->fds, m->n_fds);
        free(m->fds);
        *m = (VarlinkMessage) {};
}

int varlink_new(int fd, size_t max_message, size_t max_fds, Varlink **ret) {
        Varlink *v;

        v = calloc(1, sizeof(*v));
        if (!v) {
                safe_close(fd);
                return -ENOMEM;
        }
        v->fd = fd;
        v->max_message = max_message ?: VARLINK_MESSAGE_MAX_DEFAULT;
        v->max_fds = max_fds ?: VARLINK_FDS_MAX_DEFAULT;
        *ret = v;
        return 0;
}

static void drop_batches(Varlink *v) {
        for (size_t i = 0; i < v->n_batches; i++) {
                close_fds(v->batches[i].fds, v->batches[i].n_fds);
                free(v->batches[i].fds);
        }
        free(v->batches);
        v->batches = NULL;
        v->n_batches = v->n_pending_fds = 0;
}

Varlink *varlink_free(Varlink *v) {
        if (!v)
                return NULL;
        drop_batches(v);
        free(v->buf);
        safe_close(v->fd);
        free(v);
        return NULL;
}

int varlink_get_fd(const Varlink *v) {
        return v->fd;
}

size_t varlink_pending_bytes(const Varlink *v) {
        return v->buf_len;
}

static int buffer_reserve(Varlink *v, size_t extra) {
        size_t want = v->buf_len + extra;
        char *n;

        if (want <= v->buf_alloc)
                return 0;
        want = want < 4096 ? 4096 : want;
        n = realloc(v->buf, want);
        if (!n)
                return -ENOMEM;
        v->buf = n;
        v->buf_alloc = want;
        return 0;
}

static int add_batch(Varlink *v, uint64_t pos, uint64_t len, int *fds, size_t n_fds) {
        FdBatch *b;
        int *copy;

        if (n_fds == 0)
                return 0;
        if (v->n_pending_fds + n_fds > v->max_fds) {
                close_fds(fds, n_fds);
                return -EMSGSIZE;
        }
        copy = malloc(n_fds * sizeof(int));
        b = reallocarray(v->batches, v->n_batches + 1, sizeof(FdBatch));
        if (!copy || !b) {
                free(copy);
                if (b)
                        v->batches = b;
                close_fds(fds, n_fds);
                return -ENOMEM;
        }
        memcpy(copy, fds, n_fds * sizeof(int));
        v->batches = b;
        v->batches[v->n_batches++] = (FdBatch) { .pos = pos, .len = len, .fds = copy, .n_fds = n_fds };
        v->n_pending_fds += n_fds;
        return 0;
}

int varlink_feed(Varlink *v, const void *data, size_t size, int *fds, size_t n_fds) {
        uint64_t pos = v->buf_pos + v->buf_len;
        int r;

        if (size == 0) {
                /* fds without a byte cannot happen on a stream socket; refuse them anyway */
                close_fds(fds, n_fds);
                return n_fds > 0 ? -EBADMSG : 0;
        }
        r = add_batch(v, pos, size, fds, n_fds);
        if (r < 0)
                return r;
        r = buffer_reserve(v, size);
        if (r < 0)
                return r;
        memcpy(v->buf + v->buf_len, data, size);
        v->buf_len += size;
        return 0;
}

/* The fds of the message starting at stream position `start`: the batch whose bytes hold that
 * start. A batch that lies entirely before it came in the middle of a message: protocol error. */
static int take_batch(Varlink *v, uint64_t start, int **ret_fds, size_t *ret_n) {
        *ret_fds = NULL;
        *ret_n = 0;
        while (v->n_batches > 0 && v->batches[0].pos <= start) {
                FdBatch b = v->batches[0];

                memmove(v->batches, v->batches + 1, (v->n_batches - 1) * sizeof(FdBatch));
                v->n_batches--;
                v->n_pending_fds -= b.n_fds;
                if (b.pos + b.len <= start || *ret_fds) {
                        close_fds(b.fds, b.n_fds);
                        free(b.fds);
                        if (*ret_fds) {
                                close_fds(*ret_fds, *ret_n);
                                free(TAKE_PTR(*ret_fds));
                                *ret_n = 0;
                        }
                        return -EBADMSG;
                }
                *ret_fds = b.fds;
                *ret_n = b.n_fds;
        }
        return 0;
}

static int parse_json(const char *s, size_t len, struct json_object **ret) {
        struct json_tokener *tok;
        struct json_object *o;
        bool complete;

        tok = json_tokener_new_ex(VARLINK_JSON_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, s, (int) len);
        /* the object must end exactly at the NUL: no trailing bytes, nothing left unparsed */
        complete = o && json_tokener_get_error(tok) == json_tokener_success &&
                   json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        if (!complete || !json_object_is_type(o, json_type_object)) {
                if (o)
                        json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

int varlink_next_message(Varlink *v, VarlinkMessage *ret) {
        _cleanup_free_ int *fds = NULL;
        struct json_object *o = NULL;
        size_t n_fds = 0, len;
        char *nul;
        int r;

        nul = v->buf_len > 0 ? memchr(v->buf, 0, v->buf_len) : NULL;
        if (!nul)
                return v->buf_len >= v->max_message ? -EMSGSIZE : 0;
        len = (size_t) (nul - v->buf);
        if (len >= v->max_message)
                return -EMSGSIZE;
        r = take_batch(v, v->buf_pos, &fds, &n_fds);
        if (r < 0)
                return r;
        r = parse_json(v->buf, len, &o);
        memmove(v->buf, nul + 1, v->buf_len - len - 1);
        v->buf_len -= len + 1;
        v->buf_pos += len + 1;
        /* a batch whose bytes lie wholly inside this message came with no message's first byte */
        if (r >= 0 && v->n_batches > 0 && v->batches[0].pos + v->batches[0].len <= v->buf_pos)
                r = -EBADMSG;
        if (r < 0) {
                if (o)
                        json_object_put(o);
                close_fds(fds, n_fds);
                return r;
        }
        *ret = (VarlinkMessage) { .root = o, .fds = TAKE_PTR(fds), .n_fds = n_fds };
        return 1;
}

/* The SCM_RIGHTS fds of a received message; anything else (credentials, a truncated list) is
 * closed and, if truncated, refused. */
static int collect_fds(struct msghdr *mh, int *fds, size_t max, size_t *ret_n) {
        size_t n = 0;
        bool bad = mh->msg_flags & MSG_CTRUNC;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
                size_t k;

                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int fd;

                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (n < max)
                                fds[n++] = fd;
                        else {
                                safe_close(fd);
                                bad = true;
                        }
                }
        }
        if (bad) {
                close_fds(fds, n);
                return -EMSGSIZE;
        }
        *ret_n = n;
        return 0;
}

/* One recvmsg() into the buffer: 1 bytes read, 0 end of stream, negative errno. */
static int read_some(Varlink *v, int timeout_ms) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * VARLINK_FDS_MAX_KERNEL)];
        } control;
        int fds[VARLINK_FDS_MAX_KERNEL];
        size_t n_fds = 0, room;
        struct pollfd p = { .fd = v->fd, .events = POLLIN };
        ssize_t n;
        int r;

        /* never read past what one message may hold, so a flood cannot grow the buffer */
        room = v->max_message + 1 > v->buf_len ? v->max_message + 1 - v->buf_len : 1;
        room = room > VARLINK_READ_CHUNK ? VARLINK_READ_CHUNK : room;
        r = buffer_reserve(v, room);
        if (r < 0)
                return r;
        r = poll(&p, 1, timeout_ms);
        if (r < 0)
                return errno == EINTR ? -EINTR : negative_errno();
        if (r == 0)
                return -ETIMEDOUT;

        struct iovec iov = { .iov_base = v->buf + v->buf_len, .iov_len = room };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = &control, .msg_controllen = CMSG_SPACE(sizeof(int) * v->max_fds),
        };
        n = recvmsg(v->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? -EAGAIN : negative_errno();
        r = collect_fds(&mh, fds, v->max_fds, &n_fds);
        if (r < 0)
                return r;
        if (n == 0) {
                close_fds(fds, n_fds);
                return 0;
        }
        r = add_batch(v, v->buf_pos + v->buf_len, (uint64_t) n, fds, n_fds);
        if (r < 0)
                return r;
        v->buf_len += (size_t) n;
        return 1;
}

int varlink_receive(Varlink *v, int timeout_ms, VarlinkMessage *ret) {
        int r;

        for (;;) {
                r = varlink_next_message(v, ret);
                if (r != 0)
                        return r;
                if (v->eof)
                        return v->buf_len > 0 || v->n_batches > 0 ? -ECONNRESET : 0;
                r = read_some(v, timeout_ms);
                if (r == -EAGAIN || r == -EINTR)
                        continue;
                if (r < 0)
                        return r;
                if (r == 0)
                        v->eof = true;
        }
}

static int send_all(int fd, const char *data, size_t size, const int *fds, size_t n_fds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * VARLINK_FDS_MAX_KERNEL)];
        } control = {};

        if (n_fds > VARLINK_FDS_MAX_KERNEL)
                return -E2BIG;
        while (size > 0) {
                struct iovec iov = { .iov_base = (void *) data, .iov_len = size };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
                ssize_t n;

                if (n_fds > 0) {
                        mh.msg_control = &control;
                        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                        c->cmsg_level = SOL_SOCKET;
                        c->cmsg_type = SCM_RIGHTS;
                        c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                        memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
                }
                n = sendmsg(fd, &mh, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                struct pollfd p = { .fd = fd, .events = POLLOUT };
                                (void) poll(&p, 1, -1);
                                continue;
                        }
                        return negative_errno();
                }
                n_fds = 0;      /* the fds went with the first byte */
                data += n;
                size -= (size_t) n;
        }
        return 0;
}

int varlink_send(Varlink *v, struct json_object *msg, const int *fds, size_t n_fds) {
        const char *s;
        size_t len;

        s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                              &len);
        if (!s)
                return -ENOMEM;
        /* json-c's string is NUL-terminated: send the terminator with it */
        return send_all(v->fd, s, len + 1, fds, n_fds);
}

/* ---- server side ---- */

static struct json_object *error_message(const char *error, struct json_object *params) {
        struct json_object *o = json_object_new_object();

        if (!o) {
                if (params)
                        json_object_put(params);
                return NULL;
        }
        json_object_object_add(o, "error", json_object_new_string(error));
        json_object_object_add(o, "parameters", params ?: json_object_new_object());
        return o;
}

static void call_drop_reply_fds(VarlinkCall *c) {
        close_fds(c->reply_fds, c->n_reply_fds);
        free(c->reply_fds);
        c->reply_fds = NULL;
        c->n_reply_fds = 0;
}

static int call_send(VarlinkCall *c, struct json_object *o) {
        int r;

        if (!o) {
                call_drop_reply_fds(c);
                return -ENOMEM;
        }
        c->replied = true;
        if (c->oneway)
                r = 0;
        else
                r = varlink_send(c->link, o, c->reply_fds, c->n_reply_fds);
        json_object_put(o);
        call_drop_reply_fds(c);
        c->send_result = r;
        return r;
}

int varlink_reply(VarlinkCall *c, struct json_object *params) {
        struct json_object *o = json_object_new_object();

        if (!o) {
                if (params)
                        json_object_put(params);
                return call_send(c, NULL);
        }
        json_object_object_add(o, "parameters", params ?: json_object_new_object());
        return call_send(c, o);
}

int varlink_reply_error(VarlinkCall *c, const char *error, struct json_object *params) {
        /* an error carries no fds: what was queued is dropped */
        call_drop_reply_fds(c);
        return call_send(c, error_message(error, params));
}

int varlink_reply_invalid_parameter(VarlinkCall *c, const char *parameter) {
        return varlink_reply_invalid_parameter_message(c, parameter, NULL);
}

int varlink_reply_invalid_parameter_message(VarlinkCall *c, const char *parameter, const char *message) {
        struct json_object *p = json_object_new_object();
        int r;

        if (p) {
                json_object_object_add(p, "parameter", json_object_new_string(parameter));
                if (!isempty(message))
                        json_object_object_add(p, "message", json_object_new_string(message));
        }
        r = varlink_reply_error(c, "org.varlink.service.InvalidParameter", p);
        return r < 0 ? r : -EINVAL;
}

int varlink_call_check_fields(VarlinkCall *c, const char * const *known) {
        json_object_object_foreach(c->parameters, key, val) {
                bool found = false;

                (void) val;
                for (const char * const *k = known; *k; k++)
                        if (streq(*k, key))
                                found = true;
                if (!found)
                        return varlink_reply_invalid_parameter(c, key);
        }
        return 0;
}

int varlink_call_fd_of(VarlinkCall *c, const char *field, struct json_object *value, int *ret_fd) {
        int64_t i;
        int fd;

        if (!json_object_is_type(value, json_type_int))
                return varlink_reply_invalid_parameter(c, field);
        errno = 0;
        i = json_object_get_int64(value);
        if (errno != 0 || i < 0 || (uint64_t) i >= c->n_fds)
                return varlink_reply_invalid_parameter(c, field);
        fd = fcntl(c->fds[i], F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        *ret_fd = fd;
        return 0;
}

int varlink_call_get_fd(VarlinkCall *c, const char *field, bool optional, int *ret_fd) {
        struct json_object *value = NULL;

        if (!json_object_object_get_ex(c->parameters, field, &value) || !value) {
                if (!optional)
                        return varlink_reply_invalid_parameter(c, field);
                *ret_fd = -EBADF;
                return 0;
        }
        return varlink_call_fd_of(c, field, value, ret_fd);
}

int varlink_call_push_fd(VarlinkCall *c, int fd) {
        int *n;

        if (fd < 0)
                return -EBADF;
        if (c->n_reply_fds >= VARLINK_FDS_MAX_KERNEL) {
                safe_close(fd);
                return -E2BIG;
        }
        n = reallocarray(c->reply_fds, c->n_reply_fds + 1, sizeof(int));
        if (!n) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->reply_fds = n;
        c->reply_fds[c->n_reply_fds] = fd;
        return (int) c->n_reply_fds++;
}

struct json_object *varlink_object_with_array(const char *key, struct json_object **ret_array) {
        struct json_object *o = json_object_new_object(), *a = json_object_new_array();

        if (!o || !a || json_object_object_add(o, key, a) < 0) {
                json_object_put(o);
                json_object_put(a);
                return NULL;
        }
        *ret_array = a;
        return o;
}

static int reply_get_info(VarlinkCall *c, const VarlinkService *s) {
        struct json_object *l, *p = varlink_object_with_array("interfaces", &l);

        if (!p)
                return -ENOMEM;
        json_object_object_add(p, "vendor", json_object_new_string(strempty(s->vendor)));
        json_object_object_add(p, "product", json_object_new_string(strempty(s->product)));
        json_object_object_add(p, "version", json_object_new_string(strempty(s->version)));
        json_object_object_add(p, "url", json_object_new_string(strempty(s->url)));
        json_object_array_add(l, json_object_new_string("org.varlink.service"));
        for (size_t i = 0; i < s->n_interfaces; i++)
                json_object_array_add(l, json_object_new_string(s->interfaces[i].name));
        return varlink_reply(c, p);
}

static const char varlink_service_idl[] =
        "# The Varlink Service Interface is provided by every varlink service. It\n"
        "# describes the service and the interfaces it implements.\n"
        "interface org.varlink.service\n"
        "\n"
        "# Get a list of all the interfaces a service provides and information\n"
        "# about the implementation.\n"
        "method GetInfo() -> (\n"
        "  vendor: string,\n"
        "  product: string,\n"
        "  version: string,\n"
        "  url: string,\n"
        "  interfaces: []string\n"
        ")\n"
        "\n"
        "# Get the description of an interface that is implemented by this service.\n"
        "method GetInterfaceDescription(interface: string) -> (description: string)\n"
        "\n"
        "# The requested interface was not found.\n"
        "error InterfaceNotFound (interface: string)\n"
        "\n"
        "# The requested method was not found\n"
        "error MethodNotFound (method: string)\n"
        "\n"
        "# The interface defines the requested method, but the service does not\n"
        "# implement it.\n"
        "error MethodNotImplemented (method: string)\n"
        "\n"
        "# One of the passed parameters is invalid.\n"
        "error InvalidParameter (parameter: string)\n"
        "\n"
        "# Client is denied access\n"
        "error PermissionDenied ()\n"
        "\n"
        "# Method is expected to be called with 'more' set to true, but wasn't\n"
        "error ExpectedMore ()\n";

static int reply_interface_description(VarlinkCall *c, const VarlinkService *s) {
        static const char * const fields[] = { "interface", NULL };
        struct json_object *name = NULL, *p;
        const char *found = NULL, *n;
        int r;

        r = varlink_call_check_fields(c, fields);
        if (r < 0)
                return r;
        if (!json_object_object_get_ex(c->parameters, "interface", &name) ||
            !json_object_is_type(name, json_type_string))
                return varlink_reply_invalid_parameter(c, "interface");
        n = json_object_get_string(name);
        if (streq(n, "org.varlink.service"))
                found = varlink_service_idl;
        for (size_t i = 0; !found && i < s->n_interfaces; i++)
                if (streq(n, s->interfaces[i].name))
                        found = s->interfaces[i].description;
        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        if (!found) {
                json_object_object_add(p, "interface", json_object_new_string(n));
                return varlink_reply_error(c, "org.varlink.service.InterfaceNotFound", p);
        }
        json_object_object_add(p, "description", json_object_new_string(found));
        return varlink_reply(c, p);
}

static int reply_method_not_found(VarlinkCall *c) {
        struct json_object *p = json_object_new_object();

        if (p)
                json_object_object_add(p, "method", json_object_new_string(c->method));
        return varlink_reply_error(c, "org.varlink.service.MethodNotFound", p);
}

/* The message's envelope: method (a string), parameters (an object, or absent/null), oneway,
 * more, upgrade (booleans). -EBADMSG for anything else: not a call we could answer. */
static int parse_call(VarlinkMessage *m, VarlinkCall *c, bool *ret_upgrade) {
        struct json_object *method = NULL, *params = NULL;
        bool upgrade = false;

        json_object_object_foreach(m->root, key, val) {
                bool *flag = streq(key, "oneway") ? &c->oneway :
                             streq(key, "more") ? &c->more :
                             streq(key, "upgrade") ? &upgrade : NULL;

                if (streq(key, "method"))
                        method = val;
                else if (streq(key, "parameters"))
                        params = val;
                else if (flag) {
                        if (val && !json_object_is_type(val, json_type_boolean))
                                return -EBADMSG;
                        *flag = val && json_object_get_boolean(val);
                }
                /* other keys: the spec reserves none; ignore them like other implementations */
        }
        if (!method || !json_object_is_type(method, json_type_string))
                return -EBADMSG;
        if (params && !json_object_is_type(params, json_type_object))
                return -EBADMSG;
        if (!params) {
                params = json_object_new_object();
                if (!params)
                        return -ENOMEM;
                json_object_object_add(m->root, "parameters", params);
        }
        c->method = json_object_get_string(method);
        c->parameters = params;
        *ret_upgrade = upgrade;
        return 0;
}

static int run_method(VarlinkCall *c, const VarlinkService *s) {
        const VarlinkMethod *found = NULL;
        int r;

        if (streq(c->method, "org.varlink.service.GetInfo")) {
                static const char * const none[] = { NULL };
                r = varlink_call_check_fields(c, none);
                return r < 0 ? r : reply_get_info(c, s);
        }
        if (streq(c->method, "org.varlink.service.GetInterfaceDescription"))
                return reply_interface_description(c, s);
        for (size_t i = 0; i < s->n_methods; i++)
                if (streq(s->methods[i].name, c->method))
                        found = s->methods + i;
        if (!found)
                return reply_method_not_found(c);
        return found->func(c);
}

int varlink_dispatch(Varlink *v, const VarlinkService *s, VarlinkMessage *m, void *userdata) {
        VarlinkCall c = { .link = v, .userdata = userdata, .fds = m->fds, .n_fds = m->n_fds };
        bool upgrade = false;
        int r;

        r = parse_call(m, &c, &upgrade);
        if (r >= 0) {
                if (c.more)
                        r = varlink_reply_invalid_parameter(&c, "more");
                else if (upgrade)
                        r = varlink_reply_invalid_parameter(&c, "upgrade");
                else
                        r = run_method(&c, s);
                if (r < 0 && !c.replied && r != -EPIPE && s->reply_errno)
                        r = s->reply_errno(&c, r);
                /* a method that refused the call has answered it: the connection goes on unless
                 * the answer could not be written */
                if (c.replied)
                        r = c.send_result;
                if (!c.replied && r >= 0 && !c.oneway)
                        r = -EPROTO;    /* a method that returned without an answer */
        }
        call_drop_reply_fds(&c);
        varlink_message_done(m);
        return r;
}

int varlink_serve(Varlink *v, const VarlinkService *s, int timeout_ms, void *userdata) {
        for (;;) {
                VarlinkMessage m = {};
                int r;

                r = varlink_receive(v, timeout_ms, &m);
                if (r <= 0)
                        return r;
                r = varlink_dispatch(v, s, &m, userdata);
                if (r < 0)
                        return r;
        }
}

/* ---- client side ---- */

int varlink_connect(const char *path, size_t max_message, int timeout_ms, Varlink **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        /* A listener that does not accept (stopped, wedged) and whose backlog is full holds a
         * blocking connect() for good; SO_SNDTIMEO bounds it (and sends, which retry anyway). */
        if (timeout_ms > 0) {
                struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
                if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                        return negative_errno();
        }
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return errno == EAGAIN ? -ETIMEDOUT : negative_errno();
        return varlink_new(TAKE_FD(fd), max_message ?: VARLINK_CLIENT_MESSAGE_MAX, VARLINK_FDS_MAX_KERNEL,
                           ret);
}

void varlink_reply_done(VarlinkReply *r) {
        if (!r)
                return;
        varlink_message_done(&r->message);
        *r = (VarlinkReply) {};
}

static struct json_object *call_message(const char *method, struct json_object *params, bool oneway) {
        struct json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "method", json_object_new_string(method));
        json_object_object_add(o, "parameters", params ? json_object_get(params) : json_object_new_object());
        if (oneway)
                json_object_object_add(o, "oneway", json_object_new_boolean(true));
        return o;
}

static int send_call(Varlink *v, const char *method, struct json_object *params, const int *fds,
                     size_t n_fds, bool oneway) {
        struct json_object *o = call_message(method, params, oneway);
        int r;

        if (!o)
                return -ENOMEM;
        r = varlink_send(v, o, fds, n_fds);
        json_object_put(o);
        return r;
}

int varlink_call_oneway(Varlink *v, const char *method, struct json_object *params, const int *fds,
                        size_t n_fds) {
        return send_call(v, method, params, fds, n_fds, true);
}

int varlink_call(Varlink *v, const char *method, struct json_object *params, const int *fds,
                 size_t n_fds, int timeout_ms, VarlinkReply *ret) {
        VarlinkMessage m = {};
        struct json_object *p = NULL, *e = NULL, *cont = NULL;
        int r;

        r = send_call(v, method, params, fds, n_fds, false);
        if (r < 0 && r != -EPIPE && r != -ECONNRESET)
                return r;
        /* A server that refused the connection (over a limit) said why before it closed it: that
         * is the answer, if it is there. */
        int q = varlink_receive(v, r < 0 ? 0 : timeout_ms, &m);
        if (r < 0 && q <= 0)
                return r;
        r = q;
        if (r == 0)
                return -ECONNRESET;
        if (r < 0)
                return r;
        if ((json_object_object_get_ex(m.root, "continues", &cont) && json_object_get_boolean(cont)) ||
            (json_object_object_get_ex(m.root, "error", &e) && !json_object_is_type(e, json_type_string)) ||
            (json_object_object_get_ex(m.root, "parameters", &p) && p &&
             !json_object_is_type(p, json_type_object))) {
                varlink_message_done(&m);
                return -EBADMSG;
        }
        if (!p) {
                p = json_object_new_object();
                if (!p) {
                        varlink_message_done(&m);
                        return -ENOMEM;
                }
                json_object_object_add(m.root, "parameters", p);
        }
        *ret = (VarlinkReply) { .message = m, .parameters = p, .error = e ? json_object_get_string(e) : NULL };
        return 0;
}

int varlink_reply_take_fd_index(VarlinkReply *r, struct json_object *value, int *ret_fd) {
        int64_t i;

        if (!value || !json_object_is_type(value, json_type_int))
                return -EBADMSG;
        i = json_object_get_int64(value);
        if (i < 0 || (uint64_t) i >= r->message.n_fds || r->message.fds[i] < 0)
                return -EBADMSG;
        *ret_fd = TAKE_FD(r->message.fds[i]);
        return 0;
}

int varlink_reply_take_fd(VarlinkReply *r, struct json_object *obj, const char *field, int *ret_fd) {
        struct json_object *value = NULL;

        if (!json_object_object_get_ex(obj, field, &value) || !value)
                return -ENOENT;
        return varlink_reply_take_fd_index(r, value, ret_fd);
}
