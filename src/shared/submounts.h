/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Mounts below a hierarchy (a tmpfs on /usr/lib/locale, a bind mount under /opt): carried onto
 * the detached overlay before it is attached, so merge and refresh stay one visible step, and put
 * back on the bare hierarchy by unmerge.
 *
 * Each carried mount is cloned recursively (nested mounts come along) and made private before it
 * moves: a clone in the peer group of the original would lose its nested mounts when the original
 * is detached, since the umount propagates to peers (systemd#41875). Once attached under a shared
 * parent the clones become shared again, in new peer groups, like any new mount there.
 * Moving a mount onto a detached tree needs Linux 6.15; older kernels refuse it (EINVAL). That is
 * found out at the first move, before anything moved: the Submounts are then "deferred", carried
 * onto the overlay once it is attached (the caller's order: attach, carry, detach the originals;
 * for a refresh, beneath, carry, detach the old overlay). */

#include <stdbool.h>
#include <errno.h>
#include <stddef.h>

typedef struct Submount {
        char *rel;              /* mount point below the hierarchy, e.g. "lib/locale" */
        int pin_fd;             /* O_PATH fd of the mount as found, to detach it afterwards */
        int clone_fd;           /* detached private recursive clone, to carry */
        int backup_fd;          /* a second such clone, to put back on a rollback */
        bool is_dir;
        bool put_back;          /* clone_fd is attached below the bare hierarchy (unmerge) */
} Submount;

typedef struct Submounts {
        const char *path;       /* the hierarchy, for messages */
        Submount *items;
        size_t n;
        size_t n_detached;      /* originals detached so far (a rollback puts their backups back) */
        bool deferred;          /* to be carried once the overlay is attached (before Linux 6.15) */
        int saved_fd;           /* unmerge: the whole merged tree, cloned, to put back on a rollback */
} Submounts;

#define SUBMOUNTS_NULL ((Submounts) { .saved_fd = -EBADF })

/* The mount table of the calling process, read once per operation (mount points, unescaped). */
typedef struct MountTable {
        char **targets;
} MountTable;

int mount_table_read(MountTable *ret);
void mount_table_done(MountTable *t);

/* Find the outermost mounts visible strictly below the hierarchy at path (h_fd: its top), and
 * clone each. with_backup keeps a second clone, for submounts_attach(…, backups=true). 0 and none if
 * there are none. */
int submounts_collect(const MountTable *t, const char *path, int h_fd, bool with_backup, Submounts *ret);

/* Move the clones onto the same places in the tree tree_fd, an overlay: not yet attached if
 * !s->deferred; if the kernel then refuses the first move (EINVAL, before Linux 6.15), nothing has
 * moved, s->deferred is set and 0 returned. If s->deferred, tree_fd is attached (or beneath the old
 * overlay): this works on every kernel. Idempotent for the clones already moved. */
int submounts_carry(Submounts *s, int tree_fd);

/* After the tree carrying the clones is attached: detach the originals, now covered by it. */
int submounts_detach_originals(Submounts *s);

/* Check that every mount point exists, of the same kind, in base_fd, before anything changes:
 * for unmerge, the hierarchy as it is without the merge; for a deferred carry, the new overlay.
 * where names base_fd in the error. */
int submounts_check_targets(const Submounts *s, int base_fd, const char *where);

/* Attach the clones (or, restoring, the backups) at their places below the hierarchy h_fd. */
int submounts_attach(Submounts *s, int h_fd, bool backups);

/* Unmerge: before the merged tree on h_fd is detached, keep a private clone of all of it; if the
 * clones cannot all be put back afterwards, submounts_restore() detaches those that were and
 * attaches the saved tree on h_fd (the bare hierarchy now) again: as it was. */
int submounts_save(Submounts *s, int h_fd);
int submounts_restore(Submounts *s, int h_fd);

void submounts_done(Submounts *s);
