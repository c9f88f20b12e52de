/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <dirent.h>
#include <sys/statvfs.h>

#include "mountapi.h"
#include "mutable.h"

#define MUTABLE_DIR_MODE 0700           /* as systemd-sysext creates it; chmod'ed to the hierarchy's mode */
#define WORK_DIR_PREFIX ".systemd-"
#define WORK_DIR_SUFFIX "-workdir"
#define WORK_DIR_MAX 4096               /* the work_dir marker holds one path */
#define RM_MAX_DEPTH 16                 /* overlayfs's workdir holds work/ and index/, a few levels */
#define EPHEMERAL_UPPER "upper"
#define EPHEMERAL_WORK "work"
#define PROC_FD_PATH_MAX 64             /* "/proc/self/fd/%d" */

static const char * const mutable_mode_table[_MUTABLE_MODE_MAX] = {
        [MUTABLE_NO] = "no",
        [MUTABLE_YES] = "yes",
        [MUTABLE_AUTO] = "auto",
        [MUTABLE_IMPORT] = "import",
        [MUTABLE_EPHEMERAL] = "ephemeral",
        [MUTABLE_EPHEMERAL_IMPORT] = "ephemeral-import",
};

MutableMode mutable_mode_from_string(const char *s) {
        int b;

        if (!s)
                return _MUTABLE_MODE_INVALID;
        for (int i = 0; i < _MUTABLE_MODE_MAX; i++)
                if (streq(s, mutable_mode_table[i]))
                        return (MutableMode) i;
        b = parse_boolean(s);
        if (b < 0)
                return _MUTABLE_MODE_INVALID;
        return b ? MUTABLE_YES : MUTABLE_NO;
}

const char *mutable_mode_to_string(MutableMode m) {
        return m >= 0 && m < _MUTABLE_MODE_MAX ? mutable_mode_table[m] : NULL;
}

/* No escaping, as systemd: "/foo/bar/baz" and "/foo/bar.baz" share a directory. */
char *hierarchy_mutable_name(const char *hierarchy) {
        size_t n;
        char *s;

        assert(hierarchy);
        hierarchy += strspn(hierarchy, "/");
        s = strdup(hierarchy);
        if (!s)
                return NULL;
        for (n = strlen(s); n > 0 && s[n - 1] == '/'; n--)
                s[n - 1] = 0;
        for (char *p = s; *p; p++)
                if (*p == '/')
                        *p = '.';
        return s;
}

void mutable_dirs_done(MutableDirs *m) {
        safe_close(m->upper_mnt);
        safe_close(m->upper_fd);
        safe_close(m->work_fd);
        safe_close(m->import_fd);
        free(m->upper_sub);
        free(m->work_sub);
        free(m->work_dir);
        *m = (MutableDirs) MUTABLE_DIRS_NULL;
}

static bool mode_imports(MutableMode m) {
        return m == MUTABLE_IMPORT || m == MUTABLE_EPHEMERAL_IMPORT;
}

static bool mode_ephemeral(MutableMode m) {
        return m == MUTABLE_EPHEMERAL || m == MUTABLE_EPHEMERAL_IMPORT;
}

/* The private upper layer of an ephemeral merge: a detached tmpfs no process can reach by path. */
static int ephemeral_open(const struct stat *base_st, MutableDirs *m) {
        _cleanup_close_ int fs = -EBADF, mnt = -EBADF, upper = -EBADF, work = -EBADF;

        fs = sys_fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fs < 0 || sys_fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0700", 0) < 0 ||
            sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return sx_error(negative_errno(), "failed to create the ephemeral upper layer: %m");
        mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID);
        if (mnt < 0)
                return sx_error(negative_errno(), "failed to mount the ephemeral upper layer: %m");
        if (mkdirat(mnt, EPHEMERAL_UPPER, base_st->st_mode & 07777) < 0 || mkdirat(mnt, EPHEMERAL_WORK, 0700) < 0)
                return sx_error(negative_errno(), "failed to populate the ephemeral upper layer: %m");
        upper = openat(mnt, EPHEMERAL_UPPER, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        work = openat(mnt, EPHEMERAL_WORK, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (upper < 0 || work < 0)
                return negative_errno();
        /* the merged hierarchy's root shows the upper dir's mode and owner: make it the base's */
        if (fchmodat(mnt, EPHEMERAL_UPPER, base_st->st_mode & 07777, 0) < 0 ||
            fchownat(mnt, EPHEMERAL_UPPER, base_st->st_uid, base_st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
                return sx_error(negative_errno(), "failed to set up the ephemeral upper layer: %m");
        m->upper_sub = strdup(EPHEMERAL_UPPER);
        m->work_sub = strdup(EPHEMERAL_WORK);
        if (!m->upper_sub || !m->work_sub)
                return -ENOMEM;
        m->upper_mnt = TAKE_FD(mnt);
        m->upper_fd = TAKE_FD(upper);
        m->work_fd = TAKE_FD(work);
        return 0;
}

/* Whoever can write the administrator's directory controls what the hierarchy shows. */
static int check_root_controlled(int root_fd, int fd, const char *path) {
        _cleanup_free_ char *reason = NULL;
        int r;

        r = fd_is_root_controlled_beneath(root_fd, fd, path, &reason);
        if (r < 0)
                return sx_error(r, "%s: cannot check who controls it: %m", path);
        if (r == 0)
                return sx_error(-EPERM, "%s; refusing to merge it into the hierarchy", reason);
        return 0;
}

/* An O_PATH fd takes no fchmod(). */
static int chmod_fd(int fd, mode_t mode) {
        char proc[PROC_FD_PATH_MAX];

        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        return chmod(proc, mode) < 0 ? negative_errno() : 0;
}

/* Whether the administrator's directory (st) is the hierarchy itself: its base (what it shows
 * without extensions) or, on refresh, the merged overlay a symlink to the hierarchy now resolves to. */
static int is_the_hierarchy(int root_fd, const char *hierarchy, const struct stat *base_st, const struct stat *st) {
        struct stat top;

        if (st->st_dev == base_st->st_dev && st->st_ino == base_st->st_ino)
                return 1;
        if (fstatat(root_fd, hierarchy + strspn(hierarchy, "/"), &top, 0) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        return st->st_dev == top.st_dev && st->st_ino == top.st_ino;
}

/* <root>/var/lib/extensions.mutable/<name>: opened (following a symlink inside the root, as
 * systemd's chase() does), created first if create. -ENOENT if missing and !create. 1 (and no fd)
 * if it is the hierarchy itself (a symlink to it): then the hierarchy is the upper dir. */
static int admin_dir_open(int root_fd, const char *hierarchy, MutableMode mode, const struct stat *base_st,
                          char **ret_path, int *ret_fd) {
        _cleanup_free_ char *name = hierarchy_mutable_name(hierarchy), *rel = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        if (!name)
                return -ENOMEM;
        if (isempty(name))
                return sx_error(-EINVAL, "%s: no mutable directory name for this hierarchy", hierarchy);
        rel = strjoin(MUTABLE_BASE_DIR "/", name);
        if (!rel)
                return -ENOMEM;
        fd = openat_beneath(root_fd, rel, O_PATH | O_DIRECTORY, true);
        if (fd == -ENOENT && mode == MUTABLE_YES) {
                _cleanup_free_ char *full = NULL, *root_path = NULL;
                r = fd_get_path(root_fd, &root_path);
                if (r < 0)
                        return r;
                full = path_join_root(root_path, rel);
                if (!full)
                        return -ENOMEM;
                r = mkdir_p(full, MUTABLE_DIR_MODE);
                if (r < 0)
                        return sx_error(r, "/%s: cannot create the mutable directory: %m", rel);
                fd = openat_beneath(root_fd, rel, O_PATH | O_DIRECTORY, true);
                if (fd >= 0 && chmod_fd(fd, base_st->st_mode & 07777) < 0)
                        return sx_error(negative_errno(), "/%s: failed to set permissions to %04o: %m", rel,
                                        (unsigned) (base_st->st_mode & 07777));
        } else if (fd >= 0 && !mode_imports(mode) && fstat(fd, &st) >= 0 &&
                   (st.st_mode & 07777) != (base_st->st_mode & 07777))
                /* the merged hierarchy's root would get the upper dir's mode */
                return sx_error(-EINVAL, "Mutable directory '/%s' has mode %04o, ought to have mode %04o", rel,
                                (unsigned) (st.st_mode & 07777), (unsigned) (base_st->st_mode & 07777));
        if (fd == -ENOENT)
                return fd;
        if (fd < 0)
                return sx_error(fd, "/%s: cannot open the mutable directory: %m", rel);
        if (fstat(fd, &st) < 0)
                return negative_errno();
        r = is_the_hierarchy(root_fd, hierarchy, base_st, &st);
        if (r < 0)
                return r;
        if (r > 0 && mode_imports(mode))
                return sx_error(-ELOOP, "Not importing mutable directory for hierarchy %s as a lower dir, because it "
                                "points to the hierarchy itself (/%s)", hierarchy, rel);
        if (r > 0) {
                /* whoever could put the symlink there would choose where the hierarchy's writes go */
                _cleanup_close_ int base = openat_beneath(root_fd, MUTABLE_BASE_DIR, O_PATH | O_DIRECTORY, false);
                if (base < 0)
                        return sx_error(base, "/%s: %m", MUTABLE_BASE_DIR);
                r = check_root_controlled(root_fd, base, MUTABLE_BASE_DIR);
                if (r < 0)
                        return r;
                *ret_path = TAKE_PTR(rel);
                *ret_fd = -EBADF;
                return 1;
        }
        r = check_root_controlled(root_fd, fd, rel);
        if (r < 0)
                return r;
        *ret_path = TAKE_PTR(rel);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Makes (if missing) and opens the workdir wname in dir_fd, on the upper dir's file system
 * (upper_dev). lead and label name the upper dir in messages ("/" and a path relative to the root,
 * or "" and a hierarchy). A workdir made here but not handed back is removed again: a refused merge
 * leaves nothing behind. *made says whether this call made it. */
static int work_dir_make(int dir_fd, const char *wname, dev_t upper_dev, const char *lead, const char *label,
                         bool *made, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        bool mk;
        int r;

        mk = mkdirat(dir_fd, wname, 0700) >= 0;
        if (!mk && errno != EEXIST)
                return sx_error(negative_errno(), "%s%s: cannot create the workdir %s next to it: %m", lead, label, wname);
        fd = openat(dir_fd, wname, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                r = sx_error(negative_errno(), "%s%s: cannot open the workdir %s next to it: %m", lead, label, wname);
        else if (st.st_dev != upper_dev)
                r = sx_error(-EXDEV, "%s%s: its workdir %s is on another file system", lead, label, wname);
        else {
                *made = mk;
                *ret_fd = TAKE_FD(fd);
                return 0;
        }
        if (mk)
                (void) unlinkat(dir_fd, wname, AT_REMOVEDIR);
        return r;
}

/* The workdir: .systemd-<name>-workdir next to the upper dir, on the same file system. */
static int work_dir_open(int root_fd, const char *hierarchy, int upper_fd, const char *upper_path, MutableDirs *m) {
        _cleanup_free_ char *upper_real = NULL;
        const char *upper_name;
        _cleanup_free_ char *name = hierarchy_mutable_name(hierarchy), *wname = NULL, *path = NULL, *root_path = NULL;
        _cleanup_close_ int parent = -EBADF, work = -EBADF, mnt = -EBADF;
        struct stat up, wst;
        struct statvfs vfs;
        bool made = false;
        int r;

        if (!name)
                return -ENOMEM;
        if (fstat(upper_fd, &up) < 0 || fstatvfs(upper_fd, &vfs) < 0)
                return negative_errno();
        if (vfs.f_flag & ST_RDONLY)
                return sx_error(-EROFS, "Can't use '/%s' as an upperdir as it is read-only.", upper_path);
        wname = strjoin(WORK_DIR_PREFIX, name, WORK_DIR_SUFFIX);
        parent = openat(upper_fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (!wname)
                return -ENOMEM;
        if (parent < 0 || fstat(parent, &wst) < 0)
                return negative_errno();
        /* checked before the workdir is made too: a refused merge leaves nothing behind */
        if (wst.st_dev != up.st_dev)
                return sx_error(-EXDEV, "Unable to find a suitable workdir location for upperdir '/%s' for host hierarchy '%s' - "
                                "parent directory of the upperdir is in a different filesystem", upper_path, hierarchy);
        r = work_dir_make(parent, wname, up.st_dev, "/", upper_path, &made, &work);
        if (r < 0)
                return r;
        if (fd_get_path(work, &path) < 0 || fd_get_path(root_fd, &root_path) < 0 || fd_get_path(upper_fd, &upper_real) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        upper_name = strrchr(upper_real, '/') + 1;     /* after a symlink: the target's name */
        const char *rel = streq(root_path, "/") ? path + 1 : startswith_ptr(path, root_path);
        if (!rel || (*rel != '/' && !streq(root_path, "/"))) {
                r = sx_error(-EXDEV, "/%s: its workdir %s lies outside the root", upper_path, path);
                goto fail;
        }
        /* For the staging fallback: overlayfs takes an upper layer only from a mount of the caller's
         * namespace, which the helper's is not; it attaches this clone of the parent there. */
        mnt = sys_open_tree(parent, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (mnt < 0) {
                r = sx_error(negative_errno(), "/%s: cannot clone the directory holding it: %m", upper_path);
                goto fail;
        }
        m->work_dir = strdup(rel + strspn(rel, "/"));
        m->upper_sub = strdup(upper_name);
        if (!m->work_dir || !m->upper_sub) {
                r = -ENOMEM;
                goto fail;
        }
        m->work_sub = TAKE_PTR(wname);
        m->upper_mnt = TAKE_FD(mnt);
        m->work_fd = TAKE_FD(work);
        m->work_made = made;
        return 0;
fail:
        if (made)
                (void) unlinkat(parent, wname, AT_REMOVEDIR);
        return r;
}

/* The hierarchy as its own upper dir (the administrator's directory is a symlink to it), as
 * systemd-sysext does: writes go straight to the host's hierarchy. The upper dir and the workdir
 * (.systemd-<name>-workdir in the hierarchy's parent) must be one mount: a clone (not recursive) of
 * the parent's, which shows the hierarchy's own directory even where the merged overlay (on refresh)
 * covers it. A hierarchy that is a mount of its own has its workdir on another file system: refused,
 * as systemd-sysext refuses it. */
static int hierarchy_upper_open(int root_fd, const char *hierarchy, const char *rel, const struct stat *base_st,
                                MutableDirs *m) {
        _cleanup_free_ char *name = hierarchy_mutable_name(hierarchy), *wname = NULL, *parent = NULL, *base = NULL;
        _cleanup_close_ int parent_fd = -EBADF, mnt = -EBADF, upper = -EBADF, work = -EBADF;
        const char *h = hierarchy + strspn(hierarchy, "/"), *slash;
        struct stat up;
        struct statvfs vfs;
        bool made = false;
        int r;

        if (!name)
                return -ENOMEM;
        slash = strrchr(h, '/');
        parent = slash ? strndup(h, (size_t) (slash - h)) : strdup("");
        base = strdup(slash ? slash + 1 : h);
        wname = strjoin(WORK_DIR_PREFIX, name, WORK_DIR_SUFFIX);
        if (!parent || !base || !wname)
                return -ENOMEM;
        parent_fd = isempty(parent) ? fcntl(root_fd, F_DUPFD_CLOEXEC, 3) : openat_beneath(root_fd, parent, O_PATH | O_DIRECTORY, false);
        if (parent_fd < 0)
                return sx_error(isempty(parent) ? negative_errno() : parent_fd, "%s: cannot open the directory holding it: %m",
                                hierarchy);
        if (fstatvfs(parent_fd, &vfs) < 0)
                return negative_errno();
        if (vfs.f_flag & ST_RDONLY)
                return sx_error(-EROFS, "Can't use '%s' as an upperdir as it is read-only.", hierarchy);
        mnt = sys_open_tree(parent_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (mnt < 0)
                return sx_error(negative_errno(), "%s: cannot clone the directory holding it: %m", hierarchy);
        upper = openat(mnt, base, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (upper < 0 || fstat(upper, &up) < 0)
                return sx_error(negative_errno(), "%s: cannot open it: %m", hierarchy);
        /* checked before the workdir is made: a refused merge leaves nothing behind */
        if (up.st_dev != base_st->st_dev || up.st_ino != base_st->st_ino)
                return sx_error(-EXDEV, "Unable to find a suitable workdir location for upperdir '%s' (/%s points to it) - "
                                "parent directory of the upperdir is in a different filesystem", hierarchy, rel);
        /* made through the clone: the same directory, and the same mount as the upper dir */
        r = work_dir_make(mnt, wname, up.st_dev, "", hierarchy, &made, &work);
        if (r < 0)
                return r;
        m->work_dir = isempty(parent) ? strdup(wname) : strjoin(parent, "/", wname);
        if (!m->work_dir) {
                if (made)
                        (void) unlinkat(mnt, wname, AT_REMOVEDIR);
                return -ENOMEM;
        }
        m->upper_sub = TAKE_PTR(base);
        m->work_sub = TAKE_PTR(wname);
        m->work_made = made;
        m->upper_mnt = TAKE_FD(mnt);
        m->upper_fd = TAKE_FD(upper);
        m->work_fd = TAKE_FD(work);
        m->hierarchy_is_upper = true;
        return 0;
}

int mutable_dirs_open(int root_fd, const char *hierarchy, MutableMode mode, const struct stat *base_st, MutableDirs *ret) {
        _cleanup_(mutable_dirs_done) MutableDirs m = MUTABLE_DIRS_NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        assert(root_fd >= 0 && hierarchy && base_st && ret);
        assert(mode >= 0 && mode < _MUTABLE_MODE_MAX);
        if (mode != MUTABLE_NO && mode != MUTABLE_EPHEMERAL) {
                /* yes creates it; auto uses it if it is there; the imports import it if it is there */
                r = admin_dir_open(root_fd, hierarchy, mode, base_st, &path, &fd);
                if (r < 0 && r != -ENOENT)
                        return r;
                if (r > 0) {
                        r = hierarchy_upper_open(root_fd, hierarchy, path, base_st, &m);
                        if (r < 0)
                                return r;
                }
        }
        if (fd >= 0 && mode_imports(mode)) {
                /* a detached clone, a layer like the others (the staging fallback attaches it) */
                m.import_fd = sys_open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
                if (m.import_fd < 0)
                        return sx_error(negative_errno(), "/%s: cannot clone the directory to import: %m", path);
        } else if (fd >= 0) {
                r = work_dir_open(root_fd, hierarchy, fd, path, &m);
                if (r < 0)
                        return r;
                m.upper_fd = TAKE_FD(fd);
        }
        if (mode_ephemeral(mode)) {
                r = ephemeral_open(base_st, &m);
                if (r < 0)
                        return r;
        }
        *ret = m;
        m = (MutableDirs) MUTABLE_DIRS_NULL;
        return 0;
}

int mutable_work_dir_read(int dir_fd, const char *meta_dir, char **ret) {
        _cleanup_free_ char *s = NULL, *marker = NULL;
        int r;

        assert(dir_fd >= 0 && meta_dir && ret);
        marker = strjoin(meta_dir, "/" MUTABLE_WORK_DIR_MARKER);
        if (!marker)
                return -ENOMEM;
        r = read_full_file_at(dir_fd, marker, WORK_DIR_MAX, &s, NULL);
        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (r < 0)
                return r;
        s[strcspn(s, "\n")] = 0;
        *ret = TAKE_PTR(s);
        return 1;
}

/* rm -rf of what overlayfs left in its workdir: no symlink followed, no mount point crossed. */
static int rm_rf_children(int dir_fd, dev_t dev, unsigned depth) {
        _cleanup_close_ int fd = -EBADF;
        DIR *d;
        int r = 0;

        if (depth >= RM_MAX_DEPTH)
                return -ELOOP;
        fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d)
                return negative_errno();
        int dfd = TAKE_FD(fd);
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev) {
                        r = r ?: -EXDEV;
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        _cleanup_close_ int sub = openat(dfd, de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        int k = sub < 0 ? negative_errno() : rm_rf_children(sub, dev, depth + 1);
                        r = r ?: k;
                }
                if (unlinkat(dfd, de->d_name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
                        r = r ?: negative_errno();
        }
        closedir(d);
        return r;
}

int mutable_work_dir_remove(int root_fd, const char *work_dir) {
        _cleanup_free_ char *parent = NULL;
        _cleanup_close_ int fd = -EBADF, parent_fd = -EBADF;
        const char *base;
        struct stat st;
        int r;

        assert(root_fd >= 0);
        if (isempty(work_dir))
                return 0;
        base = strrchr(work_dir, '/');
        base = base ? base + 1 : work_dir;
        /* only ever what a merge made: .systemd-NAME-workdir, a plain (unescaped) relative path */
        if (!startswith(base, WORK_DIR_PREFIX) || !endswith(base, WORK_DIR_SUFFIX) || strchr(work_dir, '\\') ||
            !path_is_safe_component(base))
                return sx_error(-EINVAL, "work_dir marker '%s' names no workdir; not removing it", work_dir);
        parent = strndup(work_dir, (size_t) (base - work_dir));
        if (!parent)
                return -ENOMEM;
        parent_fd = isempty(parent) ? fcntl(root_fd, F_DUPFD_CLOEXEC, 3) : openat_beneath(root_fd, parent, O_PATH | O_DIRECTORY, true);
        if (parent_fd == -ENOENT)
                return 0;
        if (parent_fd < 0)
                return sx_error(parent_fd, "/%s: %m", parent);
        fd = openat(parent_fd, base, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0 || fstat(fd, &st) < 0)
                return sx_error(negative_errno(), "/%s: %m", work_dir);
        r = rm_rf_children(fd, st.st_dev, 0);
        if (r >= 0 && unlinkat(parent_fd, base, AT_REMOVEDIR) < 0)
                r = negative_errno();
        if (r < 0)
                return sx_error(r, "/%s: cannot remove the workdir: %m", work_dir);
        return 1;
}
