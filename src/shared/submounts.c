/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <libmount.h>
#include <sys/mount.h>

#include "mountapi.h"
#include "submounts.h"
#include "util.h"

#define MOUNTINFO_PATH "/proc/self/mountinfo"
#define META_PREFIX ".systemd-"         /* .systemd-sysext/, .systemd-confext/: merge markers, never carried */
#define PROC_FD_PATH_MAX 64             /* "/proc/self/fd/%d" */

/* libmount rather than listmount()/statmount(): it reads every kernel (the table must be read on
 * each merge, also where the kernel could not carry a sub-mount, to know there is none), it
 * unescapes mount points, and it costs ~64 µs for 20 mounts, ~2 ms for 1000 (once per verb). It
 * reads no environment unless mnt_init_debug() is called, which we never do. */
int mount_table_read(MountTable *ret) {
        struct libmnt_table *tb = NULL;
        struct libmnt_iter *it = NULL;
        struct libmnt_fs *fs;
        char **l = NULL;
        int r;

        assert(ret);
        tb = mnt_new_table();
        it = mnt_new_iter(MNT_ITER_FORWARD);
        if (!tb || !it) {
                r = -ENOMEM;
                goto finish;
        }
        r = mnt_table_parse_file(tb, MOUNTINFO_PATH);
        if (r < 0) {
                r = sx_error(r < -1 ? r : -EIO, "%s: cannot read the mount table: %m", MOUNTINFO_PATH);
                goto finish;
        }
        while ((r = mnt_table_next_fs(tb, it, &fs)) == 0) {
                const char *t = mnt_fs_get_target(fs);
                if (t && (r = strv_extend(&l, t)) < 0)
                        goto finish;
        }
        r = 0;
        *ret = (MountTable) { .targets = TAKE_PTR(l) };
finish:
        strv_free(l);
        mnt_free_iter(it);
        mnt_unref_table(tb);
        return r;
}

void mount_table_done(MountTable *t) {
        if (t)
                t->targets = strv_free(t->targets);
}

static int open_below(int dir_fd, const char *rel) {
        struct open_how how = {
                .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        int fd = sys_openat2(dir_fd, rel, &how, sizeof(how));

        return fd < 0 ? negative_errno() : fd;
}

static int mnt_id_of(int fd, uint64_t *ret) {
        struct statx sx;

        if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_MNT_ID, &sx) < 0)
                return negative_errno();
        if (!(sx.stx_mask & STATX_MNT_ID))
                return -EOPNOTSUPP;
        *ret = sx.stx_mnt_id;
        return 0;
}

/* 1 if rel below h_fd is the root of the mount visible there (not a mount hidden under another). */
static int is_visible_mount_root(int h_fd, const char *rel, int fd) {
        _cleanup_free_ char *parent = strdup(rel);
        _cleanup_close_ int pfd = -EBADF;
        uint64_t a, b;
        char *slash;
        int r;

        if (!parent)
                return -ENOMEM;
        slash = strrchr(parent, '/');
        if (slash)
                *slash = 0;
        pfd = slash ? open_below(h_fd, parent) : fcntl(h_fd, F_DUPFD_CLOEXEC, 3);
        if (pfd < 0)
                return pfd < -1 ? pfd : negative_errno();
        if ((r = mnt_id_of(fd, &a)) < 0 || (r = mnt_id_of(pfd, &b)) < 0)
                return r;
        return a != b;
}

static int str_cmp(const void *a, const void *b) {
        return strcmp(*(char * const *) a, *(char * const *) b);
}

/* The mount points strictly below path, relative to it, outermost only. */
static int outermost_below(const MountTable *t, const char *path, char ***ret) {
        _cleanup_strv_free_ char **l = NULL, **out = NULL;
        size_t n;

        STRV_FOREACH(m, t->targets) {
                const char *rel = startswith_ptr(*m, path);
                if (!rel || rel[0] != '/' || isempty(rel + 1) || startswith(rel + 1, META_PREFIX))
                        continue;
                if (strv_extend(&l, rel + 1) < 0)
                        return -ENOMEM;
        }
        n = strv_length(l);
        if (n > 1)
                qsort(l, n, sizeof(char *), str_cmp);
        for (size_t i = 0; i < n; i++) {
                bool nested = false;

                STRV_FOREACH(o, out) {
                        const char *under = startswith_ptr(l[i], *o);
                        if (under && (under[0] == 0 || under[0] == '/'))
                                nested = true;  /* comes along with the outer one (or is it twice) */
                }
                if (!nested && strv_extend(&out, l[i]) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(out);
        return 0;
}

static int clone_tree(int fd, int *ret) {
        struct mount_attr a = { .propagation = MS_PRIVATE };
        int c = sys_open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);

        if (c < 0)
                return negative_errno();
        if (sys_mount_setattr(c, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof(a)) < 0) {
                int r = negative_errno();
                safe_close(c);
                return r;
        }
        *ret = c;
        return 0;
}

/* Pin and clone the mount visible at rel; 0 if there is none (a mount hidden under another). */
static int submount_take(Submounts *s, int h_fd, const char *rel, bool with_backup) {
        _cleanup_close_ int pin = -EBADF;
        Submount *v, m = { .pin_fd = -EBADF, .clone_fd = -EBADF, .backup_fd = -EBADF };
        struct stat st;
        int r;

        pin = open_below(h_fd, rel);
        if (pin == -ENOENT)
                return 0;
        if (pin < 0)
                return sx_error(pin, "%s/%s: cannot open the mount below the hierarchy: %m", s->path, rel);
        r = is_visible_mount_root(h_fd, rel, pin);
        if (r <= 0)
                return r == 0 || r == -ENOENT ? 0 : sx_error(r, "%s/%s: cannot tell whether it is a mount: %m", s->path, rel);
        if (fstat(pin, &st) < 0)
                return negative_errno();
        /* The backup is private too: a peer of the original would lose its nested mounts when the
         * original is detached. */
        r = clone_tree(pin, &m.clone_fd);
        if (r >= 0 && with_backup)
                r = clone_tree(pin, &m.backup_fd);
        if (r < 0) {
                safe_close(m.clone_fd);
                return sx_error(r, "%s/%s: cannot clone the mount below the hierarchy: %m", s->path, rel);
        }
        v = reallocarray(s->items, s->n + 1, sizeof(Submount));
        m.rel = strdup(rel);
        if (!v || !m.rel) {
                free(m.rel);
                safe_close(m.clone_fd);
                safe_close(m.backup_fd);
                if (v)
                        s->items = v;
                return -ENOMEM;
        }
        m.pin_fd = TAKE_FD(pin);
        m.is_dir = S_ISDIR(st.st_mode);
        s->items = v;
        s->items[s->n++] = m;
        return 1;
}

int submounts_collect(const MountTable *t, const char *path, int h_fd, bool with_backup, Submounts *ret) {
        _cleanup_strv_free_ char **rels = NULL;
        Submounts s = { .path = path, .saved_fd = -EBADF };
        int r;

        assert(t && path && h_fd >= 0 && ret);
        r = outermost_below(t, path, &rels);
        if (r < 0)
                return r;
        STRV_FOREACH(rel, rels) {
                r = submount_take(&s, h_fd, *rel, with_backup);
                if (r < 0) {
                        submounts_done(&s);
                        return r;
                }
        }
        *ret = s;
        return 0;
}

/* The mount point for m below dir_fd, of the same kind (directory or not) as the mount. */
static int open_mount_point(const Submounts *s, const Submount *m, int dir_fd, const char *where) {
        struct stat st;
        int fd = open_below(dir_fd, m->rel);

        if (fd < 0)
                return sx_error(fd, "%s/%s: cannot keep the mount there: it %s %s (%m)", s->path, m->rel,
                                fd == -ELOOP ? "is a symlink in" : fd == -ENOENT ? "does not exist in" : "cannot be opened in",
                                where);
        if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode) != m->is_dir) {
                safe_close(fd);
                return sx_error(-ENOTDIR, "%s/%s: cannot keep the mount there: it is a %s in %s",
                                s->path, m->rel, m->is_dir ? "file" : "directory", where);
        }
        return fd;
}

static int move_onto(int mnt_fd, int target_fd) {
        return sys_move_mount(mnt_fd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0 ?
                negative_errno() : 0;
}

int submounts_carry(Submounts *s, int tree_fd) {
        int r;

        assert(s && tree_fd >= 0);
        for (size_t i = 0; i < s->n; i++) {
                Submount *m = &s->items[i];
                _cleanup_close_ int target = -EBADF;

                if (m->clone_fd < 0)
                        continue;       /* carried already */
                target = open_mount_point(s, m, tree_fd, "the merged tree");
                if (target < 0)
                        return target;
                r = move_onto(m->clone_fd, target);
                if (r == -EINVAL && i == 0 && !s->deferred) {
                        s->deferred = true;     /* a detached target: Linux 6.15+ */
                        return 0;
                }
                if (r < 0)
                        return sx_error(r, "%s/%s: cannot move the mount onto the new overlay: %m", s->path, m->rel);
                m->clone_fd = safe_close(m->clone_fd);  /* part of the overlay's tree now */
        }
        return 0;
}

int submounts_detach_originals(Submounts *s) {
        char proc[PROC_FD_PATH_MAX];

        assert(s);
        for (; s->n_detached < s->n; s->n_detached++) {
                const Submount *m = &s->items[s->n_detached];

                snprintf(proc, sizeof(proc), "/proc/self/fd/%d", m->pin_fd);
                if (sys_umount2(proc, MNT_DETACH) < 0)
                        return sx_error(negative_errno(), "%s/%s: cannot detach the mount now covered by the overlay: %m",
                                        s->path, m->rel);
        }
        return 0;
}

int submounts_check_targets(const Submounts *s, int base_fd, const char *where) {
        assert(s && base_fd >= 0 && where);
        for (size_t i = 0; i < s->n; i++) {
                int fd = open_mount_point(s, &s->items[i], base_fd, where);
                if (fd < 0)
                        return fd;
                safe_close(fd);
        }
        return 0;
}

int submounts_attach(Submounts *s, int h_fd, bool backups) {
        int ret = 0;

        assert(s && h_fd >= 0);
        for (size_t i = 0; i < (backups ? s->n_detached : s->n); i++) {
                Submount *m = &s->items[i];
                int *fd = backups ? &m->backup_fd : &m->clone_fd;
                _cleanup_close_ int target = -EBADF;
                int r;

                if (*fd < 0)
                        continue;
                target = open_mount_point(s, m, h_fd, "the hierarchy");
                r = target < 0 ? target : move_onto(*fd, target);
                if (r < 0 && ret == 0)
                        ret = target < 0 ? r : sx_error(r, "%s/%s: cannot put the mount back: %m", s->path, m->rel);
                if (r >= 0 && backups)
                        *fd = safe_close(*fd);
                else if (r >= 0)
                        m->put_back = true;     /* clone_fd stays, for submounts_restore() */
        }
        return ret;
}

int submounts_save(Submounts *s, int h_fd) {
        int r;

        assert(s && h_fd >= 0 && s->saved_fd < 0);
        r = clone_tree(h_fd, &s->saved_fd);
        return r < 0 ? sx_error(r, "%s: cannot keep a copy of the merged tree for a rollback: %m", s->path) : 0;
}

int submounts_restore(Submounts *s, int h_fd) {
        char proc[PROC_FD_PATH_MAX];

        assert(s && h_fd >= 0);
        for (size_t i = 0; i < s->n; i++) {
                if (!s->items[i].put_back)
                        continue;
                snprintf(proc, sizeof(proc), "/proc/self/fd/%d", s->items[i].clone_fd);
                if (sys_umount2(proc, MNT_DETACH) < 0)
                        return negative_errno();
                s->items[i].put_back = false;
        }
        if (s->saved_fd < 0)
                return -EBADF;
        return move_onto(s->saved_fd, h_fd);
}

void submounts_done(Submounts *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n; i++) {
                free(s->items[i].rel);
                safe_close(s->items[i].pin_fd);
                safe_close(s->items[i].clone_fd);
                safe_close(s->items[i].backup_fd);
        }
        safe_close(s->saved_fd);
        free(s->items);
        *s = (Submounts) {};
}
