/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <inttypes.h>
#include <sys/mount.h>

#include "markers.h"
#include "mountapi.h"
#include "namespace.h"
#include "overlay.h"

#define OVERLAY_SOURCE "sysext"         /* what systemd-sysext shows as the mount source (systemd-confext: "confext") */
#define MAX_OVERLAYS RUN_IN_MNTNS_MAX_FDS       /* the staging child passes them all back at once */
#define MAX_STAGED_MOUNTS (MAX_OVERLAYS * 8)
#define META_LAYER_SIZE "4m"            /* the metadata tmpfs holds a few small files */
#define META_LAYER_INODES "1024"
#define FSCONFIG_NUMBER_MAX 16          /* "0%o" of a mode, "%u" of an id */
#define STAGE_NAME_MAX 24               /* "%zu" */

int mount_make_idmapped(int mnt_fd, int userns_fd, uint64_t extra_attrs, const char *what, const char *fstype) {
        struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY | extra_attrs };
        int r;

        assert(mnt_fd >= 0 && what);
        if (userns_fd >= 0) {
                a.attr_set |= MOUNT_ATTR_IDMAP;
                a.userns_fd = (uint64_t) userns_fd;
        }
        if (sys_mount_setattr(mnt_fd, "", AT_EMPTY_PATH, &a, sizeof(a)) >= 0)
                return 0;
        r = negative_errno();
        if (r == -ENOSYS)
                return sx_error(r, "%s: the kernel lacks mount_setattr() (Linux 5.12 or newer is needed)", what);
        if (userns_fd >= 0 && r == -EINVAL)
                return sx_error(r, "%s: the kernel cannot idmap %s file systems; build the image as erofs, or use --idmap=identity",
                                what, fstype ?: "this kind of");
        return sx_error(r, "%s: failed to make the layer %s: %m", what,
                        userns_fd >= 0 ? "idmapped and read-only" : "read-only");
}

static int fsconfig_string(int fs, const char *key, const char *value) {
        return sys_fsconfig(fs, FSCONFIG_SET_STRING, key, value, 0) < 0 ? negative_errno() : 0;
}

/* Options that name per-mount flags: they go to fsmount(), not to overlayfs. */
static const struct {
        const char *name;
        uint64_t attr;
        bool atime;             /* one of the MOUNT_ATTR__ATIME values: replaces the others */
} overlay_mount_flags[] = {
        { "noatime",     MOUNT_ATTR_NOATIME,     true  },
        { "relatime",    MOUNT_ATTR_RELATIME,    true  },
        { "strictatime", MOUNT_ATTR_STRICTATIME, true  },
        { "nodiratime",  MOUNT_ATTR_NODIRATIME,  false },
        { "nosuid",      MOUNT_ATTR_NOSUID,      false },
        { "nodev",       MOUNT_ATTR_NODEV,       false },
        { "noexec",      MOUNT_ATTR_NOEXEC,      false },
};

static const char * const overlay_refused_keys[] = {
        "lowerdir", "lowerdir+", "datadir+", "upperdir", "workdir", "source",
};
static const char * const overlay_refused_flags[] = { "ro", "rw", "suid", "dev", "exec" };

static bool name_in(const char *name, const char * const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(name, list[i]))
                        return true;
        return false;
}

/* One option: applied to the fs context fs (fs < 0: only checked), mount flags added to *attrs. */
static int overlay_option_one(int fs, char *opt, uint64_t *attrs) {
        char *value = strchr(opt, '=');

        if (value)
                *value++ = 0;
        if (isempty(opt) || string_has_cc(opt) || (value && string_has_cc(value)))
                return sx_error(-EINVAL, "overlay mount option '%s' is not a valid option", opt);
        if (name_in(opt, overlay_refused_keys, ELEMENTSOF(overlay_refused_keys)))
                return sx_error(-EINVAL, "overlay mount option '%s' is not allowed: sysext-idmap decides the layers", opt);
        if (!value && name_in(opt, overlay_refused_flags, ELEMENTSOF(overlay_refused_flags)))
                return sx_error(-EINVAL, "overlay mount option '%s' is not allowed: use --mutable= and --noexec=; "
                                "nodev (and nosuid where a user's layers are merged) always hold", opt);
        for (size_t i = 0; !value && i < ELEMENTSOF(overlay_mount_flags); i++)
                if (streq(opt, overlay_mount_flags[i].name)) {
                        if (overlay_mount_flags[i].atime)
                                *attrs &= ~(uint64_t) MOUNT_ATTR__ATIME;
                        *attrs |= overlay_mount_flags[i].attr;
                        return 0;
                }
        if (fs < 0)
                return 0;
        if ((value ? sys_fsconfig(fs, FSCONFIG_SET_STRING, opt, value, 0) : sys_fsconfig(fs, FSCONFIG_SET_FLAG, opt, NULL, 0)) < 0) {
                int r = negative_errno();
                _cleanup_free_ char *msg = fs_context_messages(fs);
                return sx_error(r, "overlay mount option '%s' refused: %s", opt, msg ?: strerror(-r));
        }
        return 0;
}

static int overlay_options_apply(int fs, const char *options, uint64_t *attrs) {
        _cleanup_free_ char *copy = NULL;
        char *save = NULL;
        int r;

        if (isempty(options))
                return 0;
        copy = strdup(options);
        if (!copy)
                return -ENOMEM;
        for (char *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
                r = overlay_option_one(fs, opt, attrs);
                if (r < 0)
                        return r;
        }
        return 0;
}

int overlay_options_check(const char *options) {
        uint64_t attrs = 0;

        return overlay_options_apply(-EBADF, options, &attrs);
}

int meta_layer_make(const struct stat *like, int *ret_fd) {
        _cleanup_close_ int fs = -EBADF;
        char mode[FSCONFIG_NUMBER_MAX], uid[FSCONFIG_NUMBER_MAX], gid[FSCONFIG_NUMBER_MAX];
        int mnt, r;

        assert(like && ret_fd);
        fs = sys_fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fs < 0)
                return sx_error(negative_errno(), "failed to create the metadata layer: fsopen(tmpfs): %m");
        snprintf(mode, sizeof(mode), "0%o", (unsigned) (like->st_mode & 07777));
        snprintf(uid, sizeof(uid), "%u", (unsigned) like->st_uid);
        snprintf(gid, sizeof(gid), "%u", (unsigned) like->st_gid);
        if ((r = fsconfig_string(fs, "mode", mode)) < 0 || (r = fsconfig_string(fs, "uid", uid)) < 0 ||
            (r = fsconfig_string(fs, "gid", gid)) < 0 || (r = fsconfig_string(fs, "size", META_LAYER_SIZE)) < 0 ||
            (r = fsconfig_string(fs, "nr_inodes", META_LAYER_INODES)) < 0 ||
            (sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 && (r = negative_errno()) < 0)) {
                _cleanup_free_ char *msg = fs_context_messages(fs);
                return sx_error(r, "failed to create the metadata layer: %s", msg ?: strerror(-r));
        }
        mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
        if (mnt < 0)
                return sx_error(negative_errno(), "failed to create the metadata layer: fsmount: %m");
        *ret_fd = mnt;
        return 0;
}

static int overlay_fail(int r, int fs, const OverlaySpec *s, const char *step) {
        _cleanup_free_ char *msg = fs_context_messages(fs);

        return sx_error(r, "%s: failed to %s the overlay: %s", s->hierarchy, step, msg ?: strerror(-r));
}

static bool spec_writable(const OverlaySpec *s) {
        return s->upper.dir_fd >= 0;
}

static int overlay_finish(int fs, const OverlaySpec *s, int *ret_fd) {
        uint64_t attrs = s->mount_attrs | (spec_writable(s) ? 0 : MOUNT_ATTR_RDONLY);
        int mnt, r;

        r = overlay_options_apply(fs, s->options, &attrs);
        if (r < 0)
                return sx_error_prefix(r, "%s", s->hierarchy);
        if (sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return overlay_fail(negative_errno(), fs, s, "create");
        mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, (unsigned) attrs);
        if (mnt < 0)
                return overlay_fail(negative_errno(), fs, s, "mount");
        *ret_fd = mnt;
        return 0;
}

static int overlay_open(const OverlaySpec *s, int *ret_fs) {
        int fs = sys_fsopen("overlay", FSOPEN_CLOEXEC);

        if (fs < 0)
                return sx_error(negative_errno(), "%s: overlayfs is not available: %m", s->hierarchy);
        if (fsconfig_string(fs, "source", s->source ?: OVERLAY_SOURCE) < 0 ||
            (!spec_writable(s) && sys_fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0)) {
                int r = overlay_fail(negative_errno(), fs, s, "configure");
                safe_close(fs);
                return r;
        }
        *ret_fs = fs;
        return 0;
}

/* -EOPNOTSUPP: this kernel's overlayfs does not take layers as file descriptors. */
static int overlay_make_fd(const OverlaySpec *s, int *ret_fd) {
        _cleanup_close_ int fs = -EBADF;
        int r;

        r = overlay_open(s, &fs);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_layers; i++) {
                if (sys_fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", NULL, s->layers[i].dir_fd) >= 0)
                        continue;
                r = negative_errno();
                /* The first layer is always our metadata tmpfs, so a refusal there is about fd
                 * layers: EINVAL from an overlayfs that has the new API but no "lowerdir+" (6.5–6.7),
                 * EOPNOTSUPP from a legacy fs context, which takes no fds at all (before 6.5). */
                if (i == 0 && (r == -EINVAL || r == -EOPNOTSUPP)) {
                        _cleanup_free_ char *msg = fs_context_messages(fs);
                        sx_debug("overlayfs refused a layer fd (%s: %s), using the staging fallback",
                                 strerror(-r), strna(msg));
                        return -EOPNOTSUPP;
                }
                return overlay_fail(r, fs, s, "add a layer to");
        }
        if (spec_writable(s) &&
            (sys_fsconfig(fs, FSCONFIG_SET_FD, "upperdir", NULL, s->upper.dir_fd) < 0 ||
             sys_fsconfig(fs, FSCONFIG_SET_FD, "workdir", NULL, s->work.dir_fd) < 0))
                return overlay_fail(negative_errno(), fs, s, "add the writable layer to");
        return overlay_finish(fs, s, ret_fd);
}

int overlay_fd_layers_supported(void) {
        _cleanup_close_ int fs = -EBADF, dir = -EBADF;
        int r;

        if (TEST_HOOK(force_path_layers, false))
                return 0;
        fs = sys_fsopen("overlay", FSOPEN_CLOEXEC);
        if (fs < 0)
                return sx_error(negative_errno(), "overlayfs is not available: %m");
        dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0)
                return negative_errno();
        /* Only configures the context; nothing is created. EINVAL: the new API without "lowerdir+"
         * (6.5-6.6) or a legacy context, which takes no fds (before 6.5); EOPNOTSUPP likewise. */
        if (sys_fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", NULL, dir) >= 0)
                return 1;
        r = negative_errno();
        return r == -EINVAL || r == -EOPNOTSUPP ? 0 : sx_error(r, "overlayfs: probing for layer fds: %m");
}

typedef struct FallbackContext {
        const OverlaySpec *specs;
        size_t n;
        const char *staging;
} FallbackContext;

/* Attach a detached mount below the staging directory once, remembering where. */
static int stage_mount(int stage_fd, int mnt_fd, int *staged, size_t *n_staged, size_t *ret_index) {
        char name[STAGE_NAME_MAX];

        for (size_t i = 0; i < *n_staged; i++)
                if (staged[i] == mnt_fd) {
                        *ret_index = i;
                        return 0;
                }
        if (*n_staged >= MAX_STAGED_MOUNTS)
                return -E2BIG;
        snprintf(name, sizeof(name), "%zu", *n_staged);
        if (sys_mkdirat(stage_fd, name, 0700) < 0 ||
            sys_move_mount(mnt_fd, "", stage_fd, name, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return negative_errno();
        staged[*n_staged] = mnt_fd;
        *ret_index = (*n_staged)++;
        return 0;
}

/* The magic link of a directory: an attached one's own fd, one in a detached mount's staged copy. */
static int fallback_dir_link(const OverlaySpec *s, const Layer *l, int stage_fd, int *staged, size_t *n_staged, char **ret) {
        _cleanup_free_ char *sub = NULL;
        size_t idx;
        int d, r;

        if (l->mnt_fd < 0)
                return asprintf_safe(ret, "/proc/self/fd/%d", l->dir_fd) < 0 ? -ENOMEM : 0;
        r = stage_mount(stage_fd, l->mnt_fd, staged, n_staged, &idx);
        if (r < 0)
                return sx_error(r, "%s: failed to stage the writable layer: %m", s->hierarchy);
        if (asprintf_safe(&sub, "%zu/%s", idx, strempty(l->subdir)) < 0)
                return -ENOMEM;
        d = openat_beneath(stage_fd, sub, O_PATH | O_DIRECTORY, false);        /* closed when the child exits */
        if (d < 0)
                return sx_error(d, "%s: staged layer %s vanished: %m", s->hierarchy, sub);
        return asprintf_safe(ret, "/proc/self/fd/%d", d) < 0 ? -ENOMEM : 0;
}

static int fallback_writable(const OverlaySpec *s, int fs, int stage_fd, int *staged, size_t *n_staged) {
        _cleanup_free_ char *upper = NULL, *work = NULL;
        int r;

        if ((r = fallback_dir_link(s, &s->upper, stage_fd, staged, n_staged, &upper)) < 0 ||
            (r = fallback_dir_link(s, &s->work, stage_fd, staged, n_staged, &work)) < 0)
                return r;
        if (fsconfig_string(fs, "upperdir", upper) < 0 || fsconfig_string(fs, "workdir", work) < 0)
                return overlay_fail(negative_errno(), fs, s, "add the writable layer to");
        return 0;
}

static int fallback_one(const OverlaySpec *s, int stage_fd, int *staged, size_t *n_staged, int *ret_fd) {
        _cleanup_close_ int fs = -EBADF;
        _cleanup_free_ char *lowerdir = NULL;
        int r;

        for (size_t i = 0; i < s->n_layers; i++) {
                _cleanup_free_ char *sub = NULL, *j = NULL;
                size_t idx;
                int d;

                r = stage_mount(stage_fd, s->layers[i].mnt_fd, staged, n_staged, &idx);
                if (r < 0)
                        return sx_error(r, "%s: failed to stage a layer: %m", s->hierarchy);
                if (asprintf_safe(&sub, "%zu/%s", idx, strempty(s->layers[i].subdir)) < 0)
                        return -ENOMEM;
                /* Never re-resolve image paths: hand overlayfs the very directory by magic link. The
                 * fd stays open until the child exits, after the overlay is created. */
                d = openat_beneath(stage_fd, sub, O_PATH | O_DIRECTORY, false);
                if (d < 0)
                        return sx_error(d, "%s: staged layer %s vanished: %m", s->hierarchy, sub);
                if (asprintf_safe(&j, "%s%s/proc/self/fd/%d", strempty(lowerdir), lowerdir ? ":" : "", d) < 0)
                        return -ENOMEM;
                free(lowerdir);
                lowerdir = TAKE_PTR(j);
        }
        r = overlay_open(s, &fs);
        if (r < 0)
                return r;
        if (fsconfig_string(fs, "lowerdir", lowerdir) < 0)
                return overlay_fail(negative_errno(), fs, s, "configure");
        if (spec_writable(s)) {
                r = fallback_writable(s, fs, stage_fd, staged, n_staged);
                if (r < 0)
                        return r;
        }
        return overlay_finish(fs, s, ret_fd);
}

static int fallback_in_child(void *userdata, int *ret_fds, size_t max_fds) {
        FallbackContext *c = userdata;
        _cleanup_close_ int tmp = -EBADF, tmp_mnt = -EBADF, stage_fd = -EBADF;
        int staged[MAX_STAGED_MOUNTS];
        size_t n_staged = 0;
        int r;

        if (c->n > max_fds)
                return -E2BIG;
        /* A private tmpfs as staging area: this namespace is a private copy, nothing propagates. */
        tmp = sys_fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (tmp < 0 || sys_fsconfig(tmp, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return sx_error(negative_errno(), "failed to create the staging area: %m");
        tmp_mnt = sys_fsmount(tmp, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID);
        if (tmp_mnt < 0 || sys_move_mount(tmp_mnt, "", AT_FDCWD, c->staging, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return sx_error(negative_errno(), "failed to attach the staging area %s: %m", c->staging);
        stage_fd = open(c->staging, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (stage_fd < 0)
                return negative_errno();
        for (size_t i = 0; i < c->n; i++) {
                r = fallback_one(&c->specs[i], stage_fd, staged, &n_staged, &ret_fds[i]);
                if (r < 0) {
                        for (size_t k = 0; k < i; k++)
                                safe_close(ret_fds[k]);
                        return r;
                }
        }
        return (int) c->n;
}

int overlays_make(const OverlaySpec *specs, size_t n, int *ret_fds, bool *ret_path_fallback) {
        static int fd_layers_work = -1;        /* cached feature probe */
        _cleanup_free_ char *staging = NULL;
        int fds[MAX_OVERLAYS], r;
        size_t done = 0;

        assert((specs || n == 0) && ret_fds && ret_path_fallback);
        if (n > MAX_OVERLAYS)
                return -E2BIG;
        if (!TEST_HOOK(force_path_layers, false) && fd_layers_work != 0) {
                for (; done < n; done++) {
                        r = overlay_make_fd(&specs[done], &fds[done]);
                        if (r == -EOPNOTSUPP) {
                                fd_layers_work = 0;
                                break;
                        }
                        if (r < 0)
                                goto fail;
                        fd_layers_work = 1;
                }
                if (done == n) {
                        memcpy(ret_fds, fds, n * sizeof(int));
                        *ret_path_fallback = false;
                        return 0;
                }
        }
        for (size_t i = 0; i < done; i++)
                fds[i] = safe_close(fds[i]);
        done = 0;

        r = sx_staging_dir_make(&staging);
        if (r < 0)
                return r;
        FallbackContext c = { .specs = specs, .n = n, .staging = staging };
        r = run_in_private_mntns(fallback_in_child, &c, fds, n);
        if (r < 0)
                return r;
        if ((size_t) r != n) {
                for (int i = 0; i < r; i++)
                        safe_close(fds[i]);
                return sx_error(-EIO, "the staging helper returned %d of %zu overlays", r, n);
        }
        memcpy(ret_fds, fds, n * sizeof(int));
        *ret_path_fallback = true;
        return 0;
fail:
        for (size_t i = 0; i < done; i++)
                safe_close(fds[i]);
        return r;
}

/* Can a detached mount be attached inside another detached tree (Linux 6.15+)? Asked once, with a
 * mount of our own, so that one unsuitable fd (a mount already unmounted, say) teaches nothing. */
static int nested_detached_supported(int stage) {
        static int cached = -1;
        _cleanup_close_ int fs = -EBADF, probe = -EBADF;

        if (cached >= 0)
                return cached;
        fs = (int) syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
        if (fs >= 0 && syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) >= 0)
                probe = (int) syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
        if (probe < 0 || mkdirat(stage, "probe", 0700) < 0)
                return 0;       /* not learned: out of resources, perhaps */
        cached = syscall(SYS_move_mount, probe, "", stage, "probe", MOVE_MOUNT_F_EMPTY_PATH) >= 0;
        return cached;          /* the probe is dissolved with the stage */
}

void mounts_dissolve(int *fds, size_t n) {
        _cleanup_close_ int tmp = -EBADF, stage = -EBADF;
        char name[STAGE_NAME_MAX];
        size_t i = 0, live = 0;
        static bool unsupported = false;

        assert(fds || n == 0);
        for (size_t k = 0; k < n; k++)
                live += fds[k] >= 0;
        /* These calls are no fault points (mountapi.h): the operation has succeeded or failed
         * already, and nothing depends on where a mount is dissolved. */
        if (live > 1 && !unsupported) {
                tmp = (int) syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
                if (tmp >= 0 && syscall(SYS_fsconfig, tmp, FSCONFIG_CMD_CREATE, NULL, NULL, 0) >= 0)
                        stage = (int) syscall(SYS_fsmount, tmp, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
                if (stage >= 0 && nested_detached_supported(stage) == 0) {
                        unsupported = true;
                        stage = safe_close(stage);
                }
        }
        for (size_t k = 0; stage >= 0 && k < n; k++) {
                if (fds[k] < 0)
                        continue;
                /* Each on a directory of the stage's own, never stacked on the last one: that
                 * one may be a clone of a shared mount (a directory extension), and a mount on
                 * it would propagate to its peers, the host's mount table among them. The
                 * stage itself is new, so private. A mount that cannot be moved (one already
                 * unmounted: the staging fallback's child moved it) is closed on its own below. */
                snprintf(name, sizeof(name), "%zu", i++);
                if (mkdirat(stage, name, 0700) < 0)
                        break;
                if (syscall(SYS_move_mount, fds[k], "", stage, name, MOVE_MOUNT_F_EMPTY_PATH) >= 0)
                        fds[k] = safe_close(fds[k]);    /* attached in the tree now: this close dissolves nothing */
        }
        for (size_t k = 0; k < n; k++)
                fds[k] = safe_close(fds[k]);
        /* stage and tmp close here: the tree, with every mount moved into it, in one go */
}

int mount_attach(int mnt_fd, int target_fd, bool beneath) {
        unsigned flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;

        assert(mnt_fd >= 0 && target_fd >= 0);
        if (beneath)
                flags |= MOVE_MOUNT_BENEATH;
        return sys_move_mount(mnt_fd, "", target_fd, "", flags) < 0 ? negative_errno() : 0;
}

static int base_in_child(void *userdata, int *ret_fds, size_t max_fds) {
        const char *path = userdata;

        /* Peel off sysext overlays (ours or systemd's) in this private copy of the namespace. */
        for (unsigned i = 0; i < MAX_STACKED_MERGES; i++) {
                _cleanup_close_ int d = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                int r;

                if (d < 0)
                        return sx_error(negative_errno(), "%s: %m", path);
                r = is_sysext_mount(d);
                if (r < 0)
                        return sx_error(r, "%s: cannot read merge markers: %m", path);
                if (r == 0)
                        break;
                d = safe_close(d);
                if (sys_umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                        return sx_error(negative_errno(), "%s: cannot look beneath the merged overlay: %m", path);
        }
        ret_fds[0] = sys_open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (ret_fds[0] < 0)
                return sx_error(negative_errno(), "%s: cannot clone the hierarchy: %m", path);
        return 1;
}

int hierarchy_open_base(const char *path, int *ret_fd) {
        int fd, r;

        assert(path && path_is_absolute(path) && ret_fd);
        r = run_in_mntns(-EBADF, RUN_AS_MNTNS_OWNER, base_in_child, (void *) path, &fd, 1);
        if (r < 0)
                return r;
        if (r != 1)
                return -EIO;
        *ret_fd = fd;
        return 0;
}
