/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "dissect.h"
#include "markers.h"
#include "mountapi.h"
#include "verity.h"

#define MARKERS_META_VERSION 1
#define MARKERS_FILE_MAX (1024 * 1024)  /* largest marker file read back */
#define MARKERS_DEV_MAX 64              /* "MAJOR:MINOR\n", with room to spare */
#define USEC_PER_SEC UINT64_C(1000000)
#define NSEC_PER_USEC UINT64_C(1000)

#define MARKER_PATH_MAX 64              /* ".systemd-confext/sysext-idmap.json" */

/* A hierarchy carries the markers of one class (image-class.h): the marker directory found in it
 * says which. Readers take either, so status shows systemd-confext's merge of /etc too. */
static const ImageClassInfo *marker_class_at(int dir_fd) {
        struct stat st;

        for (ImageClass c = 0; c < _IMAGE_CLASS_MAX; c++)
                if (fstatat(dir_fd, image_class_info(c)->meta_dir, &st, 0) == 0 && S_ISDIR(st.st_mode))
                        return image_class_info(c);
        return image_class_info(IMAGE_CLASS_SYSEXT);
}

const char *markers_meta_dir_at(int dir_fd) {
        return marker_class_at(dir_fd)->meta_dir;
}

/* "<marker dir>/<file>"; file NULL: the class's list of names ("extensions", "confexts"). */
static const char *marker_path(const ImageClassInfo *cls, const char *file, char buf[static MARKER_PATH_MAX]) {
        snprintf(buf, MARKER_PATH_MAX, "%s/%s", cls->meta_dir, file ?: cls->list_file);
        return buf;
}
#define MARKER_DEV(cls) marker_path((cls), "dev", (char[MARKER_PATH_MAX]) {})
#define MARKER_EXTENSIONS(cls) marker_path((cls), NULL, (char[MARKER_PATH_MAX]) {})
#define MARKER_META(cls) marker_path((cls), SYSEXT_IDMAP_META_FILE, (char[MARKER_PATH_MAX]) {})

static void json_add_string(json_object *o, const char *key, const char *value) {
        json_object_object_add(o, key, json_object_new_string(value));
}

static json_object *meta_json_extension(const Extension *e, const char *idmap_spec) {
        const VerityResult *v = extension_verity_result(e);
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_add_string(o, "name", e->image->name);
        json_add_string(o, "path", e->image->path);
        json_add_string(o, "type", dissect_kind_to_string(e->dissected->kind));
        if (e->image->version)
                json_add_string(o, "version", e->image->version);
        json_add_string(o, "idmap", idmap_spec);
        json_object_object_add(o, "reloadManager", json_object_new_boolean(e->reload_manager));
        json_add_string(o, "verity", extension_trust_summary(e));
        json_add_string(o, "checkedBy", verity_checked_by_to_string(v->checked_by));
        if (v->root_hash)
                json_add_string(o, "rootHash", v->root_hash);
        if (v->is_signed && v->signer_fingerprint)
                json_add_string(o, "signer", v->signer_fingerprint);
        return o;
}

void skipped_images_free(SkippedImage *s, size_t n) {
        for (size_t i = 0; s && i < n; i++) {
                free(s[i].name);
                free(s[i].path);
                free(s[i].reason);
        }
        free(s);
}

static json_object *json_string_array(char * const *l) {
        json_object *a = json_object_new_array();

        STRV_FOREACH(i, l)
                json_object_array_add(a, json_object_new_string(*i));
        return a;
}

/* What one image is, as refresh compares it: its verity root hash if it has one (a copy of the
 * same bytes is the same image), else the file or directory it was opened from. Names alone would
 * miss an image replaced under the same name. */
static json_object *identity_extension(const Extension *e, const char *idmap_spec) {
        const VerityResult *v = extension_verity_result(e);
        json_object *o = json_object_new_object();
        char dev[MARKERS_DEV_MAX];
        struct stat st;
        int r;

        if (!o)
                return NULL;
        json_add_string(o, "name", e->image->name);
        if (idmap_spec)         /* --idmap=auto: this layer's own mapping (a NAME.idmap may change it) */
                json_add_string(o, "idmap", idmap_spec);
        if (v->root_hash) {
                json_add_string(o, "rootHash", v->root_hash);
                return o;
        }
        r = e->dissected && e->dissected->fd >= 0 ? fstat(e->dissected->fd, &st) : stat(e->image->path, &st);
        if (r < 0) {
                json_add_string(o, "path", e->image->path);     /* cannot happen with an open image */
                return o;
        }
        snprintf(dev, sizeof(dev), "%u:%u", major(st.st_dev), minor(st.st_dev));
        json_add_string(o, "dev", dev);
        json_object_object_add(o, "ino", json_object_new_uint64(st.st_ino));
        if (S_ISBLK(st.st_mode)) {
                snprintf(dev, sizeof(dev), "%u:%u", major(st.st_rdev), minor(st.st_rdev));
                json_add_string(o, "rdev", dev);
        }
        json_object_object_add(o, "size", json_object_new_uint64(st.st_size));
        json_object_object_add(o, "mtime", json_object_new_uint64(timespec_to_usec(&st.st_mtim)));
        return o;
}

/* The inputs of a merge: the same document for every hierarchy of it. */
static json_object *identity_new(const MarkersInfo *m) {
        json_object *o = json_object_new_object(), *a = json_object_new_array(), *sk = json_object_new_array();

        if (!o || !a || !sk) {
                json_object_put(o);
                json_object_put(a);
                json_object_put(sk);
                return NULL;
        }
        json_add_string(o, "idmap", m->idmap_spec);
        if (m->idmap_resolved)
                json_add_string(o, "idmapResolved", m->idmap_resolved);
        json_object_object_add(o, "hierarchies", json_string_array(m->hierarchies));
        for (size_t i = 0; i < m->n_exts; i++)
                json_object_array_add(a, identity_extension(m->exts[i], m->layer_idmap_specs ? m->layer_idmap_specs[i] : NULL));
        json_object_object_add(o, "extensions", a);
        json_add_string(o, "mutable", m->mutable_mode);
        json_object_object_add(o, "noexec", json_object_new_boolean(m->noexec));
        if (m->overlay_options)
                json_add_string(o, "overlayOptions", m->overlay_options);
        for (size_t i = 0; i < m->n_skipped; i++) {
                json_object *e = json_object_new_object();
                json_add_string(e, "name", m->skipped[i].name);
                json_add_string(e, "path", m->skipped[i].path);
                json_object_array_add(sk, e);
        }
        json_object_object_add(o, "skipped", sk);
        return o;
}

static json_object *meta_json_skipped(const MarkersInfo *m) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; a && i < m->n_skipped; i++) {
                json_object *e = json_object_new_object();
                json_add_string(e, "name", m->skipped[i].name);
                json_add_string(e, "path", m->skipped[i].path);
                json_add_string(e, "reason", m->skipped[i].reason);
                json_object_array_add(a, e);
        }
        return a;
}

static json_object *meta_json_new(const MarkersInfo *m) {
        json_object *o = json_object_new_object(), *a = json_object_new_array();

        if (!o || !a) {
                json_object_put(o);
                json_object_put(a);
                return NULL;
        }
        json_object_object_add(o, "version", json_object_new_int(MARKERS_META_VERSION));
        json_add_string(o, "origin", m->origin ?: MARKERS_ORIGIN_DEFAULT);
        json_add_string(o, "hierarchy", m->hierarchy);
        json_add_string(o, "root", m->root);
        json_object_object_add(o, "since", json_object_new_uint64(now_usec(CLOCK_REALTIME)));
        json_add_string(o, "idmap", m->idmap_spec);
        if (m->idmap_resolved)
                json_add_string(o, "idmapResolved", m->idmap_resolved);
        for (size_t i = 0; i < m->n_exts; i++) {
                const char *spec = m->layer_idmap_specs && m->layer_idmap_specs[i] ? m->layer_idmap_specs[i] : m->idmap_spec;
                if (m->used[i])
                        json_object_array_add(a, meta_json_extension(m->exts[i], spec));
        }
        json_object_object_add(o, "extensions", a);
        json_object_object_add(o, "skipped", meta_json_skipped(m));
        json_object_object_add(o, "identity", identity_new(m));
        if (m->inputs)
                json_object_object_add(o, "inputs", json_object_get(m->inputs));
        return o;
}

/* Every extension of the merge, merge order, one a line (systemd-sysext's "extensions"). */
static char *names_file(const MarkersInfo *m) {
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *j = NULL;

        for (size_t i = 0; i < m->n_exts; i++)
                if (strv_extend(&l, m->exts[i]->image->name) < 0)
                        return NULL;
        j = strv_join(l, "\n");
        return j ? strjoin(j, "\n") : NULL;
}

int markers_write(int meta_fd, const char *path, const MarkersInfo *m) {
        _cleanup_free_ char *names_nl = NULL;
        json_object *o;
        int r;

        assert(meta_fd >= 0);
        assert(path && m && m->hierarchy && m->root && m->idmap_spec);
        assert(m->used || m->n_exts == 0);
        const ImageClassInfo *cls = image_class_info(m->image_class);
        if (sys_mkdirat(meta_fd, cls->meta_dir, 0755) < 0)
                return sx_error(negative_errno(), "%s: cannot write merge markers: %m", path);
        names_nl = names_file(m);
        if (!names_nl)
                return -ENOMEM;
        o = meta_json_new(m);
        if (!o)
                return -ENOMEM;
        r = write_string_at(meta_fd, MARKER_EXTENSIONS(cls), names_nl, 0644);
        if (r >= 0)
                r = write_string_at(meta_fd, MARKER_META(cls),
                                    json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE), 0644);
        json_object_put(o);
        if (r < 0)
                return sx_error(r, "%s: cannot write merge markers: %m", path);
        return 0;
}

int markers_write_dev(int meta_fd, int ovl_fd, const char *path) {
        char dev[MARKERS_DEV_MAX];
        struct stat st;
        int r;

        assert(meta_fd >= 0 && ovl_fd >= 0 && path);
        if (fstat(ovl_fd, &st) < 0)
                return negative_errno();
        snprintf(dev, sizeof(dev), "%u:%u\n", major(st.st_dev), minor(st.st_dev));
        r = write_string_at(meta_fd, MARKER_DEV(marker_class_at(meta_fd)), dev, 0644);
        if (r < 0)
                return sx_error(r, "%s: cannot write merge markers: %m", path);
        return 0;
}

int is_sysext_mount(int dir_fd) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        unsigned ma, mi;
        struct stat st;
        int r;

        assert(dir_fd >= 0);
        fd = openat_beneath(dir_fd, MARKER_DEV(marker_class_at(dir_fd)), O_RDONLY | O_NONBLOCK | O_NOCTTY, false);
        if (fd == -ENOENT || fd == -ENOTDIR)
                return 0;
        if (fd < 0)
                return fd;
        r = read_full_fd(fd, MARKERS_DEV_MAX, &buf, NULL);
        if (r < 0)
                return r == -EFBIG || r == -EBADFD ? 0 : r;
        if (sscanf(buf, "%u:%u", &ma, &mi) != 2)
                return 0;
        if (fstat(dir_fd, &st) < 0)
                return negative_errno();
        return major(st.st_dev) == ma && minor(st.st_dev) == mi;
}

json_object *markers_read_meta(int dir_fd) {
        _cleanup_free_ char *buf = NULL;

        assert(dir_fd >= 0);
        if (read_full_file_at(dir_fd, MARKER_META(marker_class_at(dir_fd)), MARKERS_FILE_MAX, &buf, NULL) < 0)
                return NULL;
        return json_tokener_parse(buf);
}

int is_origin_mount(int dir_fd, const char *origin) {
        _cleanup_free_ char *found = NULL;
        json_object *meta;
        int r;

        assert(origin);
        r = is_sysext_mount(dir_fd);
        if (r <= 0)
                return r;
        meta = markers_read_meta(dir_fd);
        found = markers_meta_string(meta, "origin");
        if (meta)
                json_object_put(meta);
        return found && streq(found, origin);
}

bool markers_meta_wants_reload(json_object *meta) {
        json_object *a, *e, *v;

        if (!meta || !json_object_object_get_ex(meta, "extensions", &a))
                return false;
        for (size_t i = 0; i < json_object_array_length(a); i++)
                if ((e = json_object_array_get_idx(a, i)) && json_object_object_get_ex(e, "reloadManager", &v) &&
                    json_object_get_boolean(v))
                        return true;
        return false;
}

char *markers_meta_string(json_object *meta, const char *key) {
        json_object *v;

        assert(key);
        if (!meta || !json_object_object_get_ex(meta, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return strdup(json_object_get_string(v));
}

uint64_t markers_meta_since_usec(json_object *meta) {
        json_object *v;

        if (!meta || !json_object_object_get_ex(meta, "since", &v))
                return 0;
        return (uint64_t) json_object_get_uint64(v);
}

bool markers_meta_identity_equal(json_object *meta, const MarkersInfo *m) {
        json_object *old, *now, *reparsed;
        bool equal;

        assert(m);
        if (!meta || !json_object_object_get_ex(meta, "identity", &old))
                return false;
        now = identity_new(m);
        if (!now)
                return false;
        /* Compare what was written with what would be written: both through the same text form,
         * so that number types parsed back compare equal to the ones built here. */
        reparsed = json_tokener_parse(json_object_to_json_string_ext(now, JSON_C_TO_STRING_PLAIN));
        json_object_put(now);
        equal = reparsed && json_object_equal(old, reparsed);
        json_object_put(reparsed);
        return equal;
}

int markers_meta_skipped(json_object *meta, SkippedImage **ret, size_t *ret_n) {
        SkippedImage *l;
        json_object *a;
        size_t n;

        assert(ret && ret_n);
        *ret = NULL;
        *ret_n = 0;
        if (!meta || !json_object_object_get_ex(meta, "skipped", &a) || !json_object_is_type(a, json_type_array))
                return 0;
        n = json_object_array_length(a);
        l = calloc(n + 1, sizeof(SkippedImage));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(a, i);
                l[i] = (SkippedImage) {
                        .name = markers_meta_string(e, "name"),
                        .path = markers_meta_string(e, "path"),
                        .reason = markers_meta_string(e, "reason"),
                };
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

int markers_read_names(int dir_fd, char ***ret) {
        _cleanup_free_ char *names = NULL;
        int r;

        assert(dir_fd >= 0 && ret);
        r = read_full_file_at(dir_fd, MARKER_EXTENSIONS(marker_class_at(dir_fd)), MARKERS_FILE_MAX, &names, NULL);
        if (r < 0)
                return r;
        return strv_split(names, "\n", ret);
}

uint64_t markers_since_usec(int dir_fd) {
        struct stat st;

        /* systemd-sysext creates the marker directory at merge time */
        if (fstatat(dir_fd, marker_class_at(dir_fd)->meta_dir, &st, 0) < 0)
                return 0;
        return (uint64_t) st.st_mtim.tv_sec * USEC_PER_SEC + (uint64_t) st.st_mtim.tv_nsec / NSEC_PER_USEC;
}

int markers_meta_layers(json_object *meta, LayerStatus **ret, size_t *ret_n) {
        LayerStatus *l;
        json_object *a;
        size_t n;

        assert(ret && ret_n);
        if (!meta || !json_object_object_get_ex(meta, "extensions", &a) || !json_object_is_type(a, json_type_array)) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        n = json_object_array_length(a);
        l = calloc(n + 1, sizeof(LayerStatus));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(a, i);
                l[i] = (LayerStatus) {
                        .name = markers_meta_string(e, "name"),
                        .path = markers_meta_string(e, "path"),
                        .type = markers_meta_string(e, "type"),
                        .version = markers_meta_string(e, "version"),
                        .idmap = markers_meta_string(e, "idmap"),
                        .verity = markers_meta_string(e, "verity"),
                        .checked_by = markers_meta_string(e, "checkedBy"),
                        .root_hash = markers_meta_string(e, "rootHash"),
                        .signer = markers_meta_string(e, "signer"),
                };
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

void layer_status_done(LayerStatus *l) {
        free(l->name), free(l->path), free(l->type), free(l->version), free(l->idmap);
        free(l->verity), free(l->checked_by), free(l->root_hash), free(l->signer);
        *l = (LayerStatus) {};
}
