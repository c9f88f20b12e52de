/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* --mutable=: systemd-sysext's writable merges. For a hierarchy /usr the administrator's directory
 * is <root>/var/lib/extensions.mutable/usr (/foo/bar → foo.bar, as systemd names it), the overlay's
 * workdir .systemd-usr-workdir next to it, and the workdir's path (relative to the root) is recorded
 * in the merge's .systemd-sysext/work_dir so unmerge can remove it. Ephemeral modes write into a
 * private detached tmpfs that is never attached anywhere: only the overlay holds it, and it is gone
 * with the merge. The directories are host state: the writable layer is never idmapped. */

#include <stdbool.h>
#include <sys/stat.h>

#include "util.h"

#define MUTABLE_BASE_DIR "var/lib/extensions.mutable"   /* relative to the root */
#define MUTABLE_WORK_DIR_MARKER "work_dir"              /* in .systemd-sysext/ */

typedef enum MutableMode {
        MUTABLE_NO = 0,                 /* the zero value: PAM and run never get a writable merge */
        MUTABLE_YES,
        MUTABLE_AUTO,
        MUTABLE_IMPORT,
        MUTABLE_EPHEMERAL,
        MUTABLE_EPHEMERAL_IMPORT,
        _MUTABLE_MODE_MAX,
        _MUTABLE_MODE_INVALID = -EINVAL,
} MutableMode;

/* yes, auto, ephemeral, ephemeral-import: the merge may get a writable layer (and is made even if no
 * extension has content for a hierarchy, as systemd-sysext does). */
static inline bool mutable_mode_may_write(MutableMode m) {
        return m == MUTABLE_YES || m == MUTABLE_AUTO || m == MUTABLE_EPHEMERAL || m == MUTABLE_EPHEMERAL_IMPORT;
}

/* "no", "yes", …, and any boolean spelling (1/0, true/false, on/off) as systemd accepts it. */
MutableMode mutable_mode_from_string(const char *s);
const char *mutable_mode_to_string(MutableMode m);

/* "usr" for "/usr", "foo.bar" for "/foo/bar/" (leading and trailing '/' dropped, inner '/' → '.'). */
char *hierarchy_mutable_name(const char *hierarchy);

/* The extra layers a mode gives one hierarchy. Every fd is -EBADF if unused. */
typedef struct MutableDirs {
        int upper_mnt;          /* ephemeral: the private detached tmpfs holding "upper" and "work" */
        int upper_fd;           /* O_PATH directory fds of the upperdir and workdir */
        int work_fd;
        char *upper_sub, *work_sub; /* their paths inside upper_mnt (ephemeral), else NULL */
        int import_fd;          /* the directory imported read-only just below the metadata layer */
        char *work_dir;         /* the workdir relative to the root, for the work_dir marker; NULL if ephemeral */
        bool hierarchy_is_upper; /* the administrator's directory is the hierarchy: no base layer below */
        bool work_made;         /* this call made the workdir: a merge that fails removes it again */
} MutableDirs;

#define MUTABLE_DIRS_NULL { .upper_mnt = -EBADF, .upper_fd = -EBADF, .work_fd = -EBADF, .import_fd = -EBADF }

/* What mode gives hierarchy (absolute, relative to root_fd) whose base (what the hierarchy shows
 * without extensions) is base_st: creates the directories the mode asks for, checks that the
 * administrator's directory is root-controlled (whoever can write it controls the hierarchy), has
 * the hierarchy's mode and lies on a writable file system. If it is a symlink to the hierarchy
 * itself, the hierarchy is the upper dir (hierarchy_is_upper; the import modes refuse it, -ELOOP). */
int mutable_dirs_open(int root_fd, const char *hierarchy, MutableMode mode, const struct stat *base_st, MutableDirs *ret);
void mutable_dirs_done(MutableDirs *m);
static inline bool mutable_dirs_writable(const MutableDirs *m) {
        return m->upper_fd >= 0;
}

/* After unmerge: remove the workdir a merge recorded in its work_dir marker (read from dir_fd, the
 * merged hierarchy, before it was unmounted: pass the content). Only a directory named
 * .systemd-*-workdir beneath root_fd is removed. 0 if there was nothing to remove. */
int mutable_work_dir_read(int dir_fd, const char *meta_dir, char **ret);  /* meta_dir: ".systemd-sysext" */
int mutable_work_dir_remove(int root_fd, const char *work_dir);
