/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* pam_sysext_idmap: per-session extensions for a user. On open_session the session gets a mount
 * namespace of its own, and /usr and /opt are merged there from the system's extensions for users
 * and the user's own, every layer idmapped the systemd-homed way (on-disk nobody appears as the
 * user; every other id, root included, stays unmapped).
 *
 * The PAM application (sshd, login, su) and every later session module keep running as root in
 * that namespace, so it gets trusted layers only: images on a path only root can change, or images
 * signed by a trusted certificate whose bytes cannot change after the check. Anything else is left
 * out with one log line; the login never fails because of extensions. The module reads no
 * environment variable: in su it is the user's.
 *
 * When the broker sysext-idmapd runs (broker=, default its usual socket), the trusted system
 * images' partitions come from its layer store (layer-provider.h): every session shares one
 * superblock per image, each idmapped to its own user. */

#include <assert.h>
#include <pwd.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <security/pam_modutil.h>
#include <sys/mount.h>
#include <syslog.h>

#include "broker-client.h"
#include "extension.h"
#include "image.h"
#include "markers.h"
#include "merge.h"
#include "namespace.h"
#include "util.h"

#define PAM_EXPORT __attribute__((visibility("default")))
#define DATA_MERGED "pam_sysext_idmap.merged"

#define DEFAULT_SYSTEM_DIR "/var/lib/sysext-idmap/user-extensions"
#define DEFAULT_USER_DIR ".local/share/extensions"
#define DEFAULT_HIERARCHIES "/usr:/opt"
/* A signed image a user may write is served from a private copy when there is no dm-verity. */
#define DEFAULT_COPY_LIMIT (UINT64_C(256) * 1024 * 1024)
#define ORIGIN "pam_sysext_idmap"       /* recorded in the merge's metadata: close_session detaches only these */

typedef struct Options {
        const char *system_dir;         /* absolute; "" disables */
        const char *user_dir;           /* relative to the home directory; "" disables */
        const char *image_policy;
        const char *verity;
        const char *hierarchies;
        const char *broker;             /* the broker's socket, NULL = none (broker=no) */
        uint64_t copy_limit;
        bool debug;
} Options;

static void log_notice_cb(const char *m, void *userdata) {
        pam_handle_t *pamh = userdata;

        assert(pamh);
        pam_syslog(pamh, LOG_WARNING, "%s", m);
}

static int parse_options(pam_handle_t *pamh, int argc, const char **argv, Options *o) {
        *o = (Options) {
                .system_dir = DEFAULT_SYSTEM_DIR,
                .user_dir = DEFAULT_USER_DIR,
                .hierarchies = DEFAULT_HIERARCHIES,
                .broker = BROKER_SOCKET_DEFAULT,
                .copy_limit = DEFAULT_COPY_LIMIT,
        };
        for (int i = 0; i < argc; i++) {
                const char *v;
                if (streq(argv[i], "debug"))
                        o->debug = true;
                else if ((v = startswith_ptr(argv[i], "system_dir=")))
                        o->system_dir = v;
                else if ((v = startswith_ptr(argv[i], "user_dir=")))
                        o->user_dir = v;
                else if ((v = startswith_ptr(argv[i], "image_policy=")))
                        o->image_policy = v;
                else if ((v = startswith_ptr(argv[i], "verity=")))
                        o->verity = v;
                else if ((v = startswith_ptr(argv[i], "hierarchies=")))
                        o->hierarchies = v;
                else if ((v = startswith_ptr(argv[i], "broker=")))
                        o->broker = streq(v, "no") ? NULL : v;
                else if ((v = startswith_ptr(argv[i], "copy_limit="))) {
                        if (parse_size(v, &o->copy_limit) < 0) {
                                pam_syslog(pamh, LOG_ERR, "copy_limit=%s is not a size", v);
                                return -EINVAL;
                        }
                } else {
                        pam_syslog(pamh, LOG_ERR, "unknown option '%s'", argv[i]);
                        return -EINVAL;
                }
        }
        if (!isempty(o->system_dir) && !path_is_absolute(o->system_dir)) {
                pam_syslog(pamh, LOG_ERR, "system_dir=%s is not absolute", o->system_dir);
                return -EINVAL;
        }
        if (o->broker && !path_is_absolute(o->broker)) {
                pam_syslog(pamh, LOG_ERR, "broker=%s is neither an absolute path nor 'no'", o->broker);
                return -EINVAL;
        }
        if (!isempty(o->user_dir) && (path_is_absolute(o->user_dir) || strstr(o->user_dir, ".."))) {
                pam_syslog(pamh, LOG_ERR, "user_dir=%s must be relative to the home directory", o->user_dir);
                return -EINVAL;
        }
        return 0;
}

typedef struct Found {
        ImageSource *sources;           /* path and user_controlled_why are owned copies */
        size_t n;
} Found;

static void found_done(Found *f) {
        for (size_t i = 0; i < f->n; i++) {
                free((char *) f->sources[i].path);
                free((char *) f->sources[i].user_controlled_why);
        }
        free(f->sources);
}

/* why: who else may change the image, for messages if it is user controlled. */
static int found_add(Found *f, const Image *img, ImageSource src, const char *why) {
        ImageSource *s = reallocarray(f->sources, f->n + 1, sizeof(ImageSource));

        if (!s)
                return -ENOMEM;
        f->sources = s;
        src.path = strdup(img->path);
        src.user_controlled_why = src.user_controlled ? strdup(strempty(why)) : NULL;
        if (!src.path || (src.user_controlled && !src.user_controlled_why)) {
                free((char *) src.path);
                free((char *) src.user_controlled_why);
                return -ENOMEM;
        }
        f->sources[f->n++] = src;
        return 0;
}

static int find_system_images(pam_handle_t *pamh, const Options *o, Found *f) {
        const char *dirs[] = { o->system_dir + 1, NULL };
        Image **l = NULL;
        size_t n = 0;
        int r;

        r = image_discover_in("/", dirs, &l, &n);
        if (r < 0)
                pam_syslog(pamh, LOG_WARNING, "%s", strna(sx_last_error()));
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *why = NULL;
                if (l[i]->masked)
                        continue;
                /* Trusted as the administrator's, or else signed only, like a user's. */
                r = image_is_root_controlled(l[i], o->system_dir, &why);
                if (r >= 0)
                        r = found_add(f, l[i], (ImageSource) { .user_controlled = r == 0 }, why);
        }
        image_array_free(l, n);
        return r == -ENOMEM ? r : 0;
}

static int find_user_images(pam_handle_t *pamh, const Options *o, const struct passwd *pw, Found *f) {
        const char *dirs[] = { o->user_dir, NULL };
        Image **l = NULL;
        size_t n = 0;
        int r;

        FsIds saved = fsids_switch(true, pw->pw_uid, pw->pw_gid);
        /* The home directory is the root of this search: no symlink leads out of it. */
        r = image_discover_in(pw->pw_dir, dirs, &l, &n);
        fsids_restore(&saved);
        if (r < 0 && r != -ENOENT)
                pam_syslog(pamh, LOG_WARNING, "%s", strna(sx_last_error()));
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (!l[i]->masked)
                        r = found_add(f, l[i], (ImageSource) {
                                .open_as_user = true, .uid = pw->pw_uid, .gid = pw->pw_gid, .user_controlled = true,
                        }, "it lies in the user's home directory");
        image_array_free(l, n);
        return r == -ENOMEM ? r : 0;
}

static int find_images(pam_handle_t *pamh, const Options *o, const struct passwd *pw, Found *f) {
        int r = 0;

        if (!isempty(o->system_dir))
                r = find_system_images(pamh, o, f);
        if (r >= 0 && !isempty(o->user_dir) && !isempty(pw->pw_dir))
                r = find_user_images(pamh, o, pw, f);
        return r;
}

static int session_merge(pam_handle_t *pamh, const Options *o, const struct passwd *pw, Found *f) {
        _cleanup_(merge_session_freep) MergeSession *s = NULL;
        _cleanup_(idmap_freep) Idmap *idmap = NULL;
        _cleanup_(image_policy_freep) ImagePolicy *policy = NULL;
        _cleanup_strv_free_ char **hierarchies = NULL;
        _cleanup_free_ char *spec = strjoin("user:", pw->pw_name);
        VerityMode mode = VERITY_MODE_AUTO;
        int r;

        if (!spec)
                return -ENOMEM;
        if ((r = idmap_parse(spec, &idmap)) < 0 || (r = hierarchies_parse(o->hierarchies, "hierarchies=", &hierarchies)) < 0 ||
            (o->image_policy && (r = image_policy_from_string(o->image_policy, &policy)) < 0))
                return r;
        /* Every layer that gets this far is trusted (ImageSource.user_controlled makes the library
         * refuse the others), so the session keeps setuid like the host's /usr. */
        idmap->untrusted = false;
        if (o->verity && (mode = verity_mode_from_string(o->verity)) < 0)
                return sx_error(-EINVAL, "verity=%s: unknown mode", o->verity);
        MergeContext c = {
                .hierarchies = hierarchies,
                .idmap = idmap,
                .images = f->sources,
                .n_images = f->n,
                .skip_broken = true,
                .no_reload = true,
                .stack = true,
                .policy = policy,
                .verity_mode = mode,
                .origin = ORIGIN,
                .notice = log_notice_cb,
                .notice_userdata = pamh,
                .private_copy_max = o->copy_limit,
                /* Trusted system images from the broker's layer store when it runs: one loop device
                 * and superblock per image for all sessions. Nobody there: mounted here. */
                .broker = o->broker,
        };
        r = merge_session_open(&c, &s);
        if (r >= 0)
                r = merge_session_load(s);
        if (r < 0)
                return r;
        if (merge_session_n_extensions(s) == 0)
                return 0;
        /* From here on the session has a mount namespace of its own, as with pam_namespace; the
         * host's mounts still propagate in. */
        r = namespace_new_mount(NAMESPACE_SLAVE);
        if (r < 0)
                return sx_error_prefix(r, "the session");
        r = merge_session_apply_here(s);
        if (r < 0)
                return r;
        merge_session_dissolve_mounts(s);       /* the overlays hold the layers; no child has them */
        if (o->debug)
                pam_syslog(pamh, LOG_DEBUG, "merged %zu extension(s) for %s", merge_session_n_extensions(s), pw->pw_name);
        return 1;
}

PAM_EXPORT int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
        _cleanup_(found_done) Found f = {};
        const struct passwd *pw;
        const char *user = NULL;
        Options o;
        int r;

        if (parse_options(pamh, argc, argv, &o) < 0)
                return PAM_SUCCESS;     /* misconfiguration is logged; never block a login */
        if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || isempty(user))
                return PAM_SUCCESS;
        pw = pam_modutil_getpwnam(pamh, user);
        if (!pw || pw->pw_uid == 0)
                return PAM_SUCCESS;     /* root keeps the host's /usr */
        sx_debug_enabled = o.debug;
        sx_clear_error();
        r = find_images(pamh, &o, pw, &f);
        if (r >= 0 && f.n > 0)
                r = session_merge(pamh, &o, pw, &f);
        if (r < 0)
                pam_syslog(pamh, LOG_ERR, "extensions for %s left out: %s", user, sx_last_error() ?: strerror(-r));
        else if (r > 0)
                (void) pam_set_data(pamh, DATA_MERGED, (void *) 1, NULL);
        return PAM_SUCCESS;
}

PAM_EXPORT int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
        const void *merged = NULL;
        _cleanup_strv_free_ char **hierarchies = NULL;
        Options o;

        if (pam_get_data(pamh, DATA_MERGED, &merged) != PAM_SUCCESS || !merged)
                return PAM_SUCCESS;
        if (parse_options(pamh, argc, argv, &o) < 0 || hierarchies_parse(o.hierarchies, "hierarchies=", &hierarchies) < 0)
                return PAM_SUCCESS;
        /* Detach what open_session attached in this (the session's) namespace; loop devices go
         * with the last user of the layers. */
        STRV_FOREACH(h, hierarchies) {
                _cleanup_close_ int fd = open(*h, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (fd >= 0 && is_origin_mount(fd, ORIGIN) > 0 && umount2(*h, MNT_DETACH) < 0)
                        pam_syslog(pamh, LOG_WARNING, "cannot unmount %s: %m", *h);
        }
        (void) pam_set_data(pamh, DATA_MERGED, NULL, NULL);
        return PAM_SUCCESS;
}
