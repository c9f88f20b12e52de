/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One connection, served in a forked worker process: the caller's identity (SO_PEERCRED, read at
 * accept), the configuration, the layer store as inherited from the main process, and the socket
 * on which new superblock mounts go back to the main process. */

#include "broker.h"
#include "varlink.h"

typedef struct Worker {
        const BrokerConfig *config;
        BrokerCaller caller;
        BrokerLayerStore *store;        /* the worker's copy (fds inherited); may be NULL */
        int report_fd;                  /* SOCK_SEQPACKET to the main process, or -EBADF */
        int request_timeout_ms;         /* bound on waiting for the rest of a started request */
} Worker;

/* Serves the connection until the peer closes or breaks the protocol. Returns 0 or negative. */
int worker_serve(Worker *w, int connection_fd);

/* Hands a new pinned superblock mount (fd borrowed) to the main process under key, and keeps it in
 * the worker's own copy too. Errors are not fatal to the call that made the mount. */
int worker_report_layer(Worker *w, const char *key, int pinned_fd);

/* methods.c */
extern const VarlinkService daemon_service;
