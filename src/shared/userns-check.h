/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Whether a user namespace a caller handed us (as an fd) may receive idmapped mounts for it: the
 * broker's namespace rules (SECURITY.md "Broker").
 *
 *   - an nsfs fd of a user namespace (NS_GET_NSTYPE == CLONE_NEWUSER),
 *   - owned by the caller (NS_GET_OWNER_UID), or the caller lives in it (caller_pid's namespace)
 *     with a uid the namespace maps: it is then checked, and served, as the owner,
 *   - a direct child of our own user namespace (NS_GET_PARENT; the daemon runs in the initial one):
 *     a nested namespace is refused, so the maps read below are ids of our namespace, the ids
 *     files on disk have,
 *   - uid_map and gid_map written,
 *   - every mapped range (the outside ids) within the caller's entitlement: its own uid (gid) and
 *     its ranges in root/etc/subuid (root/etc/subgid), see subid.h.
 * A root caller may use any user namespace other than our own, with any maps, nested or not. */

#include <stdbool.h>
#include <sys/types.h>

#include "idmap.h"
#include "util.h"

/* 0 if the rules allow it; -EPERM with a message starting "namespace" for every rule that fails;
 * other negative errnos if it could not be checked (-ENOMEM, ...). root NULL = "/".
 * caller_pidfd (borrowed; -EBADF: none) is a pidfd of the process that connected (SO_PEERPIDFD):
 * with it, "lives in it" is judged of that very process, and a process that has exited lives in
 * no namespace. Without it caller_pid is used, whose number the kernel may already have given to
 * another process (SECURITY.md, Known limits). */
int userns_check_caller(int userns_fd, uid_t caller_uid, gid_t caller_gid, pid_t caller_pid, int caller_pidfd,
                        const char *root);
static inline int userns_check(int userns_fd, uid_t caller_uid, gid_t caller_gid, pid_t caller_pid, const char *root) {
        return userns_check_caller(userns_fd, caller_uid, caller_gid, caller_pid, -EBADF, root);
}

/* The user namespace (a new fd) of the process a pidfd refers to, through fdinfo's pid and
 * /proc/PID/ns/user, the pidfd checked alive afterwards: what kernels without
 * PIDFD_GET_USER_NAMESPACE (before 6.11) get. -ESRCH if the process has exited. For tests. */
int userns_of_pidfd_by_proc(int pidfd);

/* The namespace's maps as its parent sees them (the outside ids are the parent's): read by a
 * short-lived child that joins it. The child first closes every other fd and makes itself
 * non-dumpable, so the namespace's owner (who holds every capability in there, CAP_SYS_PTRACE
 * too) can neither ptrace it nor reach our fds through it. Unwritten maps read as 0 extents. */
typedef struct UsernsMaps {
        IdmapExtent uid[IDMAP_EXTENTS_MAX], gid[IDMAP_EXTENTS_MAX];    /* from = inside, to = outside */
        size_t n_uid, n_gid;
} UsernsMaps;
int userns_read_maps_isolated(int userns_fd, UsernsMaps *ret);

/* Whether [start, start+count) is covered by own (a single id) and the ranges. */
struct SubidRange;
bool id_range_entitled(uint32_t start, uint32_t count, uint32_t own, const struct SubidRange *ranges, size_t n_ranges);
