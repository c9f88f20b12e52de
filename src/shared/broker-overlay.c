/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>

#include "broker-internal.h"
#include "extension-release.h"
#include "image-class.h"
#include "mountapi.h"
#include "overlay.h"

/* One extension of the overlay: its plain mounts (root, usr) and name. */
typedef struct OverlayExt {
        Extension *e;
        int plain[2];
        bool trusted;
} OverlayExt;

typedef struct OverlayWork {
        const BrokerConfig *cfg;
        const BrokerCaller *who;
        BrokerLayerStore *store;
        const char *caller_policy;
        OverlayExt *exts;
        size_t n_exts;
        BrokerOverlayResult *res;
} OverlayWork;

void broker_overlay_result_done(BrokerOverlayResult *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n_hierarchies; i++) {
                BrokerHierarchy *h = &r->hierarchies[i];
                for (size_t j = 0; j < h->n_layer_fds; j++)
                        safe_close(h->layer_fds[j]);
                free(h->layer_fds);
                safe_close(h->overlay_fd);
                free(h->hierarchy);
        }
        free(r->hierarchies);
        strv_free(r->extensions);
        strv_free(r->trust);
        strv_free(r->skipped);
        strv_free(r->skipped_reason);
        for (size_t i = 0; i < r->n_new; i++)
                safe_close(r->new_pinned_fds[i]);
        strv_free(r->new_keys);
        free(r->new_pinned_fds);
        *r = (BrokerOverlayResult) {};
}

static void work_done(OverlayWork *w) {
        for (size_t i = 0; i < w->n_exts; i++) {
                extension_free(w->exts[i].e);
                safe_close(w->exts[i].plain[0]);
                safe_close(w->exts[i].plain[1]);
        }
        free(w->exts);
}

static int skip_add(BrokerOverlayResult *res, const char *name, const char *reason) {
        int r = strv_extend(&res->skipped, name);
        return r < 0 ? r : strv_extend(&res->skipped_reason, reason);
}

static int new_add(BrokerOverlayResult *res, const char *key, int *fd) {
        int *nv = reallocarray(res->new_pinned_fds, res->n_new + 1, sizeof(int));
        int r;

        if (!nv)
                return -ENOMEM;
        res->new_pinned_fds = nv;
        r = strv_extend(&res->new_keys, key);
        if (r < 0)
                return r;
        res->new_pinned_fds[res->n_new++] = TAKE_FD(*fd);
        return 0;
}

/* The new superblocks go into the store (a dup) and to the caller (for the store's owner). */
static int record_new(OverlayWork *w, int plain, char *key) {
        _cleanup_close_ int a = -EBADF, b = -EBADF;
        int r;

        if (!key)
                return 0;
        a = fcntl(plain, F_DUPFD_CLOEXEC, 3);
        if (a < 0)
                return negative_errno();
        if (w->store) {
                b = fcntl(plain, F_DUPFD_CLOEXEC, 3);
                if (b < 0 || (r = broker_store_insert(w->store, key, TAKE_FD(b))) < 0)
                        return b < 0 ? negative_errno() : r;
        }
        return new_add(w->res, key, &a);
}

/* Compatibility with the host, for discovered extensions (as merge checks it). */
static int ext_compatible(OverlayExt *x, const HostInfo *host, char **ret_reason) {
        _cleanup_(release_file_freep) ReleaseFile *rel = NULL;
        bool usr_only = x->plain[PARTITION_USR] >= 0;
        int r;

        r = extension_release_load(usr_only ? x->plain[PARTITION_USR] : x->plain[PARTITION_ROOT], usr_only,
                                   IMAGE_CLASS_SYSEXT, x->e->image->name, &rel, NULL);
        if (r < 0)
                return asprintf_safe(ret_reason, "%s", strna(sx_last_error())) < 0 ? -ENOMEM : 0;
        return extension_release_check(IMAGE_CLASS_SYSEXT, x->e->image->name, rel, host->release, host->scope, ret_reason);
}

static int ext_push(OverlayWork *w, OverlayExt *x) {
        OverlayExt *nv = reallocarray(w->exts, w->n_exts + 1, sizeof(OverlayExt));

        if (!nv)
                return -ENOMEM;
        w->exts = nv;
        w->exts[w->n_exts++] = *x;
        *x = (OverlayExt) { .plain = { -EBADF, -EBADF } };
        return 0;
}

/* Open, judge and mount one image; host != NULL: a discovered one, skipped if incompatible. */
static int add_image(OverlayWork *w, const BrokerCaller *who, int fd, const HostInfo *host) {
        OverlayExt x = { .plain = { -EBADF, -EBADF } };
        _cleanup_free_ char *reason = NULL;
        char *keys[2] = {};
        bool is_new[2] = {};
        struct stat st;
        int r;

        r = broker_extension_open(w->cfg, who, fd, w->caller_policy, &x.e, &x.trusted, NULL, NULL);
        if (r >= 0 && fstat(fd, &st) < 0)
                r = negative_errno();
        if (r >= 0)
                r = broker_extension_mount(x.e, w->cfg, x.trusted, &st, w->store, x.plain, is_new, keys);
        for (int d = 0; d < 2; d++) {
                if (r >= 0 && is_new[d])
                        r = record_new(w, x.plain[d], keys[d]);
                free(keys[d]);
        }
        if (r >= 0 && host)
                r = ext_compatible(&x, host, &reason);
        else if (r >= 0)
                r = 1;
        if (r == 0)
                r = skip_add(w->res, x.e->image->name, strna(reason));
        else if (r > 0)
                r = ext_push(w, &x);
        extension_free(x.e);
        safe_close(x.plain[0]);
        safe_close(x.plain[1]);
        return r < 0 ? r : 0;
}

/* The host's trusted extensions, as discovery finds them under cfg->root; others are skipped. */
static int add_discovered(OverlayWork *w) {
        static const BrokerCaller daemon_self = { .uid = 0, .gid = 0, .pidfd = -EBADF };
        _cleanup_(host_info_done) HostInfo host = {};
        Image **l = NULL;
        size_t n = 0;
        int r;

        r = host_info_load(w->cfg->root, &host);
        if (r >= 0)
                r = image_discover(w->cfg->root, &l, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *why = NULL;
                _cleanup_close_ int fd = -EBADF;
                struct stat st;
                if (l[i]->masked || l[i]->type == IMAGE_DIRECTORY)
                        continue;       /* directories: not served by the broker (yet) */
                fd = open(l[i]->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                if (fd < 0 || fstat(fd, &st) < 0) {
                        r = skip_add(w->res, l[i]->name, "cannot be opened");
                        continue;
                }
                r = broker_image_fd_trusted(w->cfg->root, fd, &st, NULL, &why);
                if (r == 0)
                        r = skip_add(w->res, l[i]->name, strna(why));
                else if (r > 0 && (r = add_image(w, &daemon_self, fd, &host)) < 0 && r != -ENOMEM)
                        r = skip_add(w->res, l[i]->name, strna(sx_last_error()));
        }
        image_array_free(l, n);
        return r;
}

static bool hierarchy_is_valid(const char *h) {
        return h && (streq(h, "/usr") || streq(h, "/opt"));
}

/* The layer of hierarchy h in x: a clone of that subtree, idmapped. 0 and -EBADF: x has none. */
static int ext_layer(const OverlayExt *x, const char *h, const BrokerTarget *t, int *ret_fd) {
        const char *rest = startswith_ptr(h, "/usr");
        bool in_usr = x->plain[PARTITION_USR] >= 0 && rest && (*rest == 0 || *rest == '/');
        int mnt = in_usr ? x->plain[PARTITION_USR] : x->plain[PARTITION_ROOT];
        const char *sub = in_usr ? rest + (*rest == '/') : h + 1;
        int r;

        *ret_fd = -EBADF;
        if (mnt < 0)
                return 0;
        r = broker_clone_for_target_sub(mnt, sub, t, false, ret_fd);
        if (r == -ENOENT)
                return 0;
        return r < 0 ? sx_error_prefix(r, "%s: %s", x->e->image->name, h) : 0;
}

/* Optionally the finished overlay: the layers over the host's hierarchy (its base, under root). */
static int hierarchy_overlay(const OverlayWork *w, const BrokerTarget *t, BrokerHierarchy *bh) {
        _cleanup_free_ char *path = path_join_root(w->cfg->root, bh->hierarchy);
        _cleanup_free_ Layer *layers = calloc(bh->n_layer_fds + 1, sizeof(Layer));
        _cleanup_close_ int base_mapped = -EBADF;
        int r;

        if (!path || !layers)
                return -ENOMEM;
        /* Our own fresh clone (from a helper's namespace, which open_tree() cannot clone again): set
         * its attributes in place. */
        r = hierarchy_open_base(path, &base_mapped);
        if (r >= 0)
                r = mount_make_idmapped(base_mapped, broker_target_userns_fd(t), MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID, path, NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < bh->n_layer_fds; i++)
                layers[i] = (Layer) { .mnt_fd = bh->layer_fds[i], .subdir = (char *) "", .dir_fd = bh->layer_fds[i] };
        layers[bh->n_layer_fds] = (Layer) { .mnt_fd = base_mapped, .subdir = (char *) "", .dir_fd = base_mapped };
        OverlaySpec spec = {
                .hierarchy = bh->hierarchy,
                .mount_attrs = MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID,
                .layers = layers,
                .n_layers = bh->n_layer_fds + 1,
                .upper = { .mnt_fd = -EBADF, .dir_fd = -EBADF },
                .work = { .mnt_fd = -EBADF, .dir_fd = -EBADF },
        };
        bool fallback = false;
        return overlays_make(&spec, 1, &bh->overlay_fd, &fallback);
}

static int build_hierarchy(OverlayWork *w, const BrokerTarget *t, const char *h, bool want_overlay, BrokerHierarchy *bh) {
        int r;

        *bh = (BrokerHierarchy) { .overlay_fd = -EBADF, .hierarchy = strdup(h) };
        bh->layer_fds = calloc(w->n_exts + 1, sizeof(int));
        if (!bh->hierarchy || !bh->layer_fds)
                return -ENOMEM;
        for (size_t i = w->n_exts; i > 0; i--) {        /* top (last merged) first */
                int fd;
                r = ext_layer(&w->exts[i - 1], h, t, &fd);
                if (r < 0)
                        return r;
                if (fd >= 0)
                        bh->layer_fds[bh->n_layer_fds++] = fd;
        }
        if (want_overlay && bh->n_layer_fds > 0 && hierarchy_overlay(w, t, bh) < 0) {
                sx_debug("no overlay for %s: %s", h, strna(sx_last_error()));
                bh->overlay_fd = safe_close(bh->overlay_fd);
                sx_clear_error();       /* no overlay: the caller builds its own from the layers */
        }
        return 0;
}

static int overlay_result_fill(OverlayWork *w, const BrokerTarget *t, char * const *hierarchies, bool want_overlay) {
        BrokerOverlayResult *res = w->res;
        size_t n = strv_length(hierarchies);
        int r;

        res->hierarchies = calloc(n, sizeof(BrokerHierarchy));
        if (!res->hierarchies)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = build_hierarchy(w, t, hierarchies[i], want_overlay, &res->hierarchies[i]);
                res->n_hierarchies++;
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < w->n_exts; i++)
                if ((r = strv_extend(&res->extensions, w->exts[i].e->image->name)) < 0 ||
                    (r = strv_extend(&res->trust, extension_trust_summary(w->exts[i].e))) < 0)
                        return r;
        return 0;
}

int broker_mount_overlay(const BrokerConfig *cfg, const BrokerCaller *who, BrokerTarget *target,
                         const int *image_fds, size_t n_image_fds, char * const *hierarchies,
                         const char *caller_policy, bool want_overlay, BrokerLayerStore *store,
                         BrokerOverlayResult *ret) {
        static char *default_hierarchies[] = { (char *) "/usr", (char *) "/opt", NULL };
        _cleanup_(broker_overlay_result_done) BrokerOverlayResult res = {};
        OverlayWork w = { .cfg = cfg, .who = who, .store = store, .caller_policy = caller_policy, .res = &res };
        int r = 0;

        assert(cfg && who && ret);
        if (!target && who->uid != 0)
                return sx_error(-EACCES, "without a user namespace only root may mount");
        hierarchies = hierarchies ?: default_hierarchies;
        STRV_FOREACH(h, hierarchies)
                if (!hierarchy_is_valid(*h))
                        return sx_error(-EINVAL, "hierarchy %s: only /usr and /opt can be merged", *h);
        if (n_image_fds == 0)
                r = add_discovered(&w);
        for (size_t i = 0; r >= 0 && i < n_image_fds; i++)
                r = add_image(&w, who, image_fds[i], NULL);
        if (r >= 0)
                r = overlay_result_fill(&w, target, hierarchies, want_overlay);
        work_done(&w);
        if (r < 0)
                return r;
        *ret = res;
        res = (BrokerOverlayResult) {};
        return 0;
}
