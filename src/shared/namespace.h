/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Mount namespaces: creating one, joining one, and running a function in a forked child inside
 * one that passes file descriptors back. The one place where the library enters namespaces: the
 * merge engine (hierarchy side, --namespace-of, the path-layer fallback), `run` and the PAM
 * module's session all go through here. */

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* How the mounts of a new mount namespace relate to the ones it was copied from. */
typedef enum NamespacePropagation {
        NAMESPACE_PRIVATE,      /* nothing propagates either way (helpers, staging areas) */
        NAMESPACE_SLAVE,        /* the host's mounts still propagate in; ours never out (run, sessions) */
} NamespacePropagation;

/* unshare(CLONE_NEWNS), then make every mount in the copy private or a slave, so that nothing done
 * in the copy propagates back. Records a message and returns a negative errno on failure. */
int namespace_new_mount(NamespacePropagation propagation);

/* setns() into a mount namespace (an fd of /proc/PID/ns/mnt) and chdir("/") in it. */
int namespace_join_mount(int mntns_fd);

/* Is ns_fd (an fd of a /proc/PID/ns/TYPE file) our own namespace of that type? 1 yes, 0 no.
 * type is the file's name: "mnt", "user". */
int namespace_is_own(int ns_fd, const char *type);

/* Join the user namespace owning our mount namespace, if that is not our user namespace already:
 * then a private copy's mounts are not locked and may be unmounted (a container's namespace).
 * 1 joined, 0 nothing to do. */
int namespace_join_mount_owner(void);

/* Run fn in a forked child inside a private copy of the caller's mount namespace (mntns_fd < 0) or
 * inside the given mount namespace; fn fills up to max_fds fds which are passed back over a socket.
 * Returns what fn returned (the number of fds) or a negative errno with fn's message. */
typedef int (*PrivateNsFunc)(void *userdata, int *ret_fds, size_t max_fds);
typedef enum RunFlags {
        /* For a private copy: first join the user namespace that owns the current mount namespace
         * (namespace_join_mount_owner()). */
        RUN_AS_MNTNS_OWNER = 1 << 0,
} RunFlags;
/* The most fds one child may pass back. */
#define RUN_IN_MNTNS_MAX_FDS 64
int run_in_mntns(int mntns_fd, RunFlags flags, PrivateNsFunc fn, void *userdata, int *ret_fds, size_t max_fds);
#define run_in_private_mntns(fn, userdata, ret_fds, max_fds) run_in_mntns(-EBADF, 0, fn, userdata, ret_fds, max_fds)
