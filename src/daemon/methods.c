/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The method glue: parameters of io.systemd.MountFileSystem (systemd's names and types) and of
 * io.sysext-idmap.Broker parsed and checked, the broker called, its errnos mapped to Varlink
 * errors, the mounts sent back as fds. */

#include <json-c/json.h>
#include <sys/vfs.h>

#include "id128-util.h"
#include "interfaces.h"
#include "worker.h"

/* ---- parameters ---- */

/* A field that may be absent or null, else of type t. 1 present, 0 absent/null, negative after an
 * InvalidParameter reply. */
static int get_field(VarlinkCall *c, const char *name, json_type t, struct json_object **ret) {
        struct json_object *v = NULL;

        *ret = NULL;
        if (!json_object_object_get_ex(c->parameters, name, &v) || !v)
                return 0;
        if (!json_object_is_type(v, t))
                return varlink_reply_invalid_parameter(c, name);
        *ret = v;
        return 1;
}

/* readOnly: we hand out read-only mounts only, so false is refused rather than ignored. */
static int check_read_only(VarlinkCall *c) {
        struct json_object *v;
        int r;

        r = get_field(c, "readOnly", json_type_boolean, &v);
        if (r > 0 && !json_object_get_boolean(v))
                return varlink_reply_invalid_parameter(c, "readOnly");
        return r < 0 ? r : 0;
}

/* Fields systemd documents as hints: type-checked, then ignored. */
static int check_hints(VarlinkCall *c, const char * const *hints) {
        struct json_object *v;

        for (const char * const *h = hints; *h; h++) {
                int r = get_field(c, *h, json_type_boolean, &v);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* imagePolicy: parsed here so that a bad string is InvalidParameter naming the field. */
static int get_policy(VarlinkCall *c, const char **ret) {
        _cleanup_image_policy_ ImagePolicy *p = NULL;
        struct json_object *v;
        int r;

        *ret = NULL;
        r = get_field(c, "imagePolicy", json_type_string, &v);
        if (r <= 0)
                return r;
        if (image_policy_from_string(json_object_get_string(v), &p) < 0)
                return varlink_reply_invalid_parameter(c, "imagePolicy");
        *ret = json_object_get_string(v);
        return 0;
}

static int open_target(VarlinkCall *c, BrokerTarget **ret) {
        Worker *w = c->userdata;
        int fd, r;

        r = varlink_call_get_fd(c, "userNamespaceFileDescriptor", true, &fd);
        if (r < 0)
                return r;
        return broker_target_open(&w->caller, fd, ret);
}

/* ---- errors ---- */

static int reply_error_message(VarlinkCall *c, const char *error, int e) {
        struct json_object *p = json_object_new_object();
        const char *m = sx_last_error();

        if (p) {
                json_object_object_add(p, "message", json_object_new_string(isempty(m) ? strerror(-e) : m));
                if (streq(error, "io.sysext-idmap.Broker.Failed")) {
                        json_object_object_add(p, "errno", json_object_new_int(-e));
                        json_object_object_add(p, "errnoName", json_object_new_string(strerrorname_np(-e) ?: "?"));
                }
        }
        return varlink_reply_error(c, error, p);
}

/* The broker's errnos (broker.h) as Varlink errors; field names the fd parameter a -EBADFD or
 * -EINVAL is about. */
static int reply_broker_error(VarlinkCall *c, int e, const char *field) {
        const char *m = sx_last_error();
        const char *name;

        switch (e) {
        case -EPERM:
                name = m && startswith(m, "namespace") ? "io.sysext-idmap.Broker.NotEntitled" :
                                                          "io.sysext-idmap.Broker.PermissionDenied";
                break;
        case -EACCES:
                name = "io.sysext-idmap.Broker.PermissionDenied";
                break;
        case -ENOKEY:
        case -ERFKILL:
                name = "io.systemd.MountFileSystem.DeniedByImagePolicy";
                break;
        case -EBADMSG:
                name = "io.systemd.MountFileSystem.VerityFailure";
                break;
        case -EMEDIUMTYPE:
                name = "io.systemd.MountFileSystem.IncompatibleImage";
                break;
        case -ENOTUNIQ:
                name = "io.systemd.MountFileSystem.MultipleRootPartitionsFound";
                break;
        case -EINVAL:
        case -EBADFD:
                /* with the library's reason: a kernel refusal reads differently from a bad argument */
                return varlink_reply_invalid_parameter_message(c, field, m);
        default:
                name = "io.sysext-idmap.Broker.Failed";
        }
        return reply_error_message(c, name, e);
}

static int daemon_reply_errno(VarlinkCall *c, int e) {
        return reply_error_message(c, "io.sysext-idmap.Broker.Failed", e);
}

/* ---- MountImage ---- */

static struct json_object *partition_json(VarlinkCall *c, BrokerPartition *p) {
        char uuid[ID128_UUID_STRING_MAX];
        struct json_object *o;
        int idx;

        idx = varlink_call_push_fd(c, TAKE_FD(p->mount_fd));
        if (idx < 0)
                return NULL;
        o = json_object_new_object();
        if (!o)
                return NULL;
        json_object_object_add(o, "designator", json_object_new_string(p->designator));
        json_object_object_add(o, "writable", json_object_new_boolean(false));
        json_object_object_add(o, "growFileSystem", json_object_new_boolean(p->growfs));
        if (p->partno > 0)
                json_object_object_add(o, "partitionNumber", json_object_new_int(p->partno));
        if (!sd_id128_is_null(p->uuid))
                json_object_object_add(o, "partitionUuid",
                                       json_object_new_string(id128_to_uuid_string(p->uuid, uuid)));
        json_object_object_add(o, "fileSystemType", json_object_new_string(strempty(p->fstype)));
        json_object_object_add(o, "size", json_object_new_int64((int64_t) p->size));
        json_object_object_add(o, "offset", json_object_new_int64((int64_t) p->offset));
        json_object_object_add(o, "mountFileDescriptor", json_object_new_int(idx));
        return o;
}

static int reply_image(VarlinkCall *c, BrokerImageResult *res) {
        Worker *w = c->userdata;
        struct json_object *p, *parts;

        for (size_t i = 0; i < res->n_partitions; i++)
                if (res->partitions[i].new_pinned_fd >= 0 && res->partitions[i].store_key)
                        (void) worker_report_layer(w, res->partitions[i].store_key,
                                                   res->partitions[i].new_pinned_fd);
        p = json_object_new_object();
        parts = json_object_new_array();
        if (!p || !parts)
                goto oom;
        json_object_object_add(p, "partitions", parts);
        for (size_t i = 0; i < res->n_partitions; i++) {
                struct json_object *o = partition_json(c, &res->partitions[i]);
                if (!o)
                        goto oom;
                json_object_array_add(parts, o);
        }
        json_object_object_add(p, "imagePolicy", json_object_new_string(strempty(res->policy_used)));
        json_object_object_add(p, "imageSize", json_object_new_int64((int64_t) res->image_size));
        json_object_object_add(p, "sectorSize", json_object_new_int(512));
        if (res->image_name)
                json_object_object_add(p, "imageName", json_object_new_string(res->image_name));
        return varlink_reply(c, p);
oom:
        if (p)
                json_object_put(p);
        else if (parts)
                json_object_put(parts);
        return -ENOMEM;
}

static int method_mount_image(VarlinkCall *c) {
        static const char * const fields[] = {
                "imageFileDescriptor", "userNamespaceFileDescriptor", "readOnly", "growFileSystems",
                "password", "imagePolicy", "allowInteractiveAuthentication", NULL,
        };
        static const char * const hints[] = { "growFileSystems", "allowInteractiveAuthentication", NULL };
        _cleanup_(broker_image_result_done) BrokerImageResult res = {};
        _cleanup_(broker_target_freep) BrokerTarget *t = NULL;
        _cleanup_close_ int image_fd = -EBADF;
        Worker *w = c->userdata;
        struct json_object *v;
        const char *policy;
        int r;

        if ((r = varlink_call_check_fields(c, fields)) < 0 || (r = check_read_only(c)) < 0 ||
            (r = check_hints(c, hints)) < 0 || (r = get_policy(c, &policy)) < 0)
                return r;
        /* no encrypted images: a password is refused, not ignored */
        r = get_field(c, "password", json_type_string, &v);
        if (r != 0)
                return r < 0 ? r : varlink_reply_invalid_parameter(c, "password");
        r = varlink_call_get_fd(c, "imageFileDescriptor", false, &image_fd);
        if (r < 0)
                return r;
        if (fcntl(image_fd, F_GETFL) & O_PATH)
                return varlink_reply_invalid_parameter(c, "imageFileDescriptor");
        r = open_target(c, &t);
        if (r < 0)
                return reply_broker_error(c, r, "userNamespaceFileDescriptor");
        sx_clear_error();
        r = broker_mount_image(w->config, &w->caller, t, image_fd, policy, w->store, &res);
        if (r < 0)
                return reply_broker_error(c, r, "imageFileDescriptor");
        return reply_image(c, &res);
}

/* ---- MountDirectory ---- */

static int method_mount_directory(VarlinkCall *c) {
        static const char * const fields[] = {
                "directoryFileDescriptor", "userNamespaceFileDescriptor", "readOnly", "mode",
                "allowInteractiveAuthentication", NULL,
        };
        static const char * const hints[] = { "allowInteractiveAuthentication", NULL };
        _cleanup_(broker_target_freep) BrokerTarget *t = NULL;
        _cleanup_close_ int dir_fd = -EBADF, mount_fd = -EBADF;
        Worker *w = c->userdata;
        struct json_object *v, *p;
        const char *mode = "auto";
        int r, idx;

        if ((r = varlink_call_check_fields(c, fields)) < 0 || (r = check_read_only(c)) < 0 ||
            (r = check_hints(c, hints)) < 0 || (r = get_field(c, "mode", json_type_string, &v)) < 0)
                return r;
        if (v)
                mode = json_object_get_string(v);
        if (!streq(mode, "auto") && !streq(mode, "identity") && !streq(mode, "foreign") && !streq(mode, "root"))
                return varlink_reply_invalid_parameter(c, "mode");
        r = varlink_call_get_fd(c, "directoryFileDescriptor", false, &dir_fd);
        if (r < 0)
                return r;
        r = open_target(c, &t);
        if (r < 0)
                return reply_broker_error(c, r, "userNamespaceFileDescriptor");
        sx_clear_error();
        r = broker_mount_directory(&w->caller, t, dir_fd, mode, &mount_fd);
        if (r < 0)
                return reply_broker_error(c, r, "directoryFileDescriptor");
        idx = varlink_call_push_fd(c, TAKE_FD(mount_fd));
        if (idx < 0)
                return idx;
        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        json_object_object_add(p, "mountFileDescriptor", json_object_new_int(idx));
        return varlink_reply(c, p);
}

/* ---- MountOverlay ---- */

typedef struct OverlayArgs {
        int *image_fds;
        size_t n_image_fds;
        char **hierarchies;
        const char *policy;
        bool overlay;
} OverlayArgs;

static void overlay_args_done(OverlayArgs *a) {
        for (size_t i = 0; i < a->n_image_fds; i++)
                safe_close(a->image_fds[i]);
        free(a->image_fds);
        strv_free(a->hierarchies);
}

static int get_image_fds(VarlinkCall *c, OverlayArgs *a) {
        struct json_object *l;
        size_t n;
        int r;

        r = get_field(c, "imageFileDescriptors", json_type_array, &l);
        if (r <= 0)
                return r;
        n = json_object_array_length(l);
        if (n > c->n_fds)
                return varlink_reply_invalid_parameter(c, "imageFileDescriptors");
        a->image_fds = calloc(n ?: 1, sizeof(int));
        if (!a->image_fds)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = varlink_call_fd_of(c, "imageFileDescriptors", json_object_array_get_idx(l, i),
                                       &a->image_fds[i]);
                if (r < 0)
                        return r;
                a->n_image_fds++;
        }
        return 0;
}

static int get_hierarchies(VarlinkCall *c, OverlayArgs *a) {
        struct json_object *l;
        size_t n;
        int r;

        r = get_field(c, "hierarchies", json_type_array, &l);
        if (r <= 0)
                return r;
        n = json_object_array_length(l);
        if (n == 0 || n > 16)
                return varlink_reply_invalid_parameter(c, "hierarchies");
        for (size_t i = 0; i < n; i++) {
                struct json_object *h = json_object_array_get_idx(l, i);
                if (!json_object_is_type(h, json_type_string) || !path_is_absolute(json_object_get_string(h)))
                        return varlink_reply_invalid_parameter(c, "hierarchies");
                r = strv_extend(&a->hierarchies, json_object_get_string(h));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_overlay_args(VarlinkCall *c, OverlayArgs *a) {
        static const char * const fields[] = {
                "imageFileDescriptors", "userNamespaceFileDescriptor", "hierarchies", "imagePolicy",
                "overlay", NULL,
        };
        struct json_object *v;
        int r;

        if ((r = varlink_call_check_fields(c, fields)) < 0 || (r = get_policy(c, &a->policy)) < 0 ||
            (r = get_image_fds(c, a)) < 0 || (r = get_hierarchies(c, a)) < 0 ||
            (r = get_field(c, "overlay", json_type_boolean, &v)) < 0)
                return r;
        a->overlay = v && json_object_get_boolean(v);
        return 0;
}

static struct json_object *pairs_json(char **names, char **values, const char *value_key) {
        struct json_object *l = json_object_new_array();

        for (size_t i = 0; l && names && names[i]; i++) {
                struct json_object *o = json_object_new_object();
                if (!o)
                        break;
                json_object_object_add(o, "name", json_object_new_string(names[i]));
                json_object_object_add(o, value_key, json_object_new_string(values && values[i] ? values[i] : ""));
                json_object_array_add(l, o);
        }
        return l;
}

static struct json_object *hierarchy_json(VarlinkCall *c, BrokerHierarchy *h) {
        struct json_object *l, *o = varlink_object_with_array("layerFileDescriptors", &l);

        if (!o)
                return NULL;
        json_object_object_add(o, "hierarchy", json_object_new_string(h->hierarchy));
        for (size_t i = 0; i < h->n_layer_fds; i++) {
                int idx = varlink_call_push_fd(c, TAKE_FD(h->layer_fds[i]));
                if (idx < 0) {
                        json_object_put(o);
                        return NULL;
                }
                json_object_array_add(l, json_object_new_int(idx));
        }
        if (h->overlay_fd >= 0) {
                int idx = varlink_call_push_fd(c, TAKE_FD(h->overlay_fd));
                if (idx < 0) {
                        json_object_put(o);
                        return NULL;
                }
                json_object_object_add(o, "overlayFileDescriptor", json_object_new_int(idx));
        }
        return o;
}

static int reply_overlay(VarlinkCall *c, BrokerOverlayResult *res) {
        Worker *w = c->userdata;
        struct json_object *p, *l;

        for (size_t i = 0; i < res->n_new; i++)
                if (res->new_pinned_fds[i] >= 0 && res->new_keys && res->new_keys[i])
                        (void) worker_report_layer(w, res->new_keys[i], res->new_pinned_fds[i]);
        p = varlink_object_with_array("hierarchies", &l);
        if (!p)
                return -ENOMEM;
        for (size_t i = 0; i < res->n_hierarchies; i++) {
                struct json_object *o = hierarchy_json(c, &res->hierarchies[i]);
                if (!o) {
                        json_object_put(p);
                        return -ENOMEM;
                }
                json_object_array_add(l, o);
        }
        json_object_object_add(p, "extensions", pairs_json(res->extensions, res->trust, "trust"));
        json_object_object_add(p, "skipped", pairs_json(res->skipped, res->skipped_reason, "reason"));
        return varlink_reply(c, p);
}

static int method_mount_overlay(VarlinkCall *c) {
        _cleanup_(broker_overlay_result_done) BrokerOverlayResult res = {};
        _cleanup_(broker_target_freep) BrokerTarget *t = NULL;
        _cleanup_(overlay_args_done) OverlayArgs a = {};
        Worker *w = c->userdata;
        int r;

        r = parse_overlay_args(c, &a);
        if (r < 0)
                return r;
        r = open_target(c, &t);
        if (r < 0)
                return reply_broker_error(c, r, "userNamespaceFileDescriptor");
        sx_clear_error();
        r = broker_mount_overlay(w->config, &w->caller, t, a.image_fds, a.n_image_fds, a.hierarchies,
                                 a.policy, a.overlay, w->store, &res);
        if (r < 0)
                return reply_broker_error(c, r, a.n_image_fds > 0 ? "imageFileDescriptors" : "hierarchies");
        return reply_overlay(c, &res);
}

/* ---- GetStatus ---- */

static const char *fstype_of(int fd) {
        static const struct { long magic; const char *name; } table[] = {
                { 0xE0F5E1E2, "erofs" }, { 0x73717368, "squashfs" }, { 0xEF53, "ext4" },
                { 0x9123683E, "btrfs" }, { 0x58465342, "xfs" },
        };
        struct statfs sfs;

        if (fstatfs(fd, &sfs) < 0)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if ((long) sfs.f_type == table[i].magic)
                        return table[i].name;
        return NULL;
}

static int method_get_status(VarlinkCall *c) {
        static const char * const none[] = { NULL };
        Worker *w = c->userdata;
        struct json_object *p, *l;
        int r;

        r = varlink_call_check_fields(c, none);
        if (r < 0)
                return r;
        /* store keys name inodes of the administrator's files: root only */
        if (w->caller.uid != 0) {
                sx_error(-EACCES, "GetStatus is for root only");
                return reply_error_message(c, "io.sysext-idmap.Broker.PermissionDenied", -EACCES);
        }
        p = varlink_object_with_array("entries", &l);
        if (!p)
                return -ENOMEM;
        for (size_t i = 0; w->store && i < broker_store_size(w->store); i++) {
                struct json_object *o = json_object_new_object();
                const char *key, *fs;
                int fd;

                if (!o || broker_store_get(w->store, i, &key, &fd) < 0) {
                        if (o)
                                json_object_put(o);
                        continue;
                }
                json_object_object_add(o, "key", json_object_new_string(key));
                fs = fstype_of(fd);
                if (fs)
                        json_object_object_add(o, "fileSystemType", json_object_new_string(fs));
                json_object_array_add(l, o);
        }
        return varlink_reply(c, p);
}

static const VarlinkMethod methods[] = {
        { "io.systemd.MountFileSystem.MountImage", method_mount_image },
        { "io.systemd.MountFileSystem.MountDirectory", method_mount_directory },
        { "io.sysext-idmap.Broker.MountOverlay", method_mount_overlay },
        { "io.sysext-idmap.Broker.GetStatus", method_get_status },
};

const VarlinkService daemon_service = {
        .vendor = "sysext-idmap",
        .product = "sysext-idmapd",
        .version = PROJECT_VERSION,
        .url = "",
        .interfaces = daemon_interfaces,
        .n_interfaces = ELEMENTSOF(daemon_interfaces),
        .methods = methods,
        .n_methods = ELEMENTSOF(methods),
        .reply_errno = daemon_reply_errno,
};
