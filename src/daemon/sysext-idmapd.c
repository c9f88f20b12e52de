/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* sysext-idmapd: the broker daemon. Serves io.systemd.MountFileSystem and io.sysext-idmap.Broker
 * over Varlink on a socket passed by the service manager ($LISTEN_FDS) or made with --listen=. */

#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "daemon.h"

static DaemonOptions arg_opt = {
        .idle_exit_usec = 90 * USEC_PER_SEC,
        .worker_timeout_usec = 300 * USEC_PER_SEC,
        .max_connections = 128,
        .max_connections_per_uid = 16,
};
static const char *arg_root = NULL;

static void help(void) {
        printf("sysext-idmapd [OPTIONS...]\n\n"
               "Mounts extension images and directories for unprivileged callers, idmapped into\n"
               "their user namespaces (Varlink: io.systemd.MountFileSystem, io.sysext-idmap.Broker).\n\n"
               "  -h --help                     Show this help\n"
               "     --version                  Show the version\n"
               "     --listen=PATH              Listen on PATH instead of $LISTEN_FDS\n"
               "     --idle-exit=SEC            Exit after SEC idle seconds (0: never; default 90)\n"
               "     --worker-timeout=SEC       Runtime limit of one connection (default 300)\n"
               "     --max-connections=N        Connections in all (default 128)\n"
               "     --max-connections-per-uid=N  Connections of one user (default 16)\n"
               "     --root=PATH                The host's tree (tests; default /)\n");
}

static int parse_seconds(const char *s, uint64_t *ret) {
        uint64_t v;

        if (safe_atou64(s, &v) < 0 || v > UINT64_MAX / USEC_PER_SEC / 2)
                return -EINVAL;
        *ret = v * USEC_PER_SEC;
        return 0;
}

static int parse_count(const char *s, unsigned *ret) {
        uint32_t v;

        if (safe_atou32(s, &v) < 0 || v == 0 || v > 65536)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_LISTEN, ARG_IDLE, ARG_TIMEOUT, ARG_MAX, ARG_MAX_UID, ARG_ROOT };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "idle-exit", required_argument, NULL, ARG_IDLE },
                { "worker-timeout", required_argument, NULL, ARG_TIMEOUT },
                { "max-connections", required_argument, NULL, ARG_MAX },
                { "max-connections-per-uid", required_argument, NULL, ARG_MAX_UID },
                { "root", required_argument, NULL, ARG_ROOT },
                {}
        };
        int c, r = 0;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("sysext-idmapd %s\n", PROJECT_VERSION);
                        return 0;
                case ARG_LISTEN:
                        r = path_is_absolute(optarg) ? 0 : -EINVAL;
                        arg_opt.listen_path = optarg;
                        break;
                case ARG_IDLE:
                        r = parse_seconds(optarg, &arg_opt.idle_exit_usec);
                        break;
                case ARG_TIMEOUT:
                        r = parse_seconds(optarg, &arg_opt.worker_timeout_usec);
                        r = r < 0 || arg_opt.worker_timeout_usec == 0 ? -EINVAL : 0;
                        break;
                case ARG_MAX:
                        r = parse_count(optarg, &arg_opt.max_connections);
                        break;
                case ARG_MAX_UID:
                        r = parse_count(optarg, &arg_opt.max_connections_per_uid);
                        break;
                case ARG_ROOT:
                        r = path_is_absolute(optarg) ? 0 : -EINVAL;
                        arg_root = optarg;
                        break;
                default:
                        return -EINVAL;
                }
                if (r < 0) {
                        fprintf(stderr, "sysext-idmapd: invalid value for --%s: %s\n",
                                options[c == 'h' ? 0 : c - ARG_VERSION + 1].name, optarg);
                        return r;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "sysext-idmapd: takes no arguments\n");
                return -EINVAL;
        }
        return 1;
}

/* --listen=PATH: the socket, mode 0666 (who may call is decided per call, by SO_PEERCRED). */
static int listen_on(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        mode_t old;
        int r = 0;

        if (strlen(path) >= sizeof(sa.sun_path))
                return sx_error(-ENAMETOOLONG, "%s: socket path too long", path);
        strcpy(sa.sun_path, path);
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
                (void) unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return sx_error(negative_errno(), "socket: %m");
        old = umask(0111);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                r = negative_errno();
        umask(old);
        if (r < 0)
                return sx_error(r, "%s: cannot bind: %m", path);
        if (listen(fd, SOMAXCONN) < 0)
                return sx_error(negative_errno(), "%s: cannot listen: %m", path);
        return TAKE_FD(fd);
}

static int setup(Daemon *d) {
        sigset_t mask;
        int r;

        r = broker_config_load(arg_root, &d->config);
        if (r < 0)
                return sx_error_prefix(r, "configuration");
        r = broker_store_new(&d->store);
        if (r < 0)
                return sx_error(r, "layer store: %m");
        /* Set by the service manager that started us (only root may start the daemon). */
        d->fdstore = secure_getenv("NOTIFY_SOCKET") || secure_getenv("LISTEN_FDNAMES");
        r = daemon_take_listen_fds(d);
        if (r < 0)
                return sx_error(r, "$LISTEN_FDS: %m");
        if (d->opt.listen_path) {
                int fd = listen_on(d->opt.listen_path);
                if (fd < 0)
                        return fd;
                r = daemon_add_listen_fd(d, fd);
                if (r < 0)
                        return r;
        }
        if (d->n_listen_fds == 0)
                return sx_error(-EINVAL, "no socket to serve: neither --listen= nor $LISTEN_FDS");
        for (size_t i = 0; i < d->n_listen_fds; i++)
                (void) fcntl(d->listen_fds[i], F_SETFL, O_NONBLOCK);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, d->report_fds) < 0)
                return sx_error(negative_errno(), "socketpair: %m");
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);
        (void) signal(SIGPIPE, SIG_IGN);
        d->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (d->signal_fd < 0)
                return sx_error(negative_errno(), "signalfd: %m");
        d->idle_since = now_usec(CLOCK_MONOTONIC);
        return 0;
}

static int poll_timeout(const Daemon *d, uint64_t now) {
        uint64_t until = UINT64_MAX;

        for (size_t i = 0; i < d->n_workers; i++)
                if (d->workers[i].deadline < until)
                        until = d->workers[i].deadline;
        if (d->n_workers == 0 && d->opt.idle_exit_usec > 0)
                until = d->idle_since + d->opt.idle_exit_usec;
        if (until == UINT64_MAX)
                return -1;
        return until <= now ? 0 : (int) ((until - now + 999) / 1000 > INT32_MAX ? INT32_MAX : (until - now + 999) / 1000);
}

/* pollfds: [0] signals, [1] reports, then the listening sockets, then one pidfd per worker. */
static int handle_events(Daemon *d, struct pollfd *p, size_t n_listen) {
        struct signalfd_siginfo si;
        int r;

        if (p[0].revents && read(d->signal_fd, &si, sizeof(si)) == sizeof(si))
                return 0;
        if (p[1].revents & POLLIN)
                (void) daemon_read_report(d);
        /* reap from the end: daemon_reap() moves the entries behind the reaped one */
        for (size_t i = d->n_workers; i > 0; i--)
                if (p[2 + n_listen + i - 1].revents)
                        (void) daemon_reap(d, i - 1);
        for (size_t i = 0; i < n_listen; i++)
                if (p[2 + i].revents & POLLIN) {
                        r = daemon_accept(d, d->listen_fds[i]);
                        if (r < 0)
                                fprintf(stderr, "sysext-idmapd: accepting a connection: %s\n", strerror(-r));
                }
        return 1;
}

static int run(Daemon *d) {
        for (;;) {
                size_t n = 2 + d->n_listen_fds + d->n_workers;
                _cleanup_free_ struct pollfd *p = calloc(n, sizeof(struct pollfd));
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                int r;

                if (!p)
                        return -ENOMEM;
                if (d->n_workers == 0 && d->opt.idle_exit_usec > 0 &&
                    now >= d->idle_since + d->opt.idle_exit_usec) {
                        /* pins of layers still in use keep us running: sharing them is our job
                         * (and before systemd 254 the fd store does not survive a stop) */
                        (void) daemon_store_gc(d);
                        if (broker_store_size(d->store) == 0)
                                return 0;
                        d->idle_since = now;
                }
                daemon_kill_overdue(d, now);
                p[0] = (struct pollfd) { .fd = d->signal_fd, .events = POLLIN };
                p[1] = (struct pollfd) { .fd = d->report_fds[0], .events = POLLIN };
                for (size_t i = 0; i < d->n_listen_fds; i++)
                        p[2 + i] = (struct pollfd) { .fd = d->listen_fds[i], .events = POLLIN };
                for (size_t i = 0; i < d->n_workers; i++)
                        p[2 + d->n_listen_fds + i] = (struct pollfd) { .fd = d->workers[i].pidfd, .events = POLLIN };
                r = poll(p, n, poll_timeout(d, now));
                if (r < 0 && errno != EINTR)
                        return negative_errno();
                if (r > 0 && handle_events(d, p, d->n_listen_fds) == 0)
                        return 0;
        }
}

/* Everything setup() and run() hold; the workers are not waited for (they run on their own). */
static void daemon_done(Daemon *d) {
        for (size_t i = 0; i < d->n_listen_fds; i++)
                safe_close(d->listen_fds[i]);
        free(d->listen_fds);
        for (size_t i = 0; i < d->n_workers; i++)
                safe_close(d->workers[i].pidfd);
        free(d->workers);
        safe_close(d->report_fds[0]);
        safe_close(d->report_fds[1]);
        safe_close(d->signal_fd);
        broker_store_free(d->store);
        broker_config_done(&d->config);
        *d = (Daemon) { .signal_fd = -EBADF, .report_fds = { -EBADF, -EBADF } };
}

int main(int argc, char *argv[]) {
        _cleanup_(daemon_done) Daemon d = { .signal_fd = -EBADF, .report_fds = { -EBADF, -EBADF } };
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (geteuid() != 0) {
                fprintf(stderr, "sysext-idmapd: must be started as root\n");
                return 1;
        }
        d.opt = arg_opt;
        r = setup(&d);
        if (r < 0) {
                fprintf(stderr, "sysext-idmapd: %s\n", sx_last_error() ?: strerror(-r));
                return 1;
        }
        r = run(&d);
        if (r < 0) {
                fprintf(stderr, "sysext-idmapd: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}
