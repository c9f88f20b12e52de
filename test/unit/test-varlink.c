/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* varlink.c: framing (NUL-terminated messages, split and merged writes), limits (message size, fds
 * per message, fds arriving mid-message), malformed input, fd passing both ways over a socketpair,
 * the dispatcher (org.varlink.service, MethodNotFound, oneway, more, unknown fields, fd indexes),
 * and the client call. */

#include <json-c/json.h>
#include <sys/socket.h>

#include "test-helpers.h"
#include "varlink.h"

static int devnull(void) {
        return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static size_t open_fds(void) {
        size_t n = 0;
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;

        while (d && (de = readdir(d)))
                n += de->d_name[0] != '.';
        if (d)
                closedir(d);
        return n;
}

static Varlink *parser(void) {
        Varlink *v = NULL;

        if (varlink_new(-EBADF, 64, 2, &v) < 0)
                abort();
        return v;
}

static void test_framing(void) {
        _cleanup_(varlink_freep) Varlink *v = parser();
        VarlinkMessage m = {};
        int fds[2] = { devnull(), devnull() };

        CHECK(varlink_feed(v, "{\"a\":", 5, NULL, 0) == 0 && varlink_next_message(v, &m) == 0,
              "half a message is no message");
        CHECK(varlink_pending_bytes(v) == 5, "five bytes pending");
        CHECK(varlink_feed(v, "1}\0{}\0{", 7, fds, 2) == 0, "the rest, a second message and a third begun, with 2 fds");
        /* the fds came with bytes that start no message before "{}": they belong to that one */
        CHECK(varlink_next_message(v, &m) == 1 && m.n_fds == 0 &&
              json_object_get_int(json_object_object_get(m.root, "a")) == 1, "first message, no fds");
        varlink_message_done(&m);
        CHECK(varlink_next_message(v, &m) == 1 && m.n_fds == 2, "second message has the 2 fds");
        varlink_message_done(&m);
        CHECK(varlink_next_message(v, &m) == 0 && varlink_pending_bytes(v) == 1, "third pending");
}

static void bad_input(const char *what, const char *data, size_t size, int want) {
        _cleanup_(varlink_freep) Varlink *v = parser();
        VarlinkMessage m = {};
        int r;

        r = varlink_feed(v, data, size, NULL, 0);
        if (r >= 0)
                r = varlink_next_message(v, &m);
        varlink_message_done(&m);
        CHECK(r == want, "%s: %d (want %d)", what, r, want);
}

static void test_malformed(void) {
        char big[100];

        bad_input("not JSON", "garbage\0", 8, -EBADMSG);
        bad_input("array, not object", "[1]\0", 4, -EBADMSG);
        bad_input("trailing bytes", "{} x\0", 5, -EBADMSG);
        bad_input("two objects", "{}{}\0", 5, -EBADMSG);
        bad_input("empty message", "\0", 1, -EBADMSG);
        bad_input("invalid UTF-8", "{\"a\":\"\xff\"}\0", 10, -EBADMSG);
        memset(big, ' ', sizeof(big));
        bad_input("longer than the limit without NUL", big, sizeof(big), -EMSGSIZE);
        big[70] = 0;
        bad_input("longer than the limit with NUL", big, sizeof(big), -EMSGSIZE);

        const char deep[] = "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}";
        _cleanup_(varlink_freep) Varlink *v = NULL;
        VarlinkMessage m = {};
        CHECK(varlink_new(-EBADF, 1024, 2, &v) == 0 && varlink_feed(v, deep, sizeof(deep), NULL, 0) == 0 &&
              varlink_next_message(v, &m) == -EBADMSG, "nesting deeper than 32 refused");
}

static void test_fd_limits(void) {
        _cleanup_(varlink_freep) Varlink *v = parser();
        VarlinkMessage m = {};
        int fds[3] = { devnull(), devnull(), devnull() };
        size_t before;

        CHECK(varlink_feed(v, "{}", 2, fds, 3) == -EMSGSIZE, "3 fds over a limit of 2 refused");
        v = varlink_free(v);
        before = open_fds();
        v = parser();
        int a[1] = { devnull() }, b[1] = { devnull() };
        CHECK(varlink_feed(v, "{\"x\":", 5, a, 1) == 0 && varlink_feed(v, "1}\0", 3, b, 1) == 0, "fds mid-message fed");
        CHECK(varlink_next_message(v, &m) == -EBADMSG, "a second fd batch inside one message refused");
        v = varlink_free(v);
        CHECK(open_fds() == before, "no fd leaked (%zu → %zu)", before, open_fds());

        v = parser();
        int c[1] = { devnull() };
        CHECK(varlink_feed(v, "{}\0{\"long\":", 11, NULL, 0) == 0 && varlink_feed(v, "1", 1, c, 1) == 0 &&
              varlink_next_message(v, &m) == 1, "fd in the middle of a message fed");
        varlink_message_done(&m);
        CHECK(varlink_feed(v, "}\0", 2, NULL, 0) == 0 && varlink_next_message(v, &m) == -EBADMSG,
              "fd arriving mid-message refused");
        v = varlink_free(v);

        /* the tail of one message and the next one with its fds in one read (the kernel merges an
         * fd-less write with the following one that has fds): the fds are the second message's */
        v = parser();
        int e[1] = { devnull() };
        CHECK(varlink_feed(v, "{\"a\":", 5, NULL, 0) == 0 && varlink_feed(v, "1}\0{}\0", 6, e, 1) == 0 &&
              varlink_next_message(v, &m) == 1 && m.n_fds == 0, "tail of a message, no fds");
        varlink_message_done(&m);
        CHECK(varlink_next_message(v, &m) == 1 && m.n_fds == 1, "the next message has the fd");
        varlink_message_done(&m);
        v = varlink_free(v);
        CHECK(open_fds() == before, "no fd leaked after the refusals");
}

/* ---- over a socketpair ---- */

static int m_echo(VarlinkCall *c) {
        static const char * const fields[] = { "fd", "text", NULL };
        struct json_object *p;
        int r, fd, idx;

        r = varlink_call_check_fields(c, fields);
        if (r < 0)
                return r;
        r = varlink_call_get_fd(c, "fd", true, &fd);
        if (r < 0)
                return r;
        p = json_object_new_object();
        if (fd >= 0) {
                idx = varlink_call_push_fd(c, fd);
                json_object_object_add(p, "fd", json_object_new_int(idx));
        }
        return varlink_reply(c, p);
}

static int m_fail(VarlinkCall *c) {
        return -ENOTTY;
}

static int reply_errno(VarlinkCall *c, int e) {
        struct json_object *p = json_object_new_object();

        json_object_object_add(p, "errno", json_object_new_int(-e));
        return varlink_reply_error(c, "test.Failed", p);
}

static const VarlinkInterface test_interfaces[] = { { "test", "interface test\nmethod Echo() -> ()\n" } };
static const VarlinkMethod test_methods[] = { { "test.Echo", m_echo }, { "test.Fail", m_fail } };
static const VarlinkService test_service = {
        .vendor = "v", .product = "p", .version = "1", .url = "u",
        .interfaces = test_interfaces, .n_interfaces = 1,
        .methods = test_methods, .n_methods = 2, .reply_errno = reply_errno,
};

/* the server's exit status for a negative errno */
#define EXIT_CODE(r) (10 + (-(r) % 100))

static pid_t serve(int fd, int client_fd) {
        pid_t pid = fork();

        if (pid == 0) {
                safe_close(client_fd);  /* else the server never sees the client's EOF */
                Varlink *v = NULL;
                int r = varlink_new(fd, 0, 0, &v);
                if (r >= 0)
                        r = varlink_serve(v, &test_service, 5000, NULL);
                varlink_free(v);
                _exit(r < 0 ? EXIT_CODE(r) : 0);
        }
        safe_close(fd);
        return pid;
}

static int wait_exit(pid_t pid) {
        int status = 0;

        (void) waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const char *call_error(Varlink *v, const char *method, const char *params_json, const int *fds, size_t n) {
        static char buf[256];
        struct json_object *p = params_json ? json_tokener_parse(params_json) : NULL;
        VarlinkReply r = {};
        int k;

        k = varlink_call(v, method, p, fds, n, 5000, &r);
        if (p)
                json_object_put(p);
        if (k < 0)
                snprintf(buf, sizeof(buf), "call failed: %s", strerror(-k));
        else
                snprintf(buf, sizeof(buf), "%s %s", r.error ?: "ok",
                         json_object_to_json_string_ext(r.parameters, JSON_C_TO_STRING_PLAIN));
        varlink_reply_done(&r);
        return buf;
}

static void test_dispatch(void) {
        _cleanup_(varlink_freep) Varlink *v = NULL;
        int sp[2];
        const char *s;

        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0, "socketpair");
        pid_t pid = serve(sp[1], sp[0]);
        CHECK(varlink_new(sp[0], 0, VARLINK_FDS_MAX_KERNEL, &v) == 0, "client");

        s = call_error(v, "org.varlink.service.GetInfo", NULL, NULL, 0);
        CHECK(startswith(s, "ok ") && strstr(s, "\"interfaces\":[\"org.varlink.service\",\"test\"]"), "GetInfo: %s", s);
        s = call_error(v, "org.varlink.service.GetInterfaceDescription", "{\"interface\":\"test\"}", NULL, 0);
        CHECK(strstr(s, "interface test"), "GetInterfaceDescription: %s", s);
        s = call_error(v, "org.varlink.service.GetInterfaceDescription", "{\"interface\":\"nope\"}", NULL, 0);
        CHECK(startswith(s, "org.varlink.service.InterfaceNotFound"), "unknown interface: %s", s);
        s = call_error(v, "test.Nope", NULL, NULL, 0);
        CHECK(startswith(s, "org.varlink.service.MethodNotFound {\"method\":\"test.Nope\"}"), "unknown method: %s", s);
        s = call_error(v, "test.Echo", "{\"bogus\":1}", NULL, 0);
        CHECK(startswith(s, "org.varlink.service.InvalidParameter {\"parameter\":\"bogus\"}"), "unknown field: %s", s);
        s = call_error(v, "test.Echo", "{\"fd\":\"/etc/passwd\"}", NULL, 0);
        CHECK(startswith(s, "org.varlink.service.InvalidParameter {\"parameter\":\"fd\"}"), "a path for an fd: %s", s);
        s = call_error(v, "test.Echo", "{\"fd\":0}", NULL, 0);
        CHECK(startswith(s, "org.varlink.service.InvalidParameter"), "an index without fds: %s", s);
        s = call_error(v, "test.Echo", "{\"fd\":-1}", (int[]) { 0 }, 1);
        CHECK(startswith(s, "org.varlink.service.InvalidParameter"), "a negative index: %s", s);
        s = call_error(v, "test.Fail", NULL, NULL, 0);
        CHECK(streq(s, "test.Failed {\"errno\":25}"), "errno reply: %s", s);

        /* an fd there and back */
        int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC), got = -EBADF;
        struct json_object *p = json_tokener_parse("{\"fd\":0}");
        VarlinkReply r = {};
        struct stat a, b;
        CHECK(varlink_call(v, "test.Echo", p, &fd, 1, 5000, &r) == 0 && !r.error &&
              varlink_reply_take_fd(&r, r.parameters, "fd", &got) == 0, "fd echoed");
        CHECK(got >= 0 && fstat(got, &a) == 0 && fstat(fd, &b) == 0 && a.st_ino == b.st_ino &&
              (fcntl(got, F_GETFD) & FD_CLOEXEC), "same inode, O_CLOEXEC");
        CHECK(varlink_reply_take_fd(&r, r.parameters, "fd", &got) == -EBADMSG, "an index taken once");
        varlink_reply_done(&r);
        json_object_put(p);
        safe_close(fd);
        safe_close(got);

        /* oneway: no reply; the next call's reply is its own */
        CHECK(varlink_call_oneway(v, "test.Echo", NULL, NULL, 0) == 0, "oneway sent");
        s = call_error(v, "org.varlink.service.GetInfo", NULL, NULL, 0);
        CHECK(startswith(s, "ok {") && strstr(s, "\"vendor\":\"v\""), "reply after a oneway call is the next call's: %s", s);

        v = varlink_free(v);
        int e = wait_exit(pid);
        CHECK(e == 0, "server ends cleanly at EOF (exit %d)", e);
}

/* Raw bytes to a server: what comes back, and how the server ends. */
static void raw(const char *what, const char *data, size_t size, const char *want_reply, int want_exit) {
        char buf[512] = {};
        int sp[2];
        ssize_t n = 0;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                abort();
        pid_t pid = serve(sp[1], sp[0]);
        if (size > 0)
                (void) send(sp[0], data, size, MSG_NOSIGNAL);
        (void) shutdown(sp[0], SHUT_WR);
        for (ssize_t k; (k = read(sp[0], buf + n, sizeof(buf) - 1 - (size_t) n)) > 0;)
                n += k;
        for (ssize_t i = 0; i < n; i++)
                if (buf[i] == 0)
                        buf[i] = ' ';
        safe_close(sp[0]);
        int e = wait_exit(pid);
        CHECK((want_reply ? strstr(buf, want_reply) != NULL : n == 0) && e == want_exit,
              "%s: reply \"%s\", server exit %d", what, buf, e);
}

static void test_raw(void) {
        char big[VARLINK_MESSAGE_MAX_DEFAULT + 10];

        raw("garbage", "garbage\0", 8, NULL, EXIT_CODE(-EBADMSG));
        raw("half-sent request then EOF", "{\"method\":\"test.Echo\"", 21, NULL, EXIT_CODE(-ECONNRESET));
        raw("no method", "{\"parameters\":{}}\0", 18, NULL, EXIT_CODE(-EBADMSG));
        raw("parameters not an object", "{\"method\":\"test.Echo\",\"parameters\":[]}\0", 39, NULL, EXIT_CODE(-EBADMSG));
        raw("more refused", "{\"method\":\"test.Echo\",\"more\":true}\0", 35,
            "\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"more\"}", 0);
        raw("upgrade refused", "{\"method\":\"test.Echo\",\"upgrade\":true}\0", 38, "\"parameter\":\"upgrade\"", 0);
        raw("oneway is not answered", "{\"method\":\"test.Echo\",\"oneway\":true}\0", 37, NULL, 0);
        raw("two pipelined calls", "{\"method\":\"test.Echo\"}\0{\"method\":\"test.Nope\"}\0", 46, "MethodNotFound", 0);
        memset(big, ' ', sizeof(big));
        big[0] = '{';
        raw("oversized", big, sizeof(big), NULL, EXIT_CODE(-EMSGSIZE));
}

int main(void) {
        test_setup_output();
        test_framing();
        test_malformed();
        test_fd_limits();
        test_dispatch();
        test_raw();
        return test_result();
}
