/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <json-c/json.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "broker-client.h"
#include "merge-broker.h"
#include "mountapi.h"
#include "overlay.h"
#include "varlink.h"

#define BROKER_CALL_TIMEOUT_MS (300 * 1000)     /* one call may verify a large image in userspace */
/* MountImage serves root front ends, a login among them, which falls back to mounting the image
 * itself: the broker mounts one image (the kernel checks verity) in well under a second, and one
 * that has not answered in this long is wedged, not busy. Also the bound for connecting. */
#define BROKER_IMAGE_TIMEOUT_MS (10 * 1000)
#define BROKER_FDS_MAX 250                      /* images + namespace in one message (SCM_MAX_FD 253) */
#define HIERARCHIES_MAX 16

void broker_client_layers_done(BrokerClientLayers *l) {
        if (!l)
                return;
        for (size_t i = 0; i < l->n_hierarchies; i++) {
                free(l->hierarchies[i].path);
                for (size_t j = 0; j < l->hierarchies[i].n_layer_fds; j++)
                        safe_close(l->hierarchies[i].layer_fds[j]);
                free(l->hierarchies[i].layer_fds);
                safe_close(l->hierarchies[i].overlay_fd);
        }
        free(l->hierarchies);
        strv_free(l->extensions);
        strv_free(l->trust);
        strv_free(l->skipped);
        strv_free(l->skipped_reason);
        *l = (BrokerClientLayers) {};
}

int broker_socket_exists(const char *path) {
        struct stat st;

        return stat(path, &st) >= 0 && S_ISSOCK(st.st_mode);
}

static struct json_object *index_array(size_t first, size_t n) {
        struct json_object *a = json_object_new_array();

        for (size_t i = 0; a && i < n; i++)
                json_object_array_add(a, json_object_new_int64((int64_t) (first + i)));
        return a;
}

static struct json_object *overlay_request(size_t n_images, bool with_userns, char * const *hierarchies,
                                           const char *policy, bool want_overlay) {
        struct json_object *p = json_object_new_object();

        if (!p)
                return NULL;
        if (n_images > 0)
                json_object_object_add(p, "imageFileDescriptors", index_array(0, n_images));
        if (with_userns)
                json_object_object_add(p, "userNamespaceFileDescriptor", json_object_new_int64((int64_t) n_images));
        if (hierarchies) {
                struct json_object *a = json_object_new_array();
                STRV_FOREACH(h, hierarchies)
                        json_object_array_add(a, json_object_new_string(*h));
                json_object_object_add(p, "hierarchies", a);
        }
        if (policy)
                json_object_object_add(p, "imagePolicy", json_object_new_string(policy));
        if (want_overlay)
                json_object_object_add(p, "overlay", json_object_new_boolean(true));
        return p;
}

static int error_to_errno(const char *error) {
        static const struct { const char *suffix; int error; } map[] = {
                { ".PermissionDenied", -EPERM },
                { ".NotEntitled", -EPERM },
                { ".DeniedByImagePolicy", -ERFKILL },
                { ".VerityFailure", -EBADMSG },
                { ".IncompatibleImage", -EMEDIUMTYPE },
                { ".InvalidParameter", -EINVAL },
                { ".MethodNotFound", -EOPNOTSUPP },
                { ".TooManyRequests", -EBUSY },
        };

        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if (endswith(error, map[i].suffix))
                        return map[i].error;
        return -EIO;
}

static int reply_error(const VarlinkReply *rep) {
        struct json_object *m = NULL, *param = NULL;
        const char *msg = NULL;

        if (json_object_object_get_ex(rep->parameters, "message", &m) && json_object_is_type(m, json_type_string))
                msg = json_object_get_string(m);
        else if (json_object_object_get_ex(rep->parameters, "parameter", &param) &&
                 json_object_is_type(param, json_type_string))
                msg = json_object_get_string(param);
        return sx_error(error_to_errno(rep->error), "sysext-idmapd: %s%s%s", rep->error, msg ? ": " : "", strempty(msg));
}

static BrokerClientHierarchy *hierarchy_get(BrokerClientLayers *l, const char *path) {
        BrokerClientHierarchy *a;

        for (size_t i = 0; i < l->n_hierarchies; i++)
                if (streq(l->hierarchies[i].path, path))
                        return &l->hierarchies[i];
        if (l->n_hierarchies >= HIERARCHIES_MAX)
                return NULL;
        a = reallocarray(l->hierarchies, l->n_hierarchies + 1, sizeof(BrokerClientHierarchy));
        if (!a)
                return NULL;
        l->hierarchies = a;
        a[l->n_hierarchies] = (BrokerClientHierarchy) { .path = strdup(path), .overlay_fd = -EBADF };
        if (!a[l->n_hierarchies].path)
                return NULL;
        return &a[l->n_hierarchies++];
}

/* One entry of the reply's hierarchies[]: its layers go below the ones we have. */
static int take_hierarchy(VarlinkReply *rep, struct json_object *h, BrokerClientLayers *l) {
        struct json_object *path = NULL, *fds = NULL, *ov = NULL;
        BrokerClientHierarchy *into;
        size_t n;
        int r;

        if (!json_object_object_get_ex(h, "hierarchy", &path) || !json_object_is_type(path, json_type_string) ||
            !path_is_absolute(json_object_get_string(path)) ||
            !json_object_object_get_ex(h, "layerFileDescriptors", &fds) || !json_object_is_type(fds, json_type_array))
                return sx_error(-EBADMSG, "sysext-idmapd: a hierarchy in the reply lacks its path or layers");
        into = hierarchy_get(l, json_object_get_string(path));
        if (!into)
                return -ENOMEM;
        if (json_object_object_get_ex(h, "overlayFileDescriptor", &ov) && ov) {
                if (into->overlay_fd >= 0 || into->n_layer_fds > 0)
                        return sx_error(-EINVAL, "%s: the broker's finished overlay cannot be combined with other layers",
                                        into->path);
                r = varlink_reply_take_fd_index(rep, ov, &into->overlay_fd);
                if (r < 0)
                        return sx_error(r, "sysext-idmapd: %s: the overlay names no file descriptor of the reply",
                                        into->path);
        } else if (into->overlay_fd >= 0 && json_object_array_length(fds) > 0)
                return sx_error(-EINVAL, "%s: the broker's finished overlay cannot be combined with other layers",
                                into->path);
        n = json_object_array_length(fds);
        int *a = reallocarray(into->layer_fds, into->n_layer_fds + n, sizeof(int));
        if (!a)
                return -ENOMEM;
        into->layer_fds = a;
        for (size_t i = 0; i < n; i++) {
                int fd = -EBADF;
                r = varlink_reply_take_fd_index(rep, json_object_array_get_idx(fds, i), &fd);
                if (r < 0)
                        return sx_error(r, "sysext-idmapd: %s: a layer names no file descriptor of the reply",
                                        into->path);
                a[into->n_layer_fds++] = fd;
        }
        return 0;
}

/* extensions[] {name, trust} or skipped[] {name, reason} into two parallel lists. */
static int take_names(struct json_object *params, const char *field, const char *second, char ***names,
                      char ***seconds) {
        struct json_object *a = NULL;

        if (!json_object_object_get_ex(params, field, &a) || !a)
                return 0;
        if (!json_object_is_type(a, json_type_array))
                return sx_error(-EBADMSG, "sysext-idmapd: %s is not an array", field);
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                struct json_object *e = json_object_array_get_idx(a, i), *n = NULL, *s = NULL;
                (void) json_object_object_get_ex(e, "name", &n);
                (void) json_object_object_get_ex(e, second, &s);
                if (strv_extend(names, n ? json_object_get_string(n) : "?") < 0 ||
                    strv_extend(seconds, s ? json_object_get_string(s) : "") < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int take_reply(VarlinkReply *rep, BrokerClientLayers *l) {
        struct json_object *hs = NULL;
        int r;

        if (rep->error)
                return reply_error(rep);
        if (!json_object_object_get_ex(rep->parameters, "hierarchies", &hs) || !json_object_is_type(hs, json_type_array))
                return sx_error(-EBADMSG, "sysext-idmapd: the reply has no hierarchies");
        for (size_t i = 0; i < json_object_array_length(hs); i++) {
                r = take_hierarchy(rep, json_object_array_get_idx(hs, i), l);
                if (r < 0)
                        return r;
        }
        r = take_names(rep->parameters, "extensions", "trust", &l->extensions, &l->trust);
        if (r >= 0)
                r = take_names(rep->parameters, "skipped", "reason", &l->skipped, &l->skipped_reason);
        return r;
}

/* Root of the initial user namespace: every uid there is the real one. */
static bool root_of_initial_userns(void) {
        return geteuid() == 0 && merge_broker_in_container() == 0;
}

/* A root client takes mounts from the broker and layers them where root runs: the socket must be
 * served by root, not by whoever bound a socket at that path. (In a user namespace the broker's
 * uid shows as the overflow uid: there the caller has no privilege a fake broker could abuse.) */
static int check_peer(Varlink *v, const char *socket) {
        struct ucred cred = {};
        socklen_t l = sizeof(cred);

        if (!root_of_initial_userns())
                return 0;
        if (getsockopt(varlink_get_fd(v), SOL_SOCKET, SO_PEERCRED, &cred, &l) < 0 || l != sizeof(cred))
                return sx_error(negative_errno(), "%s: cannot tell who serves the socket: %m", socket);
        if (cred.uid != 0)
                return sx_error(-EACCES, "%s is served by uid %u (pid %d), not by root: not the broker, not used",
                                socket, (unsigned) cred.uid, (int) cred.pid);
        return 0;
}

static int broker_connect(const char *socket, int timeout_ms, Varlink **ret) {
        _cleanup_(varlink_freep) Varlink *v = NULL;
        int r;

        r = varlink_connect(socket, 0, timeout_ms, &v);
        if (r == -ENOENT || r == -ECONNREFUSED || r == -ENOTDIR)
                return sx_error(-ENOTCONN, "the broker sysext-idmapd is not running (no one listens at %s: %s)",
                                socket, strerror(-r));
        if (r < 0)
                return sx_error(r, "cannot connect to the broker at %s: %m", socket);
        r = check_peer(v, socket);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

int broker_client_mount_overlay(const char *socket, const int *image_fds, size_t n_image_fds, int userns_fd,
                                char * const *hierarchies, const char *policy, bool want_overlay,
                                BrokerClientLayers *l) {
        _cleanup_(varlink_freep) Varlink *v = NULL;
        _cleanup_(varlink_reply_done) VarlinkReply rep = {};
        int fds[BROKER_FDS_MAX];
        size_t n_fds = 0;
        int r;

        assert(socket && l && (image_fds || n_image_fds == 0));
        if (n_image_fds + 1 > BROKER_FDS_MAX)
                return sx_error(-E2BIG, "too many images for one call to the broker (at most %d)", BROKER_FDS_MAX - 1);
        for (size_t i = 0; i < n_image_fds; i++)
                fds[n_fds++] = image_fds[i];
        if (userns_fd >= 0)
                fds[n_fds++] = userns_fd;
        r = broker_connect(socket, 0, &v);
        if (r < 0)
                return r;
        struct json_object *params = overlay_request(n_image_fds, userns_fd >= 0, hierarchies, policy, want_overlay);
        if (!params)
                return -ENOMEM;
        r = varlink_call(v, "io.sysext-idmap.Broker.MountOverlay", params, fds, n_fds, BROKER_CALL_TIMEOUT_MS, &rep);
        json_object_put(params);
        if (r < 0)
                return sx_error(r, "sysext-idmapd at %s: MountOverlay failed: %m", socket);
        return take_reply(&rep, l);
}

/* ---- MountImage, for root front ends ---- */

void broker_client_image_done(BrokerClientImage *i) {
        if (!i)
                return;
        for (size_t k = 0; k < i->n_partitions; k++) {
                safe_close(i->partitions[k].mount_fd);
                free(i->partitions[k].designator);
                free(i->partitions[k].fstype);
        }
        free(i->policy_used);
        *i = (BrokerClientImage) {};
}

static const char *json_string_of(struct json_object *o, const char *field) {
        struct json_object *v = NULL;

        if (!json_object_object_get_ex(o, field, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static int json_u64_of(struct json_object *o, const char *field, uint64_t *ret) {
        struct json_object *v = NULL;

        if (!json_object_object_get_ex(o, field, &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) < 0)
                return -EBADMSG;
        *ret = (uint64_t) json_object_get_int64(v);
        return 0;
}

static int take_partition(VarlinkReply *rep, struct json_object *o, BrokerClientPartition *p) {
        const char *d = json_string_of(o, "designator"), *fs = json_string_of(o, "fileSystemType");
        struct json_object *n = NULL;

        if (!d || !fs || json_u64_of(o, "offset", &p->offset) < 0 || json_u64_of(o, "size", &p->size) < 0)
                return sx_error(-EBADMSG, "sysext-idmapd: a partition in the reply lacks its designator, type, offset or size");
        p->partno = json_object_object_get_ex(o, "partitionNumber", &n) && json_object_is_type(n, json_type_int) ?
                    json_object_get_int(n) : -1;
        p->designator = strdup(d);
        p->fstype = strdup(fs);
        if (!p->designator || !p->fstype)
                return -ENOMEM;
        if (varlink_reply_take_fd(rep, o, "mountFileDescriptor", &p->mount_fd) < 0)
                return sx_error(-EBADMSG, "sysext-idmapd: partition %s names no file descriptor of the reply", d);
        return 0;
}

int broker_client_mount_image(const char *socket, int image_fd, const char *policy, BrokerClientImage *ret) {
        _cleanup_(varlink_freep) Varlink *v = NULL;
        _cleanup_(varlink_reply_done) VarlinkReply rep = {};
        _cleanup_(broker_client_image_done) BrokerClientImage img = {};
        struct json_object *params, *parts = NULL;
        const char *used;
        int r;

        assert(socket && image_fd >= 0 && ret);
        r = broker_connect(socket, BROKER_IMAGE_TIMEOUT_MS, &v);
        if (r < 0)
                return r;
        params = json_object_new_object();
        if (!params)
                return -ENOMEM;
        json_object_object_add(params, "imageFileDescriptor", json_object_new_int(0));
        json_object_object_add(params, "readOnly", json_object_new_boolean(true));
        if (policy)
                json_object_object_add(params, "imagePolicy", json_object_new_string(policy));
        r = varlink_call(v, "io.systemd.MountFileSystem.MountImage", params, &image_fd, 1, BROKER_IMAGE_TIMEOUT_MS, &rep);
        json_object_put(params);
        if (r < 0)
                return sx_error(r, "sysext-idmapd at %s: MountImage failed: %m", socket);
        if (rep.error)
                return reply_error(&rep);
        if (!json_object_object_get_ex(rep.parameters, "partitions", &parts) || !json_object_is_type(parts, json_type_array))
                return sx_error(-EBADMSG, "sysext-idmapd: the reply has no partitions");
        for (size_t i = 0; i < json_object_array_length(parts); i++) {
                if (img.n_partitions >= ELEMENTSOF(img.partitions))
                        return sx_error(-EBADMSG, "sysext-idmapd: the reply has more than %zu partitions",
                                        ELEMENTSOF(img.partitions));
                img.partitions[img.n_partitions] = (BrokerClientPartition) { .mount_fd = -EBADF };
                r = take_partition(&rep, json_object_array_get_idx(parts, i), &img.partitions[img.n_partitions++]);
                if (r < 0)
                        return r;
        }
        used = json_string_of(rep.parameters, "imagePolicy");
        if (used && !(img.policy_used = strdup(used)))
                return -ENOMEM;
        *ret = img;
        img = (BrokerClientImage) {};
        return 0;
}

/* ---- the overlays, built here ---- */

typedef struct AttachState {
        OverlaySpec specs[HIERARCHIES_MAX];
        int targets[HIERARCHIES_MAX];           /* O_PATH fds of the hierarchies in this namespace */
        int overlays[HIERARCHIES_MAX];
        size_t n;
} AttachState;

static void attach_state_done(AttachState *s) {
        for (size_t i = 0; i < s->n; i++) {
                for (size_t j = 0; j < s->specs[i].n_layers; j++)
                        safe_close(s->specs[i].layers[j].mnt_fd);       /* dir_fd is the same fd */
                free(s->specs[i].layers);
                safe_close(s->targets[i]);
                safe_close(s->overlays[i]);
        }
}

/* The layers of one hierarchy: a clone of each received mount (ours: made in our namespace, so
 * overlayfs may take it), then the hierarchy as this namespace has it. */
static int spec_prepare(const BrokerClientHierarchy *h, int target_fd, OverlaySpec *spec) {
        Layer *layers = calloc(h->n_layer_fds + 1, sizeof(Layer));
        size_t n = 0;

        if (!layers)
                return -ENOMEM;
        *spec = (OverlaySpec) { .hierarchy = h->path, .mount_attrs = MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID,
                                .layers = layers, .upper.dir_fd = -EBADF, .work.dir_fd = -EBADF,
                                .upper.mnt_fd = -EBADF, .work.mnt_fd = -EBADF };
        for (size_t i = 0; i < h->n_layer_fds; i++) {
                int fd = sys_open_tree(h->layer_fds[i], "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
                if (fd < 0) {
                        int r = negative_errno();
                        spec->n_layers = n;
                        return sx_error(r, "%s: cannot clone layer %zu from the broker: %m", h->path, i);
                }
                layers[n++] = (Layer) { .mnt_fd = fd, .subdir = (char *) "", .dir_fd = fd };
        }
        int base = fcntl(target_fd, F_DUPFD_CLOEXEC, 3);
        if (base < 0) {
                spec->n_layers = n;
                return negative_errno();
        }
        layers[n++] = (Layer) { .mnt_fd = base, .subdir = (char *) "", .dir_fd = base };
        spec->n_layers = n;
        return 0;
}

static int attach_prepare(const BrokerClientLayers *l, AttachState *s, char ***missing) {
        int r;

        for (size_t i = 0; i < l->n_hierarchies && s->n < HIERARCHIES_MAX; i++) {
                const BrokerClientHierarchy *h = &l->hierarchies[i];
                size_t k;
                int t;

                if (h->n_layer_fds == 0 && h->overlay_fd < 0)
                        continue;
                t = open(h->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (t < 0 && (errno == ENOENT || errno == ENOTDIR)) {
                        if (strv_extend(missing, h->path) < 0)
                                return -ENOMEM;
                        continue;
                }
                if (t < 0)
                        return sx_error(negative_errno(), "%s: %m", h->path);
                k = s->n++;
                s->targets[k] = t;
                s->overlays[k] = -EBADF;
                s->specs[k] = (OverlaySpec) { .hierarchy = h->path };
                if (h->overlay_fd >= 0) {       /* the broker's, finished: attached as it is */
                        s->overlays[k] = fcntl(h->overlay_fd, F_DUPFD_CLOEXEC, 3);
                        if (s->overlays[k] < 0)
                                return negative_errno();
                        continue;
                }
                r = spec_prepare(h, t, &s->specs[k]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The overlays the broker did not send, built here. */
static int attach_build(AttachState *s) {
        OverlaySpec specs[HIERARCHIES_MAX];
        size_t idx[HIERARCHIES_MAX], n = 0;
        int fds[HIERARCHIES_MAX];
        bool fallback;
        int r;

        for (size_t i = 0; i < s->n; i++)
                if (s->overlays[i] < 0) {
                        idx[n] = i;
                        specs[n++] = s->specs[i];
                }
        if (n == 0)
                return 0;
        r = overlays_make(specs, n, fds, &fallback);
        if (r < 0)
                return r;
        for (size_t j = 0; j < n; j++)
                s->overlays[idx[j]] = fds[j];
        return 0;
}

int broker_client_layers_attach(const BrokerClientLayers *l, char ***ret_missing) {
        _cleanup_strv_free_ char **missing = NULL;
        AttachState s = {};
        int r;

        assert(l);
        r = attach_prepare(l, &s, &missing);
        if (r >= 0)
                r = attach_build(&s);
        /* Attached last: every overlay was built before the first one becomes visible. */
        for (size_t i = 0; r >= 0 && i < s.n; i++) {
                r = mount_attach(s.overlays[i], s.targets[i], false);
                if (r >= 0)
                        continue;
                r = sx_error(r, "%s: cannot attach the overlay: %m", s.specs[i].hierarchy);
                while (i-- > 0)         /* the ones attached already go again */
                        (void) sys_umount2(s.specs[i].hierarchy, MNT_DETACH);
                break;
        }
        if (r >= 0)
                r = (int) s.n;
        attach_state_done(&s);
        if (r >= 0 && ret_missing)
                *ret_missing = TAKE_PTR(missing);
        return r;
}
