/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A small Varlink (varlink.org) implementation over json-c, both ends of one connection.
 *
 * Wire format: each message is one JSON object followed by a NUL byte on a SOCK_STREAM AF_UNIX
 * socket. File descriptors travel as SCM_RIGHTS on the sendmsg() that carries the first byte of the
 * message they belong to; parameters name them by index into that message's fds (systemd's rule).
 *
 * Receiving is bounded: a message longer than max_message bytes, more than max_fds fds for one
 * message, fds that arrive in the middle of a message, invalid UTF-8, nesting deeper than 32 levels
 * or anything but one JSON object between two NULs is a protocol error (-EBADMSG, -EMSGSIZE): the
 * caller closes the connection. Received fds are O_CLOEXEC (MSG_CMSG_CLOEXEC); fds of a message that
 * nobody took are closed with it.
 *
 * The fds of one recvmsg() belong to the first message that starts in the bytes it returned (a
 * sender that writes one message per sendmsg() with fds, as systemd's and ours do, gets what it
 * meant; a sender that pipelines an fd-less call in front of one with fds without waiting for the
 * first reply may see them attached to the earlier call).
 *
 * No logging; negative errno everywhere. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct json_object;

#define VARLINK_MESSAGE_MAX_DEFAULT (128U * 1024U)
#define VARLINK_FDS_MAX_DEFAULT 16U
#define VARLINK_FDS_MAX_KERNEL 253U     /* SCM_MAX_FD: what a client accepts in a reply */

typedef struct Varlink Varlink;

typedef struct VarlinkMessage {
        struct json_object *root;       /* the whole message object; owned */
        int *fds;                       /* owned */
        size_t n_fds;
} VarlinkMessage;
void varlink_message_done(VarlinkMessage *m);

/* Takes fd (also on failure). max_message 0 / max_fds 0 = the defaults above. */
int varlink_new(int fd, size_t max_message, size_t max_fds, Varlink **ret);
Varlink *varlink_free(Varlink *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(Varlink *, varlink_free);
int varlink_get_fd(const Varlink *v);

/* Framing without a socket (the parser the fuzzer drives): append bytes and the fds that came with
 * them (taken, also on failure), then take complete messages out. next: 1 and *ret filled, 0 when no
 * complete message is buffered, negative on a protocol error. */
int varlink_feed(Varlink *v, const void *data, size_t size, int *fds, size_t n_fds);
int varlink_next_message(Varlink *v, VarlinkMessage *ret);
/* Bytes buffered of a message not yet complete (0: we are between messages). */
size_t varlink_pending_bytes(const Varlink *v);

/* One message from the socket: waits at most timeout_ms (-1 forever) for each read. 1 and *ret
 * filled; 0 at a clean end of stream (between messages); -ECONNRESET at an end of stream in the
 * middle of a message; -ETIMEDOUT; protocol errors as above. */
int varlink_receive(Varlink *v, int timeout_ms, VarlinkMessage *ret);

/* Writes msg (borrowed) and a NUL, fds (borrowed; the kernel passes copies) on its first byte.
 * Blocking, MSG_NOSIGNAL: -EPIPE when the peer is gone. */
int varlink_send(Varlink *v, struct json_object *msg, const int *fds, size_t n_fds);

/* ---- server side ---- */

typedef struct VarlinkCall {
        Varlink *link;
        const char *method;             /* borrowed from the message */
        struct json_object *parameters; /* borrowed; an empty object when the call had none */
        bool oneway, more;
        const int *fds;                 /* the call's fds, borrowed (closed after the call) */
        size_t n_fds;
        int *reply_fds;                 /* queued for the reply; owned */
        size_t n_reply_fds;
        bool replied;
        int send_result;                /* of the reply's write: 0 or negative errno */
        void *userdata;
} VarlinkCall;

typedef int (*VarlinkMethodFunc)(VarlinkCall *c);

typedef struct VarlinkMethod {
        const char *name;               /* fully qualified: "io.systemd.MountFileSystem.MountImage" */
        VarlinkMethodFunc func;
} VarlinkMethod;

typedef struct VarlinkInterface {
        const char *name;               /* "io.systemd.MountFileSystem" */
        const char *description;        /* its IDL text, for GetInterfaceDescription */
} VarlinkInterface;

typedef struct VarlinkService {
        const char *vendor, *product, *version, *url;
        const VarlinkInterface *interfaces;     /* org.varlink.service is added by the library */
        size_t n_interfaces;
        const VarlinkMethod *methods;
        size_t n_methods;
        /* A method that returned a negative errno without replying: the service's error reply for
         * it (may be NULL: the connection is then closed). */
        int (*reply_errno)(VarlinkCall *c, int error);
} VarlinkService;

/* Handles one received call (takes m): org.varlink.service.GetInfo / GetInterfaceDescription,
 * unknown methods (MethodNotFound), "more" (refused with InvalidParameter "more": no method of
 * ours streams), "upgrade" (refused likewise), then the method. 0 to go on with the connection,
 * negative when it must be closed (protocol error, write failure). */
int varlink_dispatch(Varlink *v, const VarlinkService *s, VarlinkMessage *m, void *userdata);
/* Receive-dispatch loop until the peer closes (0) or an error (negative). */
int varlink_serve(Varlink *v, const VarlinkService *s, int timeout_ms, void *userdata);

/* Parameters. field missing or null: *ret = -EBADF and 0 if optional, else InvalidParameter.
 * The value must be an integer index into the call's fds; the fd is dup'ed (F_DUPFD_CLOEXEC) so a
 * method may use one index twice. On a bad value the InvalidParameter reply is sent and -EINVAL
 * returned (the method just returns it). */
int varlink_call_get_fd(VarlinkCall *c, const char *field, bool optional, int *ret_fd);
/* The same for an already extracted json value (an element of an array field). */
int varlink_call_fd_of(VarlinkCall *c, const char *field, struct json_object *value, int *ret_fd);
/* Queues fd (taken, also on failure) for the reply; returns its index. */
int varlink_call_push_fd(VarlinkCall *c, int fd);

/* Replies; params taken (may be NULL: {}). On a oneway call nothing is sent. */
/* A new object whose member key is a new, empty array (*ret_array, owned by the object): the
 * shape of most replies. NULL on ENOMEM. */
struct json_object *varlink_object_with_array(const char *key, struct json_object **ret_array);
int varlink_reply(VarlinkCall *c, struct json_object *params);
int varlink_reply_error(VarlinkCall *c, const char *error, struct json_object *params);
int varlink_reply_invalid_parameter(VarlinkCall *c, const char *parameter);
/* The same with a "message" field beside "parameter" (clients that know only the spec's field
 * ignore it), saying what was wrong with it; NULL or "" = none. */
int varlink_reply_invalid_parameter_message(VarlinkCall *c, const char *parameter, const char *message);
/* Refuses every field of the parameters not in the NULL-terminated list (InvalidParameter naming
 * it). Returns -EINVAL after replying, 0 if all are known. */
int varlink_call_check_fields(VarlinkCall *c, const char * const *known);

/* ---- client side ---- */

/* Connects to an AF_UNIX socket path (SOCK_STREAM, O_CLOEXEC). Replies may carry up to
 * VARLINK_FDS_MAX_KERNEL fds and max_message bytes (0: 16 MiB). timeout_ms > 0 bounds the wait
 * for room in the listener's backlog (-ETIMEDOUT); 0 waits as long as it takes. */
int varlink_connect(const char *path, size_t max_message, int timeout_ms, Varlink **ret);

typedef struct VarlinkReply {
        VarlinkMessage message;         /* owned */
        struct json_object *parameters; /* borrowed from message; an empty object if none */
        const char *error;              /* borrowed; NULL on success */
} VarlinkReply;
void varlink_reply_done(VarlinkReply *r);

/* Sends one call (params borrowed, may be NULL; fds borrowed) and waits for its reply.
 * 0 and *ret filled (check ret->error); -ECONNRESET if the server closed without replying;
 * -EBADMSG if the reply is not a Varlink reply or says "continues" (we ask for no streams). */
int varlink_call(Varlink *v, const char *method, struct json_object *params, const int *fds,
                 size_t n_fds, int timeout_ms, VarlinkReply *ret);
/* The same with "oneway": true; no reply is read. */
int varlink_call_oneway(Varlink *v, const char *method, struct json_object *params, const int *fds,
                        size_t n_fds);
/* A reply's fd by index from an integer field of obj (not dup'ed: taken out of the reply, so each
 * index once). -EBADMSG if the field is no valid index, -ENOENT if absent. */
int varlink_reply_take_fd(VarlinkReply *r, struct json_object *obj, const char *field, int *ret_fd);
int varlink_reply_take_fd_index(VarlinkReply *r, struct json_object *value, int *ret_fd);
