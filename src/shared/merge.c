/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <json-c/json.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "extension.h"
#include "idmap-auto.h"
#include "inputs-stamp.h"
#include "layer-provider.h"
#include "markers.h"
#include "merge.h"
#include "mountapi.h"
#include "namespace.h"
#include "overlay.h"
#include "reload.h"
#include "submounts.h"
#include "version.h"

#define MAX_HIERARCHIES 32
#define DEFAULT_HIERARCHIES "/usr:/opt"
#define PROC_FD_PATH_MAX 64             /* "/proc/self/fd/%d" */
#define DEVNUM_STRING_MAX 32            /* "%u:%u" */
#define HIERARCHY_MODE 0755             /* a missing hierarchy's mount point, as systemd-sysext makes it */

int hierarchies_parse(const char *spec, const char *what, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        int r;

        assert(what && ret);
        r = strv_split(isempty(spec) ? DEFAULT_HIERARCHIES : spec, ":", &l);
        if (r < 0)
                return r;
        STRV_FOREACH(h, l) {
                if (!path_is_absolute(*h) || strstr(*h, "/../") || endswith(*h, "/..") || streq(*h, "/") ||
                    string_has_cc(*h))
                        return sx_error(-EINVAL, "%s: '%s' is not a valid hierarchy", what, *h);
        }
        if (strv_length(l) == 0 || strv_length(l) > MAX_HIERARCHIES)
                return sx_error(-EINVAL, "%s: between 1 and %d hierarchies expected", what, MAX_HIERARCHIES);
        *ret = TAKE_PTR(l);
        return 0;
}

/* ---- small helpers ---- */

static void notice(const MergeContext *c, const char *fmt, ...) _printf_(2, 3);
static void notice(const MergeContext *c, const char *fmt, ...) {
        _cleanup_free_ char *m = NULL;
        va_list ap;

        if (!c->notice)
                return;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        if (m)
                c->notice(m, c->notice_userdata);
}

static bool root_is_host(const char *root) {
        return isempty(root) || streq(root, "/");
}

static int lock_take(int *ret_fd) {
        _cleanup_free_ char *p = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = mkdir_p(sx_runtime_dir(), 0755);
        if (r < 0)
                return sx_error(r, "%s: cannot create runtime directory: %m", sx_runtime_dir());
        p = strjoin(sx_runtime_dir(), "/lock");
        if (!p)
                return -ENOMEM;
        fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return sx_error(negative_errno(), "%s: cannot open lock file: %m", p);
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return sx_error(negative_errno(), "%s: cannot take lock: %m", p);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int open_root(const char *root, int *ret_fd) {
        const char *path = root_is_host(root) ? "/" : root;
        int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return sx_error(negative_errno(), "%s: cannot open root directory: %m", path);
        *ret_fd = fd;
        return 0;
}

/* Lazily detach the mount on top of fd (a mount root): the magic link resolves to that very mount. */
static int umount_fd(int fd) {
        char proc[PROC_FD_PATH_MAX];

        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        return sys_umount2(proc, MNT_DETACH) < 0 ? negative_errno() : 0;
}

/* ---- per hierarchy plan ---- */

typedef struct Plan {
        const char *hierarchy;
        char *path;             /* resolved absolute path, for messages and the base helper */
        int h_fd;               /* what is on top of the hierarchy now */
        bool merged;            /* is h_fd a sysext overlay? */
        bool missing;           /* the host has no such directory (h_fd is -EBADF until it is created) */
        char *created;          /* the topmost directory created for it (root-relative), to undo on failure */
        Layer *layers;          /* meta, extensions newest first, base (unless missing or empty) */
        size_t n_layers;
        int meta_fd, base_fd, ovl_fd;
        json_object *meta;      /* our metadata for the old merge (status, reload) */
        MutableDirs mut;        /* --mutable=: the writable layer and the imported directory */
        char *old_work_dir;     /* the old merge's work_dir marker, removed when it goes */
        bool *used;             /* which extensions have a layer here (plan_collect_layers) */
        bool markers_ro;        /* a writable merge's marker directory is bound read-only (plan_protect_markers) */
        bool live;              /* its new overlay is attached: its workdir is in use, even if the verb fails later */
} Plan;

#define PLAN_NULL { .h_fd = -EBADF, .meta_fd = -EBADF, .base_fd = -EBADF, .ovl_fd = -EBADF, .mut = MUTABLE_DIRS_NULL }

static void plan_done(Plan *p) {
        for (size_t i = 0; i < p->n_layers; i++) {
                free(p->layers[i].subdir);
                /* meta and base dir fds are their mount fds, closed below */
                if (p->layers[i].dir_fd != p->meta_fd && p->layers[i].dir_fd != p->base_fd)
                        safe_close(p->layers[i].dir_fd);
        }
        free(p->layers);
        free(p->path);
        free(p->created);
        safe_close(p->h_fd);
        safe_close(p->meta_fd);
        safe_close(p->base_fd);
        safe_close(p->ovl_fd);
        if (p->meta)
                json_object_put(p->meta);
        mutable_dirs_done(&p->mut);
        free(p->old_work_dir);
        free(p->used);
        *p = (Plan) PLAN_NULL;
}

static void plans_free(Plan *p, size_t n) {
        _cleanup_free_ int *fds = n > 0 ? calloc(n, 2 * sizeof(int)) : NULL;

        /* The metadata tmpfs and the base clone of every hierarchy are detached mounts (the
         * overlays hold private clones): dissolved in one go (mounts_dissolve()). ovl_fd is not
         * among them: once attached, it is the merged hierarchy itself. */
        if (fds) {
                for (size_t i = 0; i < n; i++) {
                        for (size_t k = 0; k < p[i].n_layers; k++)
                                if (p[i].layers[k].dir_fd == p[i].meta_fd || p[i].layers[k].dir_fd == p[i].base_fd)
                                        p[i].layers[k].dir_fd = -EBADF;
                        fds[2 * i] = TAKE_FD(p[i].meta_fd);
                        fds[2 * i + 1] = TAKE_FD(p[i].base_fd);
                }
                mounts_dissolve(fds, 2 * n);
        }
        for (size_t i = 0; i < n; i++)
                plan_done(&p[i]);
        free(p);
}

/* How a hierarchy is opened: directly beneath the root, or (status --namespace-of) by a child in
 * the target mount namespace. Returns an O_PATH fd, -ENOENT if it does not exist, or another
 * negative errno with the whole message recorded (the caller adds nothing to it). */
typedef int (*HierarchyOpener)(const char *hierarchy, void *userdata);

/* A hierarchy that resolves to the root itself (usr -> / inside --root) would put an overlay over
 * the whole tree, with the tree as one of its layers: refuse it by name. */
static int open_hierarchy_at(int root_fd, const char *hierarchy) {
        struct stat a, b;
        int fd;

        assert(root_fd >= 0 && hierarchy && path_is_absolute(hierarchy));
        fd = openat_beneath(root_fd, hierarchy + 1, O_PATH | O_DIRECTORY, true);
        if (fd == -ENOENT)
                return fd;
        if (fd < 0)
                return sx_error(fd, "%s: cannot open hierarchy: %m", hierarchy);
        if (fstat(fd, &a) >= 0 && fstat(root_fd, &b) >= 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
                safe_close(fd);
                return sx_error(-ELOOP, "%s: resolves to the root directory itself; refusing to merge over it", hierarchy);
        }
        return fd;
}

static int open_hierarchy_beneath(const char *hierarchy, void *userdata) {
        return open_hierarchy_at(*(int *) userdata, hierarchy);
}

/* The plan of a hierarchy the host lacks: merge and refresh create its mount point if an extension
 * has content for it, as systemd-sysext does (status and unmerge leave it out). */
static int plan_missing(Plan *p, const char *root_path) {
        p->missing = true;
        p->path = path_join_root(root_path, p->hierarchy);
        return p->path ? 0 : -ENOMEM;
}

/* Open every hierarchy that exists under root. A missing one is left out, unless root_path (merge,
 * refresh) is given: then it gets a plan with missing set. */
static int plans_open_with(char * const *hierarchies, HierarchyOpener opener, void *userdata, const char *root_path,
                           Plan **ret, size_t *ret_n) {
        Plan *plans;
        size_t n = 0;
        int r;

        plans = calloc(strv_length(hierarchies) + 1, sizeof(Plan));
        if (!plans)
                return -ENOMEM;
        STRV_FOREACH(h, hierarchies) {
                Plan *p = &plans[n];
                int fd;

                *p = (Plan) PLAN_NULL;
                p->hierarchy = *h;
                fd = opener(*h, userdata);
                if (fd == -ENOENT && root_path) {
                        n++;
                        r = plan_missing(p, root_path);
                        if (r < 0)
                                goto fail;
                        continue;
                }
                if (fd == -ENOENT)
                        continue;
                if (fd < 0) {
                        r = fd;
                        goto fail;
                }
                p->h_fd = fd;
                n++;
                r = fd_get_path(fd, &p->path);
                if (r < 0)
                        goto fail;
                r = is_sysext_mount(fd);
                if (r < 0) {
                        r = sx_error(r, "%s: cannot read merge markers: %m", p->path);
                        goto fail;
                }
                p->merged = r > 0;
                if (p->merged)
                        p->meta = markers_read_meta(fd);
                if (p->merged && mutable_work_dir_read(fd, markers_meta_dir_at(fd), &p->old_work_dir) < 0)
                        p->old_work_dir = NULL;         /* unreadable: nothing is removed */
        }
        *ret = plans;
        *ret_n = n;
        return 0;
fail:
        plans_free(plans, n);
        return r;
}

/* keep_missing: merge and refresh, which may create a missing hierarchy's mount point. */
static int plans_open(char * const *hierarchies, int root_fd, bool keep_missing, Plan **ret, size_t *ret_n) {
        _cleanup_free_ char *root_path = NULL;
        int r;

        if (keep_missing) {
                r = fd_get_path(root_fd, &root_path);
                if (r < 0)
                        return r;
        }
        return plans_open_with(hierarchies, open_hierarchy_beneath, &root_fd, root_path, ret, ret_n);
}

/* The discovered images a merge leaves out: incompatible ones (as systemd-sysext) and broken ones
 * (beyond it: systemd#32762), each with one notice line and recorded in the metadata. */
typedef struct SkipList {
        SkippedImage *v;
        size_t n;
        size_t n_broken;        /* of them not merely incompatible */
        int last_error;         /* the errno of the last broken one */
} SkipList;

static int skip_record(const MergeContext *c, SkipList *l, const char *name, const char *path, const char *reason,
                       int error) {
        SkippedImage *v = reallocarray(l->v, l->n + 1, sizeof(SkippedImage));

        if (!v)
                return -ENOMEM;
        l->v = v;
        v[l->n] = (SkippedImage) { .name = strdup(name), .path = strdup(path), .reason = strdup(reason) };
        if (!v[l->n].name || !v[l->n].path || !v[l->n].reason) {
                free(v[l->n].name);
                free(v[l->n].path);
                free(v[l->n].reason);
                return -ENOMEM;
        }
        l->n++;
        if (error < 0) {
                l->n_broken++;
                l->last_error = error;
                notice(c, "Skipping extension '%s': %s", name, reason);
        } else
                notice(c, "Extension '%s' is not compatible with this host (%s), ignoring.", name, reason);
        return 0;
}

/* A discovered image that failed with r: left out with its error as the reason. */
static int skip_broken(const MergeContext *c, SkipList *l, const char *name, const char *path, int r) {
        _cleanup_free_ char *reason = strdup(sx_last_error() ?: strerror(-r));

        if (r == -ENOMEM || !reason)
                return -ENOMEM;
        sx_clear_error();
        return skip_record(c, l, name, path, reason, r);
}

static void skip_list_done(SkipList *l) {
        skipped_images_free(l->v, l->n);
        *l = (SkipList) {};
}

static int ext_push(Extension ***exts, size_t *n, Extension *e) {
        Extension **v = reallocarray(*exts, *n + 2, sizeof(Extension *));

        if (!v) {
                extension_free(e);
                return -ENOMEM;
        }
        v[(*n)++] = e;
        v[*n] = NULL;
        *exts = v;
        return 0;
}

/* Where the partitions came from, if not from here as always. */
static void provider_notice(const MergeContext *c, const Extension *e) {
        if (e->provider_notice)
                notice(c, "%s", e->provider_notice);
        else if (e->from_broker)
                sx_debug("%s: partitions from the broker's layer store", e->image->path);
}

/* Open a named image as its source says (as the user, under the name discovery gave it). */
static int image_open_source(const ImageSource *src, const ExtensionOptions *eo, Image **ret) {
        Image *img = NULL;
        FsIds saved;
        int r;

        saved = fsids_switch(eo->open_as_user, eo->uid, eo->gid);
        r = image_from_path(src->path, &img);
        fsids_restore(&saved);
        if (r < 0)
                return r;
        if (src->name && !streq(src->name, img->name)) {
                char *name = strdup(src->name);
                if (!name) {
                        image_free(img);
                        return -ENOMEM;
                }
                free(img->name);
                img->name = name;
        }
        if (eo->open_as_user) {
                /* Discovery found it at this canonical path; if it resolves elsewhere now, a
                 * directory was swapped for a symlink meanwhile. From here on: no symlinks. */
                if (!streq(img->path, src->path)) {
                        r = sx_error(-EXDEV, "%s: changed while being opened (now %s)", src->path, img->path);
                        image_free(img);
                        return r;
                }
                img->no_symlinks = true;
        }
        /* An image someone else may change: neither it nor its sidecars through a symlink. */
        if (eo->user_controlled)
                img->no_symlinks = true;
        *ret = img;
        return 0;
}

/* 1 if an extension of img's name is in the list already, 0 if not, or a negative errno (a name
 * given twice) if that is an error. */
static int image_is_duplicate(const ImageSource *src, const Image *img, Extension **exts, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(exts[i]->image->name, img->name))
                        return src->discovered ? 1 :    /* a named image of that name wins */
                                sx_error(-ENOTUNIQ, "%s: an image named '%s' was given twice", img->path, img->name);
        return 0;
}

static int open_explicit(const MergeContext *c, const ExtensionOptions *o, const ImageSource *src, Extension ***exts, size_t *n,
                         SkipList *skips) {
        ExtensionOptions eo = *o;
        Image *img = NULL;
        Extension *e = NULL;
        int r;

        eo.open_as_user = src->open_as_user;
        eo.uid = src->uid;
        eo.gid = src->gid;
        eo.user_controlled = src->user_controlled;
        eo.user_controlled_why = src->user_controlled_why;
        eo.private_copy_max = c->private_copy_max;
        r = image_open_source(src, &eo, &img);
        if (r < 0)
                return r;
        r = image_is_duplicate(src, img, *exts, *n);
        if (r != 0) {
                image_free(img);
                return r < 0 ? r : 0;
        }
        r = extension_open(img, &eo, &e);
        if (r < 0)
                return r;
        if (!e->compatible && src->discovered) {
                r = skip_record(c, skips, e->image->name, e->image->path, e->reason, 0);
                extension_free(e);
                return r;
        }
        if (!e->compatible) {
                r = sx_error(-EMEDIUMTYPE, "%s: not compatible with this host: %s", e->image->path, e->reason);
                extension_free(e);
                return r;
        }
        memcpy(e->mount_attrs, src->attrs, sizeof(e->mount_attrs));
        provider_notice(c, e);
        return ext_push(exts, n, e);
}

/* A named image that fails is an error (or, with skip_broken, left out with a notice); one that
 * discovery found (run --discover) is skipped as discovered images are. */
static int collect_explicit(const MergeContext *c, const ExtensionOptions *o, Extension ***exts, size_t *n,
                            SkipList *skips) {
        int r;

        for (size_t i = 0; i < c->n_images; i++) {
                const ImageSource *src = &c->images[i];

                r = open_explicit(c, o, src, exts, n, skips);
                if (r >= 0)
                        continue;
                if (src->discovered && r != -ENOMEM) {
                        r = skip_broken(c, skips, src->name ?: src->path, src->path, r);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!c->skip_broken)
                        return r;
                notice(c, "%s; leaving it out.", strna(sx_last_error()));
                sx_clear_error();
        }
        return 0;
}

static int image_cmp(const void *a, const void *b) {
        const Extension *x = *(Extension * const *) a, *y = *(Extension * const *) b;

        return version_compare(x->image->name, y->image->name);
}

/* Every discovered image that cannot be used is left out with a notice (skips): one broken
 * download must not keep the others from being merged at boot. */
static int collect_discovered(const MergeContext *c, const ExtensionOptions *o, Extension ***exts, size_t *n,
                              SkipList *skips) {
        Image **images = NULL;
        size_t n_images = 0, i;
        int r;

        r = image_discover_in(c->root, image_class_info(c->image_class)->search_dirs, &images, &n_images);
        if (r < 0)
                return r;
        for (i = 0; i < n_images; i++) {
                Extension *e = NULL;
                Image *img = TAKE_PTR(images[i]);

                if (img->masked) {
                        image_free(img);
                        continue;
                }
                _cleanup_free_ char *name = strdup(img->name), *path = strdup(img->path);
                if (!name || !path) {
                        image_free(img);
                        r = -ENOMEM;
                        break;
                }
                r = extension_open(img, o, &e);
                if (r < 0) {
                        r = skip_broken(c, skips, name, path, r);
                        if (r < 0)
                                break;
                        continue;
                }
                if (!e->compatible) {
                        r = skip_record(c, skips, e->image->name, e->image->path, e->reason, 0);
                        extension_free(e);
                        if (r < 0)
                                break;
                        continue;
                }
                provider_notice(c, e);
                r = ext_push(exts, n, e);
                if (r < 0)
                        break;
        }
        image_array_free(images, n_images);
        return r < 0 ? r : 0;
}

/* Dissect, mount (detached) and check every extension. A discovered image that fails is left out
 * with a notice and recorded in skips; a named one fails the whole operation, but with skip_broken
 * (it is left out with a notice). */
static int collect_extensions(const MergeContext *c, const HostInfo *host, Extension ***ret, size_t *ret_n, SkipList *skips) {
        ExtensionOptions o = {
                .host = host,
                .image_class = c->image_class,
                .force = c->force,
                .mount = true,
                .policy = c->policy,
                .verity_mode = c->verity_mode,
                .verity_root = c->namespace_of > 0 ? NULL : c->root,
        };
        LayerProvider provider = { .broker = c->broker };
        Extension **exts = NULL;
        size_t n = 0;
        int r;

        if (c->broker) {
                o.provide = layer_provider_mount;
                o.provide_userdata = &provider;
        }
        r = c->images ? collect_explicit(c, &o, &exts, &n, skips) : collect_discovered(c, &o, &exts, &n, skips);
        if (r < 0) {
                extension_array_free(exts, n);
                return r;
        }
        if (n > 1)      /* exts is NULL when nothing was found: qsort() must not get NULL */
                qsort(exts, n, sizeof(Extension *), image_cmp);
        *ret = exts;
        *ret_n = n;
        return 0;
}

static int plan_add_layer(Plan *p, int mnt_fd, char *subdir, int dir_fd) {
        Layer *l = reallocarray(p->layers, p->n_layers + 1, sizeof(Layer));

        if (!l) {
                free(subdir);
                return -ENOMEM;
        }
        p->layers = l;
        p->layers[p->n_layers++] = (Layer) { .mnt_fd = mnt_fd, .subdir = subdir, .dir_fd = dir_fd };
        return 0;
}

/* What runs where. The host side (the caller's namespaces) takes the lock, discovers, dissects,
 * mounts the images detached and idmaps them. The hierarchy side opens the hierarchies, clones
 * their base, builds the overlays and attaches or detaches them; with --namespace-of it runs in a
 * forked child that joined the target's mount namespace, so the caller's mount table is never
 * touched, and so does `run` for the command's fresh namespace. */

struct MergeSession {
        const MergeContext *c;
        HostInfo host;
        Extension **exts;
        size_t n_exts;
        Idmap *idmap;           /* effective mapping (the context's, or the target namespace's) */
        Idmap *owned_idmap;
        Idmap **layer_idmaps;   /* each extension's mapping: idmap, or under auto one of idmap_cache */
        IdmapCache idmap_cache;
        int target_mntns;       /* -EBADF: our own mount namespace */
        int target_root;        /* the target process's root directory (it may be chrooted) */
        const char *root;       /* root for the hierarchies (c->root); inside a target, beneath target_root */
        bool reload;
        SkipList skips;         /* discovered images left out */
        json_object *inputs;    /* the inputs stamp (inputs-stamp.h) and "merged", or NULL */
        bool sole_owner;        /* no other process gets the image mounts: dissolved together when freed */
};

/* Every layer read-only and idmapped: with the session's mapping, or under --idmap=auto with its
 * own (idmap-auto.h), one user namespace per distinct mapping. */
static int idmap_extensions(MergeSession *s) {
        int r;

        s->layer_idmaps = calloc(s->n_exts, sizeof(Idmap *));
        if (!s->layer_idmaps)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_exts; i++) {
                const Extension *e = s->exts[i];
                const DissectedImage *d = e->dissected;
                int fds[2] = { e->mounts.root_fd, e->mounts.usr_fd };
                const char *fstype[2] = { d->partitions[PARTITION_ROOT].fstype, d->partitions[PARTITION_USR].fstype };
                Idmap *m = s->idmap;

                if (idmap_is_auto(m)) {
                        r = idmap_auto_resolve(e->image->path, fds[0] >= 0 ? fds[0] : fds[1], &s->idmap_cache, &m);
                        if (r < 0)
                                return r;
                }
                s->layer_idmaps[i] = m;
                int userns = idmap_userns_fd(m);
                if (userns < 0 && userns != -EBADF)
                        return userns;
                for (size_t k = 0; k < 2; k++) {
                        if (fds[k] < 0)
                                continue;
                        r = mount_make_idmapped(fds[k], userns, e->mount_attrs[k], e->image->path, fstype[k]);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static const char *session_idmap_spec(const MergeSession *s) {
        return s->idmap ? s->idmap->spec : "identity";
}

/* --noexec=, else the image class's default (confext: noexec, sysext: exec). */
static bool session_noexec(const MergeSession *s) {
        if (s->c->noexec != NOEXEC_DEFAULT)
                return s->c->noexec == NOEXEC_YES;
        return image_class_info(s->c->image_class)->overlay_attrs & MOUNT_ATTR_NOEXEC;
}

/* Each extension's own mapping (--idmap=auto decides per layer), for the markers; freed by the
 * caller, the strings stay the session's. */
static const char **session_layer_specs(const MergeSession *s) {
        const char **specs = calloc(s->n_exts ?: 1, sizeof(char *));

        for (size_t i = 0; specs && i < s->n_exts; i++)
                specs[i] = s->layer_idmaps && s->layer_idmaps[i] ? s->layer_idmaps[i]->spec : session_idmap_spec(s);
        return specs;
}

/* What the markers of hierarchy p (or, p NULL, any hierarchy's identity) say; *resolved owns what
 * a userns:/pid: mapping resolved to, layer_specs comes from session_layer_specs(). */
static int session_markers_info(const MergeSession *s, const Plan *p, const bool *used, const char **layer_specs,
                                Idmap **resolved, MarkersInfo *ret) {
        int r;

        if (s->idmap && s->idmap->kind == IDMAP_USERNS && s->idmap->userns_fd >= 0) {
                /* userns:/pid: name a namespace that may go away; record what it mapped. */
                r = userns_read_maps(s->idmap->userns_fd, resolved);
                if (r < 0)
                        return sx_error_prefix(r, "%s: cannot read the ID mapping of %s", p ? p->path : "refresh",
                                               s->idmap->spec);
        }
        *ret = (MarkersInfo) {
                .origin = s->c->origin,
                .image_class = s->c->image_class,
                .hierarchy = p ? p->hierarchy : NULL,
                .root = root_is_host(s->root) ? "/" : s->root,
                .idmap_spec = session_idmap_spec(s),
                .idmap_resolved = *resolved ? (*resolved)->spec : NULL,
                .layer_idmap_specs = layer_specs,
                .exts = s->exts,
                .used = used,
                .n_exts = s->n_exts,
                .hierarchies = s->c->hierarchies,
                .skipped = s->skips.v,
                .n_skipped = s->skips.n,
                .mutable_mode = mutable_mode_to_string(s->c->mutable_mode),
                .noexec = session_noexec(s),
                .overlay_options = s->c->overlay_options,
                .inputs = s->inputs,
        };
        return 0;
}

static int meta_write(const MergeSession *s, Plan *p, const bool *used) {
        _cleanup_(idmap_freep) Idmap *resolved = NULL;
        _cleanup_free_ const char **layer_specs = session_layer_specs(s);
        MarkersInfo m;
        int r;

        if (!layer_specs)
                return -ENOMEM;
        r = session_markers_info(s, p, used, layer_specs, &resolved, &m);
        if (r < 0)
                return r;
        return markers_write(p->meta_fd, p->path, &m);
}

/* 1 if the directory (an O_PATH fd will do) has no entries at all, hidden ones included, as
 * systemd-sysext's dir_is_empty(…, false); 0 if it has some. */
static int dir_fd_is_empty(int fd) {
        int d = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct dirent *de;
        DIR *dir;
        int r = 1;

        if (d < 0)
                return negative_errno();
        dir = fdopendir(d);
        if (!dir) {
                r = negative_errno();
                safe_close(d);
                return r;
        }
        for (errno = 0; (de = readdir(dir)); errno = 0)
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
                        r = 0;
                        break;
                }
        if (r > 0 && errno != 0)
                r = negative_errno();
        closedir(dir);
        return r;
}

/* The extensions' layers for one hierarchy, newest (last in merge order) first; used[i] says
 * which extensions have one. An empty directory is no layer (systemd-sysext: "Hierarchy '/opt' in
 * extension 'x' is empty, not merging."), so a hierarchy no extension has content for stays as
 * it is. */
static int plan_add_extension_layers(Plan *p, Extension **exts, size_t n, bool *used) {
        int r;

        for (size_t i = n; i-- > 0;) {
                char *sub = NULL;
                int mnt, dir;

                r = extension_hierarchy(exts[i], p->hierarchy, &mnt, &sub, &dir);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                r = dir_fd_is_empty(dir);
                if (r != 0) {
                        free(sub);
                        safe_close(dir);
                        if (r < 0)
                                return sx_error(r, "%s: cannot read %s: %m", exts[i]->image->path, p->hierarchy);
                        sx_debug("Hierarchy '%s' in extension '%s' is empty, not merging.", p->hierarchy, exts[i]->image->name);
                        continue;
                }
                r = plan_add_layer(p, mnt, sub, dir);
                if (r < 0) {
                        safe_close(dir);
                        return r;
                }
                used[i] = true;
        }
        return 0;
}

/* The bottom layer: what the hierarchy shows without any merge (or, stacking, with the merges). */
static int plan_open_base(const MergeContext *c, Plan *p) {
        if (p->merged && !c->stack)
                return hierarchy_open_base(p->path, &p->base_fd);
        p->base_fd = sys_open_tree(p->h_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (p->base_fd < 0)
                return sx_error(negative_errno(), "%s: cannot clone the hierarchy: %m", p->path);
        return 0;
}

/* Metadata on top, then the imported mutable directory (--mutable=import), base (if any, and not
 * the upper dir) at the bottom. */
static int plan_wrap_layers(Plan *p) {
        size_t top = p->mut.import_fd >= 0 ? 2 : 1;
        Layer *l = reallocarray(p->layers, p->n_layers + top + 1, sizeof(Layer));

        if (!l)
                return -ENOMEM;
        p->layers = l;
        memmove(p->layers + top, p->layers, p->n_layers * sizeof(Layer));
        p->layers[0] = (Layer) { .mnt_fd = p->meta_fd, .subdir = strdup(""), .dir_fd = p->meta_fd };
        if (top == 2) {         /* the layer owns the clone from now on (plan_done closes it as its dir_fd) */
                int fd = TAKE_FD(p->mut.import_fd);
                p->layers[1] = (Layer) { .mnt_fd = fd, .subdir = strdup(""), .dir_fd = fd };
        }
        p->n_layers += top;
        if (p->mut.hierarchy_is_upper)  /* the hierarchy is the upper dir: not a lower one as well */
                p->base_fd = safe_close(p->base_fd);
        if (p->base_fd >= 0)
                p->layers[p->n_layers++] = (Layer) { .mnt_fd = p->base_fd, .subdir = strdup(""), .dir_fd = p->base_fd };
        return 0;
}

/* The host's side of the hierarchy: none if it is missing (its mount point, made later, is mode
 * 0755 and root's, like the merged root then) or empty, as systemd-sysext: "Host hierarchy '%s'
 * does not exist / is empty, will not be used as lowerdir". *st: what the merged root looks like. */
static int plan_open_host(const MergeContext *c, Plan *p, struct stat *st) {
        int r;

        if (p->missing) {
                *st = (struct stat) { .st_mode = S_IFDIR | HIERARCHY_MODE };
                return 0;
        }
        r = plan_open_base(c, p);
        if (r < 0)
                return r;
        if (fstat(p->base_fd, st) < 0)
                return negative_errno();
        r = dir_fd_is_empty(p->base_fd);
        if (r < 0)
                return sx_error(r, "%s: cannot read the hierarchy: %m", p->path);
        if (r > 0)
                p->base_fd = safe_close(p->base_fd);
        return 0;
}

/* The work_dir marker (as systemd-sysext writes it): unmerge removes the workdir it names. */
static int plan_write_work_dir(const MergeSession *s, Plan *p) {
        const char *meta_dir = image_class_info(s->c->image_class)->meta_dir;
        _cleanup_free_ char *e = NULL;
        int r;

        if (!p->mut.work_dir)
                return 0;
        e = cescape(p->mut.work_dir);
        if (!e)
                return -ENOMEM;
        _cleanup_free_ char *marker = strjoin(meta_dir, "/" MUTABLE_WORK_DIR_MARKER);
        if (!marker)
                return -ENOMEM;
        r = write_string_at(p->meta_fd, marker, e, 0644);
        return r < 0 ? sx_error(r, "%s: cannot write the work_dir marker: %m", p->path) : 0;
}

/* Fill the layers of one hierarchy. Returns 0 and no layers if no extension provides it and the
 * merge gets no writable layer (a writable merge is made without extensions, as systemd-sysext's). */
static int plan_collect_layers(const MergeSession *s, Plan *p) {
        p->used = calloc(s->n_exts + 1, sizeof(bool));
        if (!p->used)
                return -ENOMEM;
        return plan_add_extension_layers(p, s->exts, s->n_exts, p->used);
}

static int plan_prepare(const MergeSession *s, int root_fd, Plan *p) {
        struct stat st;
        int r;

        if (p->n_layers == 0 && !mutable_mode_may_write(s->c->mutable_mode))
                return 0;
        r = plan_open_host(s->c, p, &st);
        if (r < 0)
                return r;
        r = mutable_dirs_open(root_fd, p->hierarchy, s->c->mutable_mode, &st, &p->mut);
        if (r < 0)
                return r;
        if (p->n_layers == 0 && !mutable_dirs_writable(&p->mut)) {
                p->base_fd = safe_close(p->base_fd);
                mutable_dirs_done(&p->mut);
                return 0;
        }
        r = meta_layer_make(&st, &p->meta_fd);
        if (r < 0)
                return r;
        r = meta_write(s, p, p->used);
        if (r < 0)
                return r;
        r = plan_write_work_dir(s, p);
        if (r < 0)
                return r;
        return plan_wrap_layers(p);
}

/* What overlayfs is told beyond the layers: $SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS if given, else
 * systemd-sysext's defaults for a writable merge. */
static const char *plan_overlay_options(const Plan *p, const char *options) {
        if (options)
                return options;
        return mutable_dirs_writable(&p->mut) ? OVERLAY_MUTABLE_OPTIONS : NULL;
}

static int plans_build_overlays(Plan *plans, size_t n, uint64_t attrs, const char *options, const char *source,
                                bool *ret_fallback) {
        OverlaySpec specs[MAX_HIERARCHIES];
        int fds[MAX_HIERARCHIES];
        size_t k = 0;
        int r;

        for (size_t i = 0; i < n; i++)
                if (plans[i].n_layers > 0)
                        specs[k++] = (OverlaySpec) {
                                .hierarchy = plans[i].path,
                                .mount_attrs = attrs,
                                .layers = plans[i].layers,
                                .n_layers = plans[i].n_layers,
                                .upper = { .mnt_fd = plans[i].mut.upper_mnt, .subdir = plans[i].mut.upper_sub,
                                           .dir_fd = plans[i].mut.upper_fd },
                                .work = { .mnt_fd = plans[i].mut.upper_mnt, .subdir = plans[i].mut.work_sub,
                                          .dir_fd = plans[i].mut.work_fd },
                                .options = plan_overlay_options(&plans[i], options),
                                .source = source,
                        };
        *ret_fallback = false;
        if (k == 0)
                return 0;
        r = overlays_make(specs, k, fds, ret_fallback);
        if (r < 0)
                return r;
        k = 0;
        for (size_t i = 0; i < n; i++) {
                if (plans[i].n_layers == 0)
                        continue;
                plans[i].ovl_fd = fds[k++];
                /* Only now is the overlay's device known; nothing has looked at the markers yet. */
                r = markers_write_dev(plans[i].meta_fd, plans[i].ovl_fd, plans[i].path);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Only the host's own manager is asked; a target namespace or --root belongs to someone else. */
static bool may_reload(const MergeSession *s) {
        return !s->c->no_reload && root_is_host(s->root) && s->target_mntns < 0;
}

/* Before anything is attached or detached: what reload needs is loaded from the file system as it
 * is now, not from the extensions about to be merged (reload.h). A failure is reported by
 * maybe_reload(), which tries again. */
static void prepare_reload(const MergeSession *s, const Plan *plans, size_t n) {
        bool wanted = s->reload;

        for (size_t i = 0; !wanted && i < n; i++)
                wanted = plans[i].merged && markers_meta_wants_reload(plans[i].meta);
        if (wanted && may_reload(s) && service_manager_reload_prepare() < 0)
                sx_clear_error();
}

static void maybe_reload(const MergeSession *s, bool wanted) {
        int r;

        if (!wanted || !may_reload(s))
                return;
        r = service_manager_reload();
        if (r > 0)
                notice(s->c, "Reloaded the service manager.");
        else if (r < 0) {
                notice(s->c, "%s", strna(sx_last_error()));
                sx_clear_error();       /* not the verb's failure */
        }
}

/* A writable merge (--mutable=): its marker directory is bound read-only over itself, as
 * systemd-sysext does, or whoever may write the hierarchy could rewrite which merge this is (and
 * what unmerge and refresh then believe). On the detached overlay (Linux 6.15+ attaches a mount onto a
 * detached tree); where the kernel refuses that (EINVAL), again once the overlay is attached. */
static int plan_protect_markers(const MergeSession *s, Plan *p, bool attached) {
        const char *meta_dir = image_class_info(s->c->image_class)->meta_dir;
        struct mount_attr a = {
                .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                .propagation = MS_PRIVATE,
        };
        _cleanup_close_ int clone = -EBADF, target = -EBADF;
        int r;

        if (p->ovl_fd < 0 || p->markers_ro || !mutable_dirs_writable(&p->mut))
                return 0;
        clone = sys_open_tree(p->ovl_fd, meta_dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        r = clone < 0 ? negative_errno() : 0;
        if (r >= 0 && sys_mount_setattr(clone, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
                r = negative_errno();
        if (r >= 0) {
                target = openat(p->ovl_fd, meta_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                r = target < 0 ? negative_errno() : 0;
        }
        if (r >= 0 && sys_move_mount(clone, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                r = negative_errno();
        if (r == -EINVAL && !attached)
                return 0;       /* before Linux 6.15: once attached */
        if (r < 0)
                return sx_error(r, "%s: cannot make %s read-only in the writable merge: %m", p->path, meta_dir);
        p->markers_ro = true;
        return 0;
}

/* Before attaching, a failure fails the verb (nothing is visible yet). Once attached, the merge is
 * complete and stays: a failure is a notice, not an error that would leave it in place unreported. */
static int plans_protect_markers(const MergeSession *s, Plan *plans, size_t n, bool attached) {
        for (size_t i = 0; i < n; i++) {
                int r = plan_protect_markers(s, &plans[i], attached);
                if (r < 0 && !attached)
                        return r;
                if (r < 0) {
                        notice(s->c, "Warning: %s", strna(sx_last_error()));
                        sx_clear_error();
                }
        }
        return 0;
}

/* ---- verbs ---- */

/* Detach the overlays attached so far (plans[0..i)), so a failure leaves the mount table as it was. */
static void detach_attached(Plan *plans, size_t i) {
        while (i-- > 0) {
                _cleanup_close_ int top = -EBADF;
                if (plans[i].ovl_fd < 0)
                        continue;
                top = open(plans[i].path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (top >= 0 && is_sysext_mount(top) > 0)
                        (void) umount_fd(top);
        }
}

/* Create the mount point of a hierarchy the host lacks, each missing component mode 0755 beneath
 * the root (what exists, symlinks included, is resolved in it), as systemd-sysext does; it stays
 * after unmerge, as there. Records the topmost directory created. */
static int hierarchy_create(int root_fd, Plan *p) {
        const char *rel = p->hierarchy + 1;
        _cleanup_free_ char *prefix = NULL;
        int parent = -EBADF, r = 0;

        prefix = strdup(rel);
        if (!prefix)
                return -ENOMEM;
        for (char *slash = prefix;; slash++) {
                _cleanup_close_ int here = -EBADF;
                bool last;

                slash = strchrnul(slash, '/');
                last = *slash == 0;
                *slash = 0;
                here = openat_beneath(root_fd, prefix, O_PATH | O_DIRECTORY, true);
                if (here == -ENOENT) {
                        const char *name = strrchr(prefix, '/') ? strrchr(prefix, '/') + 1 : prefix;
                        int at = parent >= 0 ? parent : root_fd;
                        if (sys_mkdirat(at, name, HIERARCHY_MODE) < 0) {
                                r = sx_error(negative_errno(), "Failed to create hierarchy mount point '%s': %m", p->path);
                                break;
                        }
                        if (!p->created && !(p->created = strdup(prefix))) {
                                r = -ENOMEM;
                                break;
                        }
                        /* The very directory just made (never a symlink swapped in), its mode
                         * whatever the umask. */
                        here = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (here < 0 || fchmod(here, HIERARCHY_MODE) < 0) {
                                r = sx_error(negative_errno(), "Failed to create hierarchy mount point '%s': %m", p->path);
                                break;
                        }
                }
                if (here < 0) {
                        r = sx_error(here, "Failed to create hierarchy mount point '%s': %m", p->path);
                        break;
                }
                safe_close(parent);
                parent = TAKE_FD(here);
                if (last)
                        break;
                *slash = '/';
        }
        if (r < 0) {
                safe_close(parent);
                return r;
        }
        p->h_fd = parent;
        return 0;
}

static void hierarchy_remove_created(int root_fd, Plan *p) {
        _cleanup_free_ char *path = strdup(p->hierarchy + 1);
        size_t top = strlen(p->created);

        /* Deepest first, up to the topmost directory made for it; a mount point stays (EBUSY). */
        while (path && strlen(path) >= top) {
                _cleanup_close_ int parent = -EBADF;
                char *slash = strrchr(path, '/');
                const char *name = slash ? slash + 1 : path;

                if (slash) {
                        *slash = 0;
                        parent = openat_beneath(root_fd, path, O_PATH | O_DIRECTORY, true);
                } else
                        parent = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
                if (parent < 0 || unlinkat(parent, name, AT_REMOVEDIR) < 0 || !slash)
                        break;
        }
        free(p->created);
        p->created = NULL;
}

/* Just before the attach: the mount points of missing hierarchies that get an overlay. */
static int plans_create_missing(int root_fd, Plan *plans, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (!plans[i].missing || plans[i].ovl_fd < 0)
                        continue;
                int r = hierarchy_create(root_fd, &plans[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A failed merge or refresh takes away the mount points it made. */
/* A verb that failed: what it made for overlays that were never attached goes again (the mount
 * points of missing hierarchies, the workdirs --mutable= made). */
static void plans_remove_created(int root_fd, Plan *plans, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (plans[i].created)
                        hierarchy_remove_created(root_fd, &plans[i]);
                if (plans[i].mut.work_made && !plans[i].live)
                        (void) mutable_work_dir_remove(root_fd, plans[i].mut.work_dir);
        }
}

static void submounts_done_many(Submounts *subs, size_t n) {
        for (size_t i = 0; i < n; i++)
                submounts_done(&subs[i]);
}

/* Carry the mounts below p's hierarchy onto its detached overlay, or, once the kernel refused that
 * (*deferred: before Linux 6.15, or the test hook), mark them to be carried after it is attached;
 * a merged hierarchy's old merge is then saved, to be put back if the refresh fails part way. */
static int submounts_prepare_carry(const MergeContext *c, const Plan *p, Submounts *s, bool *deferred) {
        bool known = *deferred;
        int r;

        s->deferred = known;
        r = known ? 0 : submounts_carry(s, p->ovl_fd);
        if (r < 0 || !s->deferred)
                return r;
        *deferred = true;
        r = submounts_check_targets(s, p->ovl_fd, "the merged tree");  /* fail now, not once attached */
        if (r < 0)
                return r;
        if (!known || TEST_HOOK(force_attached_submounts, false))
                notice(c, "Note: %s: the mounts below '%s' are moved onto the overlay after it is attached, "
                       "so they are briefly not visible.",
                       TEST_HOOK(force_attached_submounts, false) ? "SYSEXT_IDMAP_ATTACHED_SUBMOUNTS" :
                       "the kernel cannot attach a mount onto a detached overlay (Linux 6.15+)", p->path);
        return p->merged ? submounts_save(s, p->h_fd) : 0;
}

/* Before anything is visible: clone the mounts now visible below each hierarchy that gets a new
 * overlay and carry them onto it (with backups where the originals are to be detached: a
 * hierarchy not merged yet), and check that those of a hierarchy to be unmerged can go back.
 * subs[i] belongs to plans[i]. */
static int submounts_prepare(const MergeContext *c, Plan *plans, size_t n, bool refresh, Submounts *subs) {
        _cleanup_(mount_table_done) MountTable t = {};
        bool deferred = TEST_HOOK(force_attached_submounts, false);
        int r;

        for (size_t i = 0; i < n; i++)
                subs[i] = SUBMOUNTS_NULL;
        r = mount_table_read(&t);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                Plan *p = &plans[i];
                _cleanup_close_ int base = -EBADF;

                if (p->ovl_fd < 0 && !(refresh && p->merged))
                        continue;
                r = submounts_collect(&t, p->path, p->h_fd, !p->merged, &subs[i]);
                if (r < 0 || subs[i].n == 0)
                        continue;
                if (p->ovl_fd >= 0) {
                        r = submounts_prepare_carry(c, p, &subs[i], &deferred);
                        continue;
                }
                r = hierarchy_open_base(p->path, &base);
                if (r >= 0)
                        r = submounts_check_targets(&subs[i], base, "the hierarchy without the merge; unmount it first");
                if (r >= 0)
                        r = submounts_save(&subs[i], p->h_fd);
        }
        if (r < 0)
                submounts_done_many(subs, n);
        return r;
}

/* The overlay of a hierarchy that was not merged is attached: carry the clones onto it if that was
 * deferred (the originals, covered, stay until then), and detach the mounts it covers. On failure,
 * put them back and detach the overlay (the clones carried go with it): as it was. */
static int submounts_finish_attach(Plan *p, Submounts *s) {
        int r = s->deferred ? submounts_carry(s, p->ovl_fd) : 0;

        if (r >= 0)
                r = submounts_detach_originals(s);

        if (r >= 0)
                return 0;
        detach_attached(p, 1);
        (void) submounts_attach(s, p->h_fd, true);
        return r;
}

/* Put the mounts that were on a merged hierarchy back on it, once unmerged; if that fails, put
 * the merged tree back as it was. */
static int submounts_put_back(int root_fd, const Plan *p, Submounts *s) {
        _cleanup_close_ int h = -EBADF;
        int r;

        if (s->n == 0)
                return 0;
        h = openat_beneath(root_fd, p->hierarchy + 1, O_PATH | O_DIRECTORY, true);
        if (h < 0)
                return sx_error(h, "%s: unmerged, but cannot open it to put the mounts below it back: %m", p->path);
        r = submounts_attach(s, h, false);
        if (r < 0 && submounts_restore(s, h) < 0)
                return sx_error_prefix(r, "%s: unmerged, and the merge could not be put back either", p->path);
        return r;
}

static int attach_all(const MergeContext *c, Plan *plans, size_t n) {
        Submounts subs[MAX_HIERARCHIES];
        size_t i;
        int r;

        assert(n <= MAX_HIERARCHIES);
        r = submounts_prepare(c, plans, n, false, subs);
        if (r < 0)
                return r;
        for (i = 0; i < n; i++) {
                if (plans[i].ovl_fd < 0)
                        continue;
                r = mount_attach(plans[i].ovl_fd, plans[i].h_fd, false);
                if (r < 0) {
                        r = sx_error(r, "%s: failed to attach the overlay: %m", plans[i].path);
                        break;
                }
        }
        if (r < 0)
                detach_attached(plans, i);
        for (i = 0; r >= 0 && i < n; i++) {
                r = submounts_finish_attach(&plans[i], &subs[i]);
                if (r < 0) {
                        /* Those before are complete merges: undo them whole, and this one's. */
                        for (size_t k = 0; k < i; k++) {
                                detach_attached(&plans[k], 1);
                                (void) submounts_attach(&subs[k], plans[k].h_fd, true);
                        }
                        detach_attached(plans + i + 1, n - i - 1);
                }
        }
        submounts_done_many(subs, n);
        return r;
}

static void notice_using(const MergeContext *c, Extension **exts, size_t n) {
        _cleanup_free_ char *list = NULL;

        for (size_t i = 0; i < n; i++) {
                char *j = strjoin(strempty(list), i ? ", '" : "'", exts[i]->image->name, "'");
                if (!j)
                        return;
                free(list);
                list = j;
        }
        notice(c, "Using extensions %s.", list);
}

static bool exts_want_reload(Extension **exts, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (exts[i]->reload_manager)
                        return true;
        return false;
}

/* Peel off the merges that show up beneath the one just detached from a hierarchy. */
static int unmerge_stacked(int root_fd, const Plan *p, bool *reload) {
        for (unsigned k = 0; k < MAX_STACKED_MERGES; k++) {
                _cleanup_close_ int fd = openat_beneath(root_fd, p->hierarchy + 1, O_PATH | O_DIRECTORY, true);
                json_object *meta;
                int r;

                if (fd < 0 || is_sysext_mount(fd) <= 0)
                        break;
                meta = markers_read_meta(fd);
                *reload = *reload || markers_meta_wants_reload(meta);
                if (meta)
                        json_object_put(meta);
                r = umount_fd(fd);
                if (r < 0)
                        return sx_error(r, "%s: failed to unmount a merge stacked beneath: %m", p->path);
        }
        return 0;
}

/* Detach the merge on top of the hierarchy, and any merge that shows up beneath it: a refresh
 * whose detach of the old overlay failed leaves the old one stacked on the new one, and
 * systemd-sysext's unmerge also peels every merge off. */
static int unmerge_plans(const MergeContext *c, int root_fd, Plan *plans, size_t n, bool *reload) {
        Submounts subs[MAX_HIERARCHIES];
        int r;

        assert(n <= MAX_HIERARCHIES);
        r = submounts_prepare(c, plans, n, true, subs);    /* no overlay planned: all are unmerged */
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (!plans[i].merged)
                        continue;
                *reload = *reload || markers_meta_wants_reload(plans[i].meta);
                r = umount_fd(plans[i].h_fd);
                if (r < 0) {
                        r = sx_error(r, "%s: failed to unmount: %m", plans[i].path);
                        break;
                }
                r = unmerge_stacked(root_fd, &plans[i], reload);
                if (r >= 0)
                        r = submounts_put_back(root_fd, &plans[i], &subs[i]);
                if (r < 0)
                        break;
                notice(c, "Unmerged '%s'.", plans[i].path);
                r = mutable_work_dir_remove(root_fd, plans[i].old_work_dir);
                if (r < 0)
                        return r;
        }
        submounts_done_many(subs, n);
        return r < 0 ? r : 0;
}

typedef enum RefreshStage {
        REFRESH_OLD_DETACHED,           /* unmerge and merge: the old overlay is gone */
        REFRESH_NEW_ATTACHED,           /* ... and the new one is attached in its place */
        REFRESH_NEW_BENEATH,            /* the new one is beneath the old one */
} RefreshStage;

/* A refresh whose sub-mounts are carried after the new overlay is attached (subs->deferred) failed
 * part way: detach the overlays still there, top first (a covered mount cannot be detached on its
 * own: the kernel detaches what is on top of it), and put the saved old merge back where it was. */
static int refresh_undo(int root_fd, const Plan *p, Submounts *subs, RefreshStage stage, int r) {
        _cleanup_close_ int h = -EBADF;
        int k = 0;

        if (subs->saved_fd < 0)
                return r;       /* no sub-mounts: nothing was saved (and nothing deferred) */
        if (stage == REFRESH_NEW_BENEATH)
                k = umount_fd(p->h_fd);
        if (k >= 0 && stage != REFRESH_OLD_DETACHED)
                k = umount_fd(p->ovl_fd);
        if (k >= 0) {
                h = openat_beneath(root_fd, p->hierarchy + 1, O_PATH | O_DIRECTORY, true);
                k = h < 0 ? h : submounts_restore(subs, h);
        }
        if (k < 0)
                return sx_error_prefix(r, "%s: the refresh failed, and the old merge could not be put back either", p->path);
        return r;
}

/* Without MOVE_MOUNT_BENEATH: detach the old overlay, then attach the new one where it was, and
 * carry the sub-mounts onto it if the kernel could not do that before. */
static int refresh_by_unmerge(const MergeContext *c, int root_fd, Plan *p, Submounts *subs) {
        _cleanup_close_ int under = -EBADF;
        int r;

        r = umount_fd(p->h_fd);
        if (r < 0)
                return sx_error(r, "%s: failed to unmount: %m", p->path);
        under = open(p->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (under < 0)
                return refresh_undo(root_fd, p, subs, REFRESH_OLD_DETACHED, sx_error(negative_errno(), "%s: %m", p->path));
        r = mount_attach(p->ovl_fd, under, false);
        if (r < 0)
                return refresh_undo(root_fd, p, subs, REFRESH_OLD_DETACHED,
                                    sx_error(r, "%s: failed to attach the overlay: %m", p->path));
        r = subs->deferred ? submounts_carry(subs, p->ovl_fd) : 0;
        if (r < 0)
                return refresh_undo(root_fd, p, subs, REFRESH_NEW_ATTACHED, r);
        notice(c, "Refreshed '%s' (unmerge and merge).", p->path);
        return 0;
}

/* The new overlay is beneath the old one: if that was deferred, carry the sub-mounts (clones of
 * those on the old one) onto it, where the old one hides them; detaching the old one then shows
 * both at once, as when they were carried before it was attached. */
static int refresh_beneath_finish(const MergeContext *c, int root_fd, Plan *p, Submounts *subs) {
        int r = subs->deferred ? submounts_carry(subs, p->ovl_fd) : 0;

        if (r < 0)
                return refresh_undo(root_fd, p, subs, REFRESH_NEW_BENEATH, r);
        r = umount_fd(p->h_fd);
        if (r < 0)
                return sx_error(r, "%s: new overlay attached, but the old one could not be detached: %m", p->path);
        notice(c, "Refreshed '%s' atomically.", p->path);
        return 0;
}

/* Swap one hierarchy: the new overlay goes beneath the old one, then the old one is detached, so
 * a reader never sees the hierarchy without extensions. The mounts that were on the old overlay
 * are on the new one already (submounts_prepare()), or go there while it is beneath (before Linux
 * 6.15), so this stays one step for them too. */
static int refresh_one(const MergeContext *c, int root_fd, Plan *p, Submounts *subs, bool *beneath_ok) {
        int r;

        if (p->ovl_fd < 0) {
                if (!p->merged)
                        return 0;
                r = umount_fd(p->h_fd);
                if (r < 0)
                        return sx_error(r, "%s: failed to unmount: %m", p->path);
                r = submounts_put_back(root_fd, p, subs);
                if (r < 0)
                        return r;
                notice(c, "Unmerged '%s'.", p->path);
                return 0;
        }
        if (!p->merged) {
                r = mount_attach(p->ovl_fd, p->h_fd, false);
                if (r < 0)
                        return sx_error(r, "%s: failed to attach the overlay: %m", p->path);
                r = submounts_finish_attach(p, subs);
                if (r < 0)
                        return r;
                notice(c, "Merged extensions into '%s'.", p->path);
                return 0;
        }
        if (*beneath_ok) {
                r = mount_attach(p->ovl_fd, p->h_fd, true);
                if (r >= 0)
                        return refresh_beneath_finish(c, root_fd, p, subs);
                if (r != -EINVAL && r != -ENOSYS)
                        return sx_error(r, "%s: failed to attach the overlay beneath the old one: %m", p->path);
                *beneath_ok = false;
                notice(c, "Note: the kernel cannot mount beneath (MOVE_MOUNT_BENEATH, Linux 6.5+); refreshing by unmerge and merge.");
        }
        return refresh_by_unmerge(c, root_fd, p, subs);
}

void merge_session_free(MergeSession *s) {
        if (!s)
                return;
        if (s->sole_owner)
                extension_array_dissolve_mounts(s->exts, s->n_exts);
        extension_array_free(s->exts, s->n_exts);
        skip_list_done(&s->skips);
        host_info_done(&s->host);
        idmap_free(s->owned_idmap);
        free(s->layer_idmaps);
        idmap_cache_done(&s->idmap_cache);
        safe_close(s->target_mntns);
        safe_close(s->target_root);
        if (s->inputs)
                json_object_put(s->inputs);
        free(s);
}

/* Open /proc/PID/WHAT of the --namespace-of target. */
static int target_open_proc(pid_t pid, const char *what, int flags, const char *description, int *ret_fd) {
        _cleanup_free_ char *p = NULL;
        int fd;

        if (asprintf_safe(&p, "/proc/%d/%s", (int) pid, what) < 0)
                return -ENOMEM;
        fd = open(p, flags | O_CLOEXEC);
        if (fd < 0)
                return sx_error(negative_errno(), "--namespace-of=%d: cannot open its %s: %m", (int) pid, description);
        *ret_fd = fd;
        return 0;
}

/* Unless told otherwise, the layers are idmapped into the target's user namespace, so the image's
 * root-owned files belong to the target's root. Takes userns. */
static int target_default_idmap(const MergeContext *c, MergeSession *s, int userns) {
        _cleanup_close_ int fd = userns;
        _cleanup_free_ char *spec = NULL;
        int r;

        r = namespace_is_own(fd, "user");
        if (idmap_is_auto(c->idmap) && r == 0)
                /* auto presents layers in our ids; the target would see root's files as nobody. */
                return sx_error(-EINVAL, "--idmap=auto cannot be used with --namespace-of=%d: the process is in another user namespace; leave --idmap= out to map the layers into it",
                                (int) c->namespace_of);
        if (!idmap_is_identity(c->idmap))
                return 0;
        if (r != 0)
                return 0;       /* our own (or unknown, as before): identity */
        if (asprintf_safe(&spec, "pid:%d", (int) c->namespace_of) < 0)
                return -ENOMEM;
        r = idmap_from_userns_fd(TAKE_FD(fd), spec, &s->owned_idmap);
        if (r < 0)
                return r;
        s->idmap = s->owned_idmap;
        return 0;
}

static int open_target(const MergeContext *c, MergeSession *s, char **ret_root) {
        _cleanup_close_ int pidfd = -EBADF, userns = -EBADF;
        pid_t pid = c->namespace_of;
        int r;

        /* Pin the process, open its namespaces, then check it is still the same process. */
        pidfd = sys_pidfd_open(pid, 0);
        if (pidfd < 0)
                return sx_error(negative_errno(), "--namespace-of=%d: %m", (int) pid);
        if ((r = target_open_proc(pid, "ns/mnt", O_RDONLY, "mount namespace", &s->target_mntns)) < 0 ||
            (r = target_open_proc(pid, "root", O_PATH | O_DIRECTORY, "root directory", &s->target_root)) < 0 ||
            (r = target_open_proc(pid, "ns/user", O_RDONLY, "user namespace", &userns)) < 0)
                return r;
        if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
                return sx_error(-ESRCH, "--namespace-of=%d: the process went away", (int) pid);
        r = namespace_is_own(s->target_mntns, "mnt");
        if (r < 0)
                return r;
        if (r > 0)
                return sx_error(-EINVAL, "--namespace-of=%d: the process shares our mount namespace; leave out --namespace-of",
                                (int) pid);
        r = target_default_idmap(c, s, TAKE_FD(userns));
        if (r < 0)
                return r;
        /* The target's own os-release decides compatibility. */
        return asprintf_safe(ret_root, "/proc/%d/root", (int) pid) < 0 ? -ENOMEM : 0;
}

/* A writable overlay only where root merges for root: never in a PAM session, a `run` command's
 * namespace (untrusted, stacked) or another process's namespace, whose root (and so whose
 * /var/lib/extensions.mutable) another user may control. */
static int merge_context_check_mutable(const MergeContext *c) {
        if (c->mutable_mode != MUTABLE_NO && (c->namespace_of > 0 || c->stack || c->untrusted))
                return sx_error(-EINVAL, "--mutable=%s: only for merges into the host's own mount namespace",
                                strna(mutable_mode_to_string(c->mutable_mode)));
        if (c->overlay_options)
                return overlay_options_check(c->overlay_options);
        return 0;
}

int merge_session_open(const MergeContext *c, MergeSession **ret) {
        _cleanup_(merge_session_freep) MergeSession *s = NULL;
        _cleanup_free_ char *release_root = NULL;
        int r;

        assert(c && c->hierarchies && ret);
        assert(c->images || c->n_images == 0);
        r = merge_context_check_mutable(c);
        if (r < 0)
                return r;
        s = calloc(1, sizeof(MergeSession));
        if (!s)
                return -ENOMEM;
        s->c = c;
        s->idmap = c->idmap;
        s->target_mntns = s->target_root = -EBADF;
        s->root = c->root;
        if (c->namespace_of > 0) {
                r = open_target(c, s, &release_root);
                if (r < 0)
                        return r;
        }
        if (release_root && !root_is_host(c->root)) {
                char *j = path_join_root(release_root, c->root);
                if (!j)
                        return -ENOMEM;
                free(release_root);
                release_root = j;
        }
        r = host_info_load(release_root ?: c->root, &s->host);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

/* Discover or take the named images, dissect, mount detached, check and idmap them. */
static int session_load_extensions(MergeSession *s) {
        int r;

        r = collect_extensions(s->c, &s->host, &s->exts, &s->n_exts, &s->skips);
        if (r < 0)
                return r;
        if (s->n_exts == 0)
                return 0;
        s->reload = exts_want_reload(s->exts, s->n_exts);
        return idmap_extensions(s);
}

typedef enum Verb { VERB_MERGE, VERB_REFRESH, VERB_UNMERGE } Verb;

typedef struct Phase {
        MergeSession *s;
        Verb verb;
        bool old_reload;        /* an unmerged/replaced merge asked for a reload */
        bool create_missing;    /* the merge and refresh verbs: make a missing hierarchy's mount point */
        bool skipped;           /* refresh found nothing changed (in our own namespace only) */
} Phase;

/* In a target namespace the hierarchies are found from the target's own root directory (which
 * may be a chroot), --root resolved beneath it. */
static int open_target_root(int target_root, const char *root, int *ret_fd) {
        int fd;

        if (root_is_host(root))
                fd = fcntl(target_root, F_DUPFD_CLOEXEC, 3);
        else
                fd = openat_beneath(target_root, root, O_PATH | O_DIRECTORY, true);
        if (fd < 0)
                return sx_error(fd < -1 ? fd : negative_errno(), "%s: cannot open the root in the target: %m", strempty(root));
        *ret_fd = fd;
        return 0;
}

static int phase_open_plans(Phase *ph, int *ret_root_fd, Plan **ret_plans, size_t *ret_n) {
        const MergeSession *s = ph->s;
        int r;

        if (s->target_root >= 0)
                r = open_target_root(s->target_root, s->root, ret_root_fd);
        else
                r = open_root(s->root, ret_root_fd);
        if (r < 0)
                return r;
        return plans_open(s->c->hierarchies, *ret_root_fd, ph->create_missing && ph->verb != VERB_UNMERGE, ret_plans, ret_n);
}

/* 1 if a refresh would rebuild what is merged now: every hierarchy that gets layers is merged, by
 * us, from the same inputs (markers_meta_identity_equal), and no other one is merged. */
static int refresh_unchanged(const MergeSession *s, const Plan *plans, size_t n) {
        _cleanup_(idmap_freep) Idmap *resolved = NULL;
        _cleanup_free_ const char **layer_specs = session_layer_specs(s);
        bool any = false;
        MarkersInfo m;
        int r;

        if (!layer_specs)
                return -ENOMEM;
        r = session_markers_info(s, NULL, NULL, layer_specs, &resolved, &m);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                bool wanted = plans[i].n_layers > 0;

                if (wanted != plans[i].merged)
                        return 0;
                if (!wanted)
                        continue;
                if (!markers_meta_identity_equal(plans[i].meta, &m))
                        return 0;
                any = true;
        }
        return any;
}

/* refresh (systemd v260): nothing changed → nothing done, unless --always-refresh. 1: skip. */
static int refresh_skip(Phase *ph, const Plan *plans, size_t n) {
        const MergeContext *c = ph->s->c;
        int r;

        r = refresh_unchanged(ph->s, plans, n);
        if (r <= 0) {
                if (r == 0)
                        sx_debug("Found changes based on origin entry, continuing with the refresh.");
                return r;
        }
        if (c->always_refresh) {
                notice(c, "No change found based on origin entry but continuing as requested by --always-refresh=yes.");
                return 0;
        }
        notice(c, "Skipping extension refresh because no change was found, use --always-refresh=yes to always do a refresh.");
        ph->skipped = true;
        return 1;
}

/* ---- the inputs stamp: refresh's quick check (inputs-stamp.h) ---- */

/* The quick check covers merges whose every input is in the search directories and the options:
 * discovered images, in our own namespace, read-only, not mapped through a namespace that may
 * have changed under the same name. Everything else takes the full comparison. */
static bool session_inputs_eligible(const MergeSession *s) {
        const MergeContext *c = s->c;

        return !c->images && s->target_mntns < 0 && !c->stack && c->mutable_mode == MUTABLE_NO &&
               !(s->idmap && s->idmap->kind == IDMAP_USERNS);
}

static void json_put_string(json_object *o, const char *key, const char *v) {
        if (v)
                json_object_object_add(o, key, json_object_new_string(v));
}

static json_object *session_inputs_options(const MergeSession *s) {
        const MergeContext *c = s->c;
        _cleanup_free_ char *policy = NULL, *maps = NULL;
        json_object *o = json_object_new_object();

        if (!o || (c->policy && image_policy_to_string(c->policy, true, &policy) < 0)) {
                json_object_put(o);
                return NULL;
        }
        json_put_string(o, "class", image_class_info(c->image_class)->name);
        json_put_string(o, "root", root_is_host(s->root) ? "/" : s->root);
        json_put_string(o, "idmap", session_idmap_spec(s));
        if (s->idmap && s->idmap->kind == IDMAP_MAP) {  /* user:NAME resolves through the user database */
                for (size_t i = 0; i < s->idmap->n_uid + s->idmap->n_gid; i++) {
                        const IdmapExtent *e = i < s->idmap->n_uid ? &s->idmap->uid[i] : &s->idmap->gid[i - s->idmap->n_uid];
                        char *n = NULL;
                        if (asprintf_safe(&n, "%s%c%" PRIu32 ":%" PRIu32 ":%" PRIu32, strempty(maps),
                                          i < s->idmap->n_uid ? 'u' : 'g', e->from, e->to, e->count) < 0)
                                break;
                        free(maps);
                        maps = n;
                }
                json_put_string(o, "idmapExtents", maps);
        }
        _cleanup_free_ char *h = strv_join(c->hierarchies, ":");
        json_put_string(o, "hierarchies", h);
        json_put_string(o, "policy", policy ?: "default");
        json_put_string(o, "verity", verity_mode_to_string(c->verity_mode));
        json_object_object_add(o, "force", json_object_new_boolean(c->force));
        json_object_object_add(o, "noexec", json_object_new_boolean(session_noexec(s)));
        json_object_object_add(o, "untrusted", json_object_new_boolean(c->untrusted));
        json_object_object_add(o, "skipBroken", json_object_new_boolean(c->skip_broken));
        json_put_string(o, "overlayOptions", c->overlay_options);
        json_put_string(o, "origin", c->origin);
        return o;
}

static const char * const inputs_files[] = {
        "etc/os-release", "usr/lib/os-release", "etc/initrd-release",
        "etc/verity.d", "run/verity.d", "usr/local/lib/verity.d", "usr/lib/verity.d",
        NULL,
};

/* The stamp of the inputs as they are now; NULL (no quick check) when not eligible. */
static int session_inputs_new(const MergeSession *s, json_object **ret) {
        InputsStampSources src = {
                .dirs = image_class_info(s->c->image_class)->search_dirs,
                .files = inputs_files,
        };
        json_object *options;

        *ret = NULL;
        if (!session_inputs_eligible(s))
                return 0;
        options = session_inputs_options(s);
        if (!options)
                return -ENOMEM;
        return inputs_stamp_new(s->root, &src, options, ret);
}

/* Which hierarchies this merge puts an overlay on: part of what the next refresh compares. */
static int session_inputs_add_merged(MergeSession *s, const Plan *plans, size_t n) {
        json_object *a;

        if (!s->inputs)
                return 0;
        json_object_object_del(s->inputs, "merged");
        a = json_object_new_array();
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (plans[i].n_layers > 0)
                        json_object_array_add(a, json_object_new_string(plans[i].hierarchy));
        json_object_object_add(s->inputs, "merged", a);
        return 0;
}

/* The stamp in a merge's metadata equals now, apart from the hierarchies it merged. */
static bool inputs_equal_but_merged(json_object *meta, json_object *now) {
        json_object *recorded, *copy = NULL;
        bool equal;

        if (!json_object_object_get_ex(meta, "inputs", &recorded) || json_object_deep_copy(recorded, &copy, NULL) < 0)
                return false;
        json_object_object_del(copy, "merged");
        equal = inputs_stamp_equal(copy, now);
        json_object_put(copy);
        return equal;
}

/* 1 if every hierarchy the last merge put an overlay on still carries it, no other is merged, and
 * the merge recorded the same inputs stamp as now: nothing to load, mount or compare. */
static int refresh_quick_unchanged(MergeSession *s, json_object *now) {
        _cleanup_close_ int root_fd = -EBADF;
        json_object *merged = NULL, *recorded;
        Plan *plans = NULL;
        size_t n = 0;
        int r;

        r = open_root(s->root, &root_fd);
        if (r < 0)
                return r;
        r = plans_open(s->c->hierarchies, root_fd, false, &plans, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n && !merged; i++)
                if (plans[i].merged && json_object_object_get_ex(plans[i].meta, "inputs", &recorded))
                        json_object_object_get_ex(recorded, "merged", &merged);
        r = merged ? 1 : 0;
        for (size_t i = 0; r > 0 && i < n; i++) {
                bool listed = false;
                for (size_t k = 0; k < json_object_array_length(merged); k++)
                        listed = listed || streq(strempty(json_object_get_string(json_object_array_get_idx(merged, k))),
                                                 plans[i].hierarchy);
                if (listed != plans[i].merged)
                        r = 0;
                else if (listed && !inputs_equal_but_merged(plans[i].meta, now))
                        r = 0;
        }
        plans_free(plans, n);
        return r;
}

/* Before anything is opened: the quick check of refresh (*ret_skip), and the stamp a merge records. */
static int session_inputs_prepare(MergeSession *s, Verb verb, bool *ret_skip) {
        json_object *now = NULL;
        int r;

        *ret_skip = false;
        r = session_inputs_new(s, &now);
        if (r < 0 || !now)
                return r;
        if (verb == VERB_REFRESH && !s->c->always_refresh) {
                r = refresh_quick_unchanged(s, now);
                if (r < 0) {
                        json_object_put(now);
                        return r;
                }
                *ret_skip = r > 0;
        }
        s->inputs = now;
        return 0;
}

static int phase_prepare(Phase *ph, int root_fd, Plan *plans, size_t n) {
        int r;

        for (size_t i = 0; i < n; i++) {
                r = plan_collect_layers(ph->s, &plans[i]);
                if (r < 0)
                        return r;
        }
        r = session_inputs_add_merged(ph->s, plans, n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = plan_prepare(ph->s, root_fd, &plans[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int phase_build(Phase *ph, Plan *plans, size_t n) {
        const MergeSession *s = ph->s;
        bool fallback;

        /* overlayfs checks its own mount's flags on open and exec, not the layers': what an image
         * asks for (ExtensionImages= options) or a mapping implies goes on the overlay. Device
         * nodes never work through /usr, as with systemd-sysext (MS_NODEV); setuid binaries do
         * unless a user's command runs on the overlay (run --user, --idmap=user:NAME); a confext's
         * /etc is also nosuid,noexec (the class's overlay_attrs). */
        bool untrusted = s->c->untrusted || (s->idmap && s->idmap->untrusted);
        uint64_t attrs = (image_class_info(s->c->image_class)->overlay_attrs & ~MOUNT_ATTR_NOEXEC) |
                         (untrusted ? MOUNT_ATTR_NOSUID : 0) | (session_noexec(s) ? MOUNT_ATTR_NOEXEC : 0);
        for (size_t i = 0; i < s->n_exts; i++)
                attrs |= s->exts[i]->mount_attrs[0] | s->exts[i]->mount_attrs[1];
        return plans_build_overlays(plans, n, attrs, s->c->overlay_options, image_class_info(s->c->image_class)->name,
                                    &fallback);
}

static int phase_refresh(Phase *ph, int root_fd, Plan *plans, size_t n, bool *reload) {
        const MergeContext *c = ph->s->c;
        bool beneath_ok = !TEST_HOOK(no_beneath, false);
        Submounts subs[MAX_HIERARCHIES];
        int r;

        assert(n <= MAX_HIERARCHIES);
        if (!beneath_ok)
                notice(c, "Note: MOVE_MOUNT_BENEATH disabled by SYSEXT_IDMAP_NO_BENEATH; refreshing by unmerge and merge.");
        r = submounts_prepare(c, plans, n, true, subs);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                *reload = *reload || markers_meta_wants_reload(plans[i].meta);
                r = refresh_one(c, root_fd, &plans[i], &subs[i], &beneath_ok);
                if (r < 0)
                        break;
                plans[i].live = plans[i].ovl_fd >= 0;
                /* the old merge's workdir, unless the new one works in it too */
                if (plans[i].old_work_dir && !(plans[i].mut.work_dir && streq(plans[i].mut.work_dir, plans[i].old_work_dir))) {
                        r = mutable_work_dir_remove(root_fd, plans[i].old_work_dir);
                        if (r < 0)
                                break;
                }
        }
        submounts_done_many(subs, n);
        return r < 0 ? r : 0;
}

/* The hierarchy side of a verb, in whatever mount namespace we are in now. */
static int phase_run(void *userdata, int *ret_fds, size_t max_fds) {
        Phase *ph = userdata;
        const MergeContext *c = ph->s->c;
        _cleanup_close_ int root_fd = -EBADF;
        bool reload = false;
        Plan *plans = NULL;
        size_t n = 0;
        int r;

        r = phase_open_plans(ph, &root_fd, &plans, &n);
        if (r < 0)
                return r;
        prepare_reload(ph->s, plans, n);
        if (ph->verb == VERB_UNMERGE) {
                r = unmerge_plans(c, root_fd, plans, n, &reload);
                goto finish;
        }
        for (size_t i = 0; ph->verb == VERB_MERGE && !c->stack && i < n; i++)
                if (plans[i].merged) {
                        r = sx_error(-EBUSY, "Hierarchy '%s' is already merged.", plans[i].hierarchy);
                        goto finish;
                }
        bool build = ph->s->n_exts > 0 || mutable_mode_may_write(c->mutable_mode);
        if (build) {
                r = phase_prepare(ph, root_fd, plans, n);
                if (r < 0)
                        goto finish;
        }
        if (ph->verb == VERB_REFRESH) {
                r = refresh_skip(ph, plans, n);
                if (r != 0)
                        goto finish;
        }
        if (build) {
                r = phase_build(ph, plans, n);
                if (r >= 0)
                        r = plans_protect_markers(ph->s, plans, n, false);
                if (r < 0)
                        goto finish;
        }
        r = plans_create_missing(root_fd, plans, n);
        if (r < 0)
                goto finish;
        if (ph->verb == VERB_MERGE) {
                r = attach_all(c, plans, n);
                for (size_t i = 0; r >= 0 && i < n; i++)
                        plans[i].live = plans[i].ovl_fd >= 0;
                if (r >= 0)
                        r = plans_protect_markers(ph->s, plans, n, true);
                for (size_t i = 0; r >= 0 && i < n; i++)
                        if (plans[i].ovl_fd >= 0)
                                notice(c, "Merged extensions into '%s'.", plans[i].path);
                goto finish;
        }
        r = phase_refresh(ph, root_fd, plans, n, &reload);
        if (r >= 0)
                r = plans_protect_markers(ph->s, plans, n, true);
finish:
        if (r < 0)
                plans_remove_created(root_fd, plans, n);
        ph->old_reload = reload;
        plans_free(plans, n);
        return r < 0 ? r : 0;
}

int merge_session_apply_here(MergeSession *s) {
        Phase ph = { .s = s, .verb = VERB_MERGE };

        assert(s);
        return phase_run(&ph, NULL, 0);
}

void merge_session_dissolve_mounts(MergeSession *s) {
        assert(s);
        extension_array_dissolve_mounts(s->exts, s->n_exts);
}

int merge_session_load(MergeSession *s) {
        assert(s);
        return session_load_extensions(s);
}

size_t merge_session_n_extensions(const MergeSession *s) {
        assert(s);
        return s->n_exts;
}

static int refuse_merged(const MergeContext *c) {
        HierarchyStatus *st = NULL;
        size_t n = 0;
        int r;

        r = status_hierarchies(c, &st, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (st[i].merged) {
                        r = sx_error(-EBUSY, "Hierarchy '%s' is already merged.", st[i].hierarchy);
                        break;
                }
        hierarchy_status_free_many(st, n);
        return r < 0 ? r : 0;
}

static int run_verb(const MergeContext *c, Verb verb) {
        _cleanup_(merge_session_freep) MergeSession *s = NULL;
        _cleanup_close_ int lock = -EBADF;
        Phase ph = { .verb = verb, .create_missing = true };
        int r;

        assert(c);
        r = lock_take(&lock);
        if (r < 0)
                return r;
        r = merge_session_open(c, &s);
        if (r < 0)
                return r;
        s->sole_owner = true;   /* the phase's children (run_in_mntns()) are gone before it is freed */
        ph.s = s;
        if (verb == VERB_MERGE) {
                /* Refuse early, before any image is opened, as systemd-sysext does. */
                r = refuse_merged(c);
                if (r < 0)
                        return r;
        }
        if (verb != VERB_UNMERGE) {
                bool skip;

                r = session_inputs_prepare(s, verb, &skip);
                if (r < 0)
                        return r;
                if (skip) {
                        notice(c, "Skipping extension refresh because no change was found, use --always-refresh=yes to always do a refresh.");
                        return 0;
                }
                r = session_load_extensions(s);
                if (r < 0)
                        return r;
                if (s->n_exts == 0 && s->skips.n_broken > 0)
                        /* Nothing left, and not for want of images: fail (as systemd-sysext does for
                         * any broken image), leaving the hierarchies as they are. */
                        return sx_error(s->skips.last_error, "No extensions merged: %zu discovered image%s could not be used.",
                                        s->skips.n_broken, s->skips.n_broken == 1 ? "" : "s");
                if (s->n_exts > 0)
                        notice_using(c, s->exts, s->n_exts);
                else if (mutable_mode_may_write(c->mutable_mode))
                        notice(c, "No extensions found, proceeding in mutable mode.");
                else
                        notice(c, "No suitable extensions found.");
                if (s->n_exts == 0 && verb == VERB_MERGE && !mutable_mode_may_write(c->mutable_mode))
                        return 0;
        }
        if (s->target_mntns >= 0)
                r = run_in_mntns(s->target_mntns, 0, phase_run, &ph, NULL, 0);
        else
                r = phase_run(&ph, NULL, 0);
        if (r < 0)
                return r;
        if (!ph.skipped)
                maybe_reload(s, ph.old_reload || s->reload);
        return 0;
}

int merge_extensions(const MergeContext *c) {
        return run_verb(c, VERB_MERGE);
}

int unmerge_extensions(const MergeContext *c) {
        return run_verb(c, VERB_UNMERGE);
}

int refresh_extensions(const MergeContext *c) {
        return run_verb(c, VERB_REFRESH);
}

/* ---- status ---- */

static int status_one(Plan *p, HierarchyStatus *s) {
        struct stat st;
        int r;

        s->hierarchy = strdup(p->hierarchy);
        s->path = strdup(p->path);
        if (!s->hierarchy || !s->path)
                return -ENOMEM;
        s->merged = p->merged;
        if (!p->merged)
                return 0;
        if (fstat(p->h_fd, &st) >= 0 && asprintf_safe(&s->device, "%u:%u", major(st.st_dev), minor(st.st_dev)) < 0)
                return -ENOMEM;
        r = markers_read_names(p->h_fd, &s->extensions);
        if (r == -ENOMEM)
                return r;
        if (!p->meta) {
                s->since_usec = markers_since_usec(p->h_fd);
                return 0;
        }
        s->ours = true;
        s->idmap = markers_meta_string(p->meta, "idmap");
        s->since_usec = markers_meta_since_usec(p->meta);
        r = markers_meta_skipped(p->meta, &s->skipped, &s->n_skipped);
        if (r < 0)
                return r;
        return markers_meta_layers(p->meta, &s->layers, &s->n_layers);
}

void hierarchy_status_free_many(HierarchyStatus *s, size_t n) {
        for (size_t i = 0; s && i < n; i++) {
                free(s[i].hierarchy);
                free(s[i].path);
                strv_free(s[i].extensions);
                free(s[i].idmap);
                free(s[i].device);
                for (size_t k = 0; k < s[i].n_layers; k++)
                        layer_status_done(&s[i].layers[k]);
                free(s[i].layers);
                skipped_images_free(s[i].skipped, s[i].n_skipped);
        }
        free(s);
}

typedef struct TargetOpen {
        const char *hierarchy;
        const char *root;
        int target_root;
} TargetOpen;

static int open_hierarchy_in_child(void *userdata, int *ret_fds, size_t max_fds) {
        TargetOpen *t = userdata;
        _cleanup_close_ int root_fd = -EBADF;
        int fd, r;

        r = open_target_root(t->target_root, t->root, &root_fd);
        if (r < 0)
                return r;
        fd = open_hierarchy_at(root_fd, t->hierarchy);
        if (fd == -ENOENT)
                return 0;
        if (fd < 0)
                return fd;
        ret_fds[0] = fd;
        return 1;
}

typedef struct TargetOpener {
        int mntns;
        int target_root;
        const char *root;
} TargetOpener;

static int open_hierarchy_in_target(const char *hierarchy, void *userdata) {
        TargetOpener *o = userdata;
        TargetOpen t = { .hierarchy = hierarchy, .root = o->root, .target_root = o->target_root };
        int fd = -EBADF, r;

        r = run_in_mntns(o->mntns, 0, open_hierarchy_in_child, &t, &fd, 1);
        if (r < 0)
                return r;
        return r == 0 ? -ENOENT : fd;
}

static int status_open_plans(const MergeContext *c, MergeSession **session, int *root_fd, Plan **ret, size_t *ret_n) {
        int r;

        if (c->namespace_of <= 0) {
                r = open_root(c->root, root_fd);
                if (r < 0)
                        return r;
                return plans_open(c->hierarchies, *root_fd, false, ret, ret_n);
        }
        r = merge_session_open(c, session);
        if (r < 0)
                return r;
        TargetOpener o = { .mntns = (*session)->target_mntns, .target_root = (*session)->target_root, .root = (*session)->root };
        return plans_open_with(c->hierarchies, open_hierarchy_in_target, &o, NULL, ret, ret_n);
}

int status_hierarchies(const MergeContext *c, HierarchyStatus **ret, size_t *ret_n) {
        _cleanup_(merge_session_freep) MergeSession *session = NULL;
        _cleanup_close_ int root_fd = -EBADF;
        HierarchyStatus *s;
        Plan *plans = NULL;
        size_t n = 0;
        int r;

        assert(c && c->hierarchies && ret && ret_n);
        r = status_open_plans(c, &session, &root_fd, &plans, &n);
        if (r < 0)
                return r;
        s = calloc(n + 1, sizeof(HierarchyStatus));
        if (!s) {
                plans_free(plans, n);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                r = status_one(&plans[i], &s[i]);
                if (r < 0) {
                        hierarchy_status_free_many(s, n);
                        plans_free(plans, n);
                        return r;
                }
        }
        plans_free(plans, n);
        *ret = s;
        *ret_n = n;
        return 0;
}
