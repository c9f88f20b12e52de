/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Connections: accepted in the main process, identified by SO_PEERCRED, counted per uid and in all,
 * each served by its own forked worker (a crash or hang there takes only that caller down). */

#include <json-c/json.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "daemon.h"
#include "subid.h"
#include "worker.h"

/* The connection is over a limit: say so (the client reads it as the answer to its first call)
 * and close it. */
static void refuse_connection(int fd, const char *why) {
        _cleanup_close_ int owned = fd;
        struct json_object *o, *p;
        const char *s;

        o = json_object_new_object();
        p = json_object_new_object();
        if (o && p) {
                json_object_object_add(p, "message", json_object_new_string(why));
                json_object_object_add(o, "error", json_object_new_string("io.sysext-idmap.Broker.TooManyRequests"));
                json_object_object_add(o, "parameters", p);
                s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
                /* never block the accept loop on a client that does not read */
                if (s)
                        (void) send(owned, s, strlen(s) + 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        } else if (p)
                json_object_put(p);
        if (o)
                json_object_put(o);
}

static const char *over_limit(const Daemon *d, uid_t uid) {
        size_t mine = 0;

        if (d->n_workers >= d->opt.max_connections)
                return "too many connections to sysext-idmapd";
        for (size_t i = 0; i < d->n_workers; i++)
                if (d->workers[i].uid == uid)
                        mine++;
        if (mine >= d->opt.max_connections_per_uid)
                return "too many connections of this user to sysext-idmapd";
        return NULL;
}

static _Noreturn void run_worker(Daemon *d, int conn_fd, const struct ucred *cred, int pidfd) {
        sigset_t all;
        Worker w = {
                .config = &d->config,
                .caller = { .uid = cred->uid, .gid = cred->gid, .pid = cred->pid, .pidfd = pidfd },
                .store = d->store,
                .report_fd = d->report_fds[1],
                /* a request begun must be finished soon; the runtime limit bounds the rest */
                .request_timeout_ms = (int) ((d->opt.worker_timeout_usec < 30 * USEC_PER_SEC ?
                                              d->opt.worker_timeout_usec : 30 * USEC_PER_SEC) / 1000),
        };
        int r;

        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        (void) signal(SIGPIPE, SIG_IGN);
        for (size_t i = 0; i < d->n_listen_fds; i++)
                safe_close(d->listen_fds[i]);
        for (size_t i = 0; i < d->n_workers; i++)
                safe_close(d->workers[i].pidfd);
        safe_close(d->signal_fd);
        safe_close(d->report_fds[0]);
        /* the main process kills us at the deadline; this holds if it is gone */
        (void) alarm((unsigned) (d->opt.worker_timeout_usec / USEC_PER_SEC) + 1);
        r = worker_serve(&w, conn_fd);
        _exit(r < 0 && r != -ECONNRESET && r != -EPIPE ? 1 : 0);
}

static int add_worker(Daemon *d, pid_t pid, uid_t uid) {
        WorkerProcess *n;
        int pidfd;

        pidfd = (int) pidfd_open(pid, 0);
        if (pidfd < 0) {
                int r = negative_errno();
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return r;
        }
        n = reallocarray(d->workers, d->n_workers + 1, sizeof(WorkerProcess));
        if (!n) {
                (void) pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
                (void) waitid(P_PIDFD, (id_t) pidfd, NULL, WEXITED);
                safe_close(pidfd);
                return -ENOMEM;
        }
        d->workers = n;
        d->workers[d->n_workers++] = (WorkerProcess) {
                .pid = pid, .pidfd = pidfd, .uid = uid,
                .deadline = now_usec(CLOCK_MONOTONIC) + d->opt.worker_timeout_usec,
        };
        return 0;
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77         /* Linux 6.5 */
#endif

/* A pidfd of the process that connected, -EBADF where the kernel cannot say (before 6.5: the pid
 * is all there is), or -ESRCH: it has exited already (its pid number names nobody, or someone else). */
static int peer_pidfd(int fd) {
        int pidfd = -EBADF;
        socklen_t l = sizeof(pidfd);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &l) == 0 && l == sizeof(pidfd) && pidfd >= 0)
                return pidfd;
        return errno == ENOPROTOOPT || errno == EINVAL ? -EBADF : -ESRCH;
}

int daemon_accept(Daemon *d, int listen_fd) {
        _cleanup_close_ int fd = -EBADF, pidfd = -EBADF;
        struct ucred cred = {};
        socklen_t l = sizeof(cred);
        const char *why;
        pid_t pid;

        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return errno == EAGAIN || errno == EINTR || errno == ECONNABORTED ? 0 : negative_errno();
        /* the caller is who connected, read once here, never anything the request says */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &l) < 0 || l != sizeof(cred))
                return 0;
        pidfd = peer_pidfd(fd);
        if (pidfd == -ESRCH)
                cred.pid = 0;   /* gone: it lives in no namespace */
        /* A user's subordinate uids are that user's: each uid of the range (each inside uid of its
         * namespaces) is a connection to count against it, not a user of its own. */
        uid_t account = cred.uid;
        if (cred.uid != 0 && subid_owner(NULL, "etc/subuid", cred.uid, &account) <= 0)
                account = cred.uid;
        why = over_limit(d, account);
        if (why) {
                fprintf(stderr, "sysext-idmapd: refusing a connection of uid %u (pid %d, counted as uid %u): %s\n",
                        (unsigned) cred.uid, (int) cred.pid, (unsigned) account, why);
                refuse_connection(TAKE_FD(fd), why);
                return 0;
        }
        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0)
                run_worker(d, TAKE_FD(fd), &cred, pidfd);
        return add_worker(d, pid, account);
}

int daemon_reap(Daemon *d, size_t i) {
        WorkerProcess *w = &d->workers[i];
        siginfo_t si = {};

        if (waitid(P_PIDFD, (id_t) w->pidfd, &si, WEXITED | WNOHANG) < 0)
                return negative_errno();
        if (si.si_pid == 0)
                return 0;
        if (si.si_code != CLD_EXITED || si.si_status != 0)
                fprintf(stderr, "sysext-idmapd: worker %d for uid %u %s %d\n", (int) w->pid,
                        (unsigned) w->uid, si.si_code == CLD_EXITED ? "exited with status" : "killed by signal",
                        si.si_status);
        safe_close(w->pidfd);
        memmove(d->workers + i, d->workers + i + 1, (d->n_workers - i - 1) * sizeof(WorkerProcess));
        d->n_workers--;
        if (d->n_workers == 0)
                d->idle_since = now_usec(CLOCK_MONOTONIC);
        return 1;
}

void daemon_kill_overdue(Daemon *d, uint64_t now) {
        for (size_t i = 0; i < d->n_workers; i++)
                if (now >= d->workers[i].deadline) {
                        fprintf(stderr, "sysext-idmapd: worker %d for uid %u is over its runtime limit, killing it\n",
                                (int) d->workers[i].pid, (unsigned) d->workers[i].uid);
                        (void) pidfd_send_signal(d->workers[i].pidfd, SIGKILL, NULL, 0);
                        d->workers[i].deadline = UINT64_MAX;
                }
}
