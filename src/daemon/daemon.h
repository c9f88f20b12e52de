/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The main process of sysext-idmapd: listening sockets, the accept loop with its connection limits,
 * one forked worker per connection (killed past its runtime limit), the layer store and its copy in
 * the service manager's fd store, idle exit. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker.h"

typedef struct WorkerProcess {
        pid_t pid;
        int pidfd;
        uid_t uid;
        uint64_t deadline;              /* CLOCK_MONOTONIC µs */
} WorkerProcess;

typedef struct DaemonOptions {
        const char *listen_path;        /* NULL: sockets from $LISTEN_FDS */
        uint64_t idle_exit_usec;        /* 0: never */
        uint64_t worker_timeout_usec;   /* runtime limit of one connection's worker */
        unsigned max_connections, max_connections_per_uid;
} DaemonOptions;

typedef struct Daemon {
        DaemonOptions opt;
        BrokerConfig config;
        BrokerLayerStore *store;
        int *listen_fds;
        size_t n_listen_fds;
        int report_fds[2];              /* [0] main reads, [1] workers write (SOCK_SEQPACKET) */
        int signal_fd;
        WorkerProcess *workers;
        size_t n_workers;
        bool fdstore;                   /* under systemd: pins go to its fd store too */
        uint64_t idle_since;
} Daemon;

/* store.c: the fd store of the service manager. */
#define DAEMON_FDNAME_PREFIX "layer."
int daemon_fdname_from_key(const char *key, char **ret);
int daemon_key_from_fdname(const char *name, char **ret);
/* Takes the sockets and the fd store's layers from $LISTEN_FDS / $LISTEN_FDNAMES. */
int daemon_take_listen_fds(Daemon *d);
/* One more socket to serve (fd taken, closed on failure). */
int daemon_add_listen_fd(Daemon *d, int fd);
/* A new pinned superblock mount from a worker (fd taken): into the store and the fd store. */
int daemon_store_add(Daemon *d, const char *key, int fd);
/* Drops the layers no mount namespace uses any more, here and in the fd store. */
int daemon_store_gc(Daemon *d);
/* Reads one report from a worker (SOCK_SEQPACKET datagram: key, one fd). */
int daemon_read_report(Daemon *d);

/* workers.c */
int daemon_accept(Daemon *d, int listen_fd);
int daemon_reap(Daemon *d, size_t i);
void daemon_kill_overdue(Daemon *d, uint64_t now);
