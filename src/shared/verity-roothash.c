/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Where trust comes from, the way systemd finds it: root hashes from xattrs, sidecar files
 * (NAME.roothash, NAME.usrhash, their .p7s signatures, NAME.verity hash trees) and the GPT verity
 * signature partition, whose UUIDs must match; and the verity.d directories that hold the trusted
 * certificates. Reads and parses only (json-c); checking signatures is verity-sig.c's job.
 * Everything read from the image is hostile. */

#include <ctype.h>
#include <dirent.h>
#include <sys/xattr.h>

#include <json-c/json.h>

#include "mountapi.h"
#include "test-hooks.h"
#include "verity-internal.h"
#include "verity-sig.h"

/* The signature partition holds a small JSON object; anything bigger is not ours. */
#define SIG_PARTITION_MAX (4U * 1024U * 1024U)
#define SIDECAR_HASH_MAX 4096U
#define SIDECAR_SIG_MAX (1024U * 1024U)
/* certificateFingerprint: a sha256, in hex. */
#define SHA256_HEX_LEN 64U
/* Enough to tell "/dev/null" from anything else a masking symlink might point to. */
#define MASK_TARGET_MAX 16U

/* ---- hex ---- */

/* Strict: even length, hex digits only, ROOT_HASH_MIN..ROOT_HASH_MAX bytes. */
static int parse_root_hash(const char *s, size_t l, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *b = NULL;

        assert(s || l == 0);
        assert(ret && ret_size);
        if (l % 2 != 0 || l / 2 < ROOT_HASH_MIN || l / 2 > ROOT_HASH_MAX)
                return -EINVAL;
        b = malloc(l / 2);
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < l / 2; i++) {
                int hi = unhexchar(s[i * 2]), lo = unhexchar(s[i * 2 + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                b[i] = (uint8_t) (hi << 4 | lo);
        }
        *ret = TAKE_PTR(b);
        *ret_size = l / 2;
        return 0;
}

/* ---- sidecars and xattrs ---- */

/* Reads a hex root hash from a one-line text (trailing whitespace allowed). */
static int root_hash_from_text(const char *label, const char *what, const char *text, size_t n,
                               uint8_t **ret, size_t *ret_size) {
        assert(label && what && text);
        while (n > 0 && isspace((unsigned char) text[n - 1]))
                n--;
        if (memchr(text, 0, n) || parse_root_hash(text, n, ret, ret_size) < 0)
                return sx_error(-EBADMSG, "%s: root hash in %s is not a valid hex string of %u..%u bytes",
                                label, what, ROOT_HASH_MIN, ROOT_HASH_MAX);
        return 0;
}

/* Takes ownership of hash and source, also on failure. */
static int set_root_hash(VerityData *v, uint8_t *hash, size_t size, char *source) {
        assert(v && hash);
        if (!source) {
                free(hash);
                return -ENOMEM;
        }
        v->root_hash = hash;
        v->root_hash_size = size;
        v->root_hash_source = source;
        return 0;
}

/* xattr user.verity.{roothash,usrhash} on the image inode itself. 0 = none. */
static int load_xattr_hash(const DissectedImage *m, const char *name, VerityData *v) {
        char buf[ROOT_HASH_MAX * 2 + 2];
        uint8_t *hash;
        size_t size;
        ssize_t n;
        int r;

        assert(m && name && v);
        n = fgetxattr(m->fd, name, buf, sizeof(buf));
        if (n < 0) {
                if (errno == ENODATA || errno == ENOTSUP || errno == EOPNOTSUPP || errno == EBADF)
                        return 0;
                if (errno == ERANGE)
                        return sx_error(-EBADMSG, "%s: xattr %s is too long for a root hash", m->path, name);
                return sx_error(negative_errno(), "%s: cannot read xattr %s: %m", m->path, name);
        }
        _cleanup_free_ char *what = strjoin("xattr ", name);
        if (!what)
                return -ENOMEM;
        r = root_hash_from_text(m->path, what, buf, (size_t) n, &hash, &size);
        if (r < 0)
                return r;
        r = set_root_hash(v, hash, size, TAKE_PTR(what));
        return r < 0 ? r : 1;
}

/* A file beside the image, with the caller's file system ids. A path a user controls is canonical
 * (discovery resolved it): a symlink in it now was put there to make us open something else. */
static int open_sidecar(const char *path, bool no_symlinks) {
        struct open_how how = {
                .flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
                .resolve = no_symlinks ? RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS : 0,
        };
        int fd;

        assert(path);
        fd = sys_openat2(AT_FDCWD, path, &how, sizeof(how));
        if (fd < 0 && errno == ENOSYS && !no_symlinks)
                fd = open(path, (int) how.flags);
        return fd < 0 ? negative_errno() : fd;
}

/* A sidecar file beside the image; 0 if it does not exist. */
static int read_sidecar(const char *label, const char *path, bool no_symlinks, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = open_sidecar(path, no_symlinks);
        int r = fd < 0 ? fd : read_full_fd(fd, max, ret, ret_size);

        assert(label);
        if (r == -ENOENT)
                return 0;
        if (r == -EFBIG)
                return sx_error(r, "%s: sidecar %s is larger than %zu bytes", label, path, max);
        if (r == -ELOOP && no_symlinks)
                return sx_error(r, "%s: sidecar %s is a symlink or lies behind one; refusing to follow it", label, path);
        if (r < 0)
                return sx_error(r, "%s: cannot read sidecar %s: %m", label, path);
        return 1;
}

static int load_sidecar_hash(const char *label, const char *image_path, bool no_symlinks, const char *suffix, VerityData *v) {
        _cleanup_free_ char *p = path_auxiliary(image_path, suffix), *text = NULL;
        uint8_t *hash;
        size_t n, size;
        int r;

        assert(v);
        if (!p)
                return -ENOMEM;
        r = read_sidecar(label, p, no_symlinks, SIDECAR_HASH_MAX, &text, &n);
        if (r <= 0)
                return r;
        _cleanup_free_ char *what = strjoin("sidecar ", p);
        if (!what)
                return -ENOMEM;
        r = root_hash_from_text(label, what, text, n, &hash, &size);
        if (r < 0)
                return r;
        r = set_root_hash(v, hash, size, TAKE_PTR(what));
        return r < 0 ? r : 1;
}

static int load_sidecar_sig(const char *label, const char *image_path, bool no_symlinks, const char *suffix, VerityData *v) {
        _cleanup_free_ char *p = path_auxiliary(image_path, suffix), *sig = NULL;
        size_t n;
        int r;

        assert(v);
        if (!p)
                return -ENOMEM;
        r = read_sidecar(label, p, no_symlinks, SIDECAR_SIG_MAX, &sig, &n);
        if (r <= 0)
                return r;
        if (n == 0)
                return sx_error(-EBADMSG, "%s: signature sidecar %s is empty", label, p);
        v->signature_source = strjoin("sidecar ", p);
        if (!v->signature_source)
                return -ENOMEM;
        v->signature = (uint8_t *) TAKE_PTR(sig);
        v->signature_size = n;
        return 1;
}

/* ---- the signature partition: NUL-padded JSON ---- */

static const char *json_get_string(json_object *o, const char *key, bool *ret_wrong_type) {
        json_object *v;

        assert(o && key && ret_wrong_type);
        *ret_wrong_type = false;
        if (!json_object_object_get_ex(o, key, &v))
                return NULL;
        if (!json_object_is_type(v, json_type_string)) {
                *ret_wrong_type = true;
                return NULL;
        }
        return json_object_get_string(v);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);
DEFINE_TRIVIAL_CLEANUP_FUNC(json_tokener *, json_tokener_free);

/* Parse the whole text (no trailing garbage but whitespace) into an object. */
static int json_parse_object(const char *text, size_t l, json_object **ret) {
        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new();
        _cleanup_(json_object_putp) json_object *o = NULL;

        assert(text && ret);
        if (!tok)
                return -ENOMEM;
        if (l > INT32_MAX)
                return -EFBIG;
        o = json_tokener_parse_ex(tok, text, (int) l);
        if (!o || json_tokener_get_error(tok) != json_tokener_success)
                return -EBADMSG;
        for (size_t i = json_tokener_get_parse_end(tok); i < l; i++)
                if (!isspace((unsigned char) text[i]))
                        return -EBADMSG;
        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        *ret = TAKE_PTR(o);
        return 0;
}

static int read_sig_partition(const DissectedImage *m, const DissectedPartition *p, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t done = 0;

        assert(m && p && ret && ret_size);
        if (p->size > SIG_PARTITION_MAX)
                return sx_error(-EFBIG, "%s: verity signature partition is larger than %u bytes", m->path, SIG_PARTITION_MAX);
        buf = malloc(p->size + 1);
        if (!buf)
                return -ENOMEM;
        while (done < p->size) {
                ssize_t k = pread(m->fd, buf + done, p->size - done, (off_t) (p->offset + done));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return sx_error(negative_errno(), "%s: cannot read verity signature partition: %m", m->path);
                if (k == 0)
                        return sx_error(-EIO, "%s: verity signature partition is truncated", m->path);
                done += (size_t) k;
        }
        buf[p->size] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = p->size;
        return 0;
}

static int parse_fingerprint(const char *label, const char *fp, char **ret) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t n;

        assert(label && fp && ret);
        if (strlen(fp) != SHA256_HEX_LEN || parse_root_hash(fp, SHA256_HEX_LEN, &b, &n) < 0)
                return sx_error(-EBADMSG, "%s: certificateFingerprint in verity signature partition is not a sha256 hex string", label);
        *ret = verity_hexmem(b, n);
        return *ret ? 0 : -ENOMEM;
}

/* The JSON text must fill buf up to its NUL padding. */
static int sig_partition_json(const char *label, const char *buf, size_t size, json_object **ret) {
        size_t len;

        assert(label && ret);
        if (size > SIG_PARTITION_MAX)
                return sx_error(-EFBIG, "%s: verity signature partition is larger than %u bytes", label, SIG_PARTITION_MAX);
        len = size > 0 ? strnlen(buf, size) : 0;
        for (size_t i = len; i < size; i++)
                if (buf[i] != 0)
                        return sx_error(-EBADMSG, "%s: verity signature partition has data after the JSON text", label);
        if (json_parse_object(buf ?: "", len, ret) < 0)
                return sx_error(-EBADMSG, "%s: verity signature partition does not hold a valid JSON object", label);
        return 0;
}

int verity_signature_json_parse(const char *label, const char *buf, size_t size,
                                uint8_t **ret_root_hash, size_t *ret_root_hash_size,
                                uint8_t **ret_signature, size_t *ret_signature_size,
                                char **ret_fingerprint) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *fp = NULL;
        _cleanup_free_ uint8_t *hash = NULL, *sig = NULL;
        const char *hash_s, *sig_s, *fp_s;
        size_t hash_size = 0, sig_size = 0;
        bool bad1, bad2, bad3;
        int r;

        if ((!buf && size > 0) || !ret_root_hash || !ret_root_hash_size || !ret_signature || !ret_signature_size ||
            !ret_fingerprint)
                return -EINVAL;
        r = sig_partition_json(label, buf, size, &o);
        if (r < 0)
                return r;
        hash_s = json_get_string(o, "rootHash", &bad1);
        sig_s = json_get_string(o, "signature", &bad2);
        fp_s = json_get_string(o, "certificateFingerprint", &bad3);
        if (bad1 || bad2 || bad3 || !hash_s || !sig_s)
                return sx_error(-EBADMSG, "%s: verity signature JSON lacks string fields rootHash and signature, or has a field of the wrong type",
                                label);
        if (parse_root_hash(hash_s, strlen(hash_s), &hash, &hash_size) < 0)
                return sx_error(-EBADMSG, "%s: rootHash in verity signature partition is not a valid hex string", label);
        r = verity_sig_base64_decode(sig_s, &sig, &sig_size);
        if (r == -EOPNOTSUPP)
                return sx_error(r, "%s: built without OpenSSL, cannot read verity signature partition", label);
        if (r < 0)
                return sx_error(-EBADMSG, "%s: signature in verity signature partition is not valid base64", label);
        if (fp_s && parse_fingerprint(label, fp_s, &fp) < 0)
                return -EBADMSG;

        *ret_root_hash = TAKE_PTR(hash);
        *ret_root_hash_size = hash_size;
        *ret_signature = TAKE_PTR(sig);
        *ret_signature_size = sig_size;
        *ret_fingerprint = TAKE_PTR(fp);
        return 0;
}

static int load_sig_partition(const DissectedImage *m, PartitionDesignator d, VerityData *v) {
        const DissectedPartition *p = &m->partitions[verity_sig_partition_of(d)];
        _cleanup_free_ char *text = NULL, *fp = NULL;
        _cleanup_free_ uint8_t *hash = NULL, *sig = NULL;
        size_t size = 0, hash_size = 0, sig_size = 0;
        int r;

        assert(v);
        if (!p->found)
                return 0;
        r = read_sig_partition(m, p, &text, &size);
        if (r < 0)
                return r;
        r = verity_signature_json_parse(m->path, text, size, &hash, &hash_size, &sig, &sig_size, &fp);
        if (r < 0)
                return r;

        if (v->root_hash && (v->root_hash_size != hash_size || memcmp(v->root_hash, hash, hash_size) != 0))
                return sx_error(-EBADMSG, "%s: root hash in verity signature partition differs from the one in %s",
                                m->path, v->root_hash_source);
        if (!v->root_hash) {
                r = set_root_hash(v, TAKE_PTR(hash), hash_size, strdup("signature partition"));
                if (r < 0)
                        return r;
        }
        if (!v->signature) {
                v->signature = TAKE_PTR(sig);
                v->signature_size = sig_size;
                v->signature_source = strdup("signature partition");
                v->expected_fingerprint = TAKE_PTR(fp);
                if (!v->signature_source)
                        return -ENOMEM;
        }
        return 1;
}

/* ---- putting it together ---- */

static int check_partition_uuids(const DissectedImage *m, PartitionDesignator d, const VerityData *v) {
        const DissectedPartition *data = &m->partitions[d], *hash = &m->partitions[verity_partition_of(d)];
        const char *what = partition_designator_to_string(d);
        sd_id128_t want_data, want_hash;

        assert(v && v->root_hash_size >= ROOT_HASH_MIN);
        if (!hash->found)
                return sx_error(-EBADMSG, "%s: a root hash for %s is known (%s) but the image has no %s-verity partition",
                                m->path, what, v->root_hash_source, what);
        memcpy(&want_data, v->root_hash, sizeof(sd_id128_t));
        memcpy(&want_hash, v->root_hash + v->root_hash_size - sizeof(sd_id128_t), sizeof(sd_id128_t));
        if (!sd_id128_equal(data->uuid, want_data) || !sd_id128_equal(hash->uuid, want_hash))
                return sx_error(-EBADMSG, "%s: %s and %s-verity partition UUIDs do not match the root hash from %s",
                                m->path, what, what, v->root_hash_source);
        return 0;
}

/* Root hash (xattr before sidecar, systemd's order), then signature sidecars, then the signature
 * partition fills whatever is missing. */
static int load_for(const DissectedImage *m, const char *image_path, bool no_symlinks, PartitionDesignator d,
                    const char *kind, VerityData *v) {
        _cleanup_free_ char *xattr = strjoin("user.verity.", kind), *hsuffix = strjoin(".", kind),
                            *ssuffix = strjoin(".", kind, ".p7s");
        int r;

        assert(m && v);
        if (!xattr || !hsuffix || !ssuffix)
                return -ENOMEM;
        /* Looked for even if the image lacks the partition: a stray hash is then refused. */
        r = load_xattr_hash(m, xattr, v);
        if (r == 0 && image_path)
                r = load_sidecar_hash(m->path, image_path, no_symlinks, hsuffix, v);
        if (r < 0)
                return r;
        if (v->root_hash && image_path) {
                r = load_sidecar_sig(m->path, image_path, no_symlinks, ssuffix, v);
                if (r < 0)
                        return r;
        }
        if (m->kind == DISSECT_GPT && m->partitions[d].found)
                return load_sig_partition(m, d, v);
        return 0;
}

static int load_gpt(VeritySettings *s, const DissectedImage *m, const char *image_path, bool no_symlinks) {
        static const char * const kinds[2] = { [PARTITION_ROOT] = "roothash", [PARTITION_USR] = "usrhash" };
        int r;

        assert(s && m);
        for (PartitionDesignator d = PARTITION_ROOT; d <= PARTITION_USR; d++) {
                VerityData *v = &s->data[d];

                r = load_for(m, image_path, no_symlinks, d, kinds[d], v);
                if (r < 0)
                        return r;
                if (!v->root_hash)
                        continue;
                if (!m->partitions[d].found)
                        return sx_error(-ENXIO, "%s: a root hash for %s is known (%s) but the image has no %s partition",
                                        m->path, partition_designator_to_string(d), v->root_hash_source,
                                        partition_designator_to_string(d));
                r = check_partition_uuids(m, d, v);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* NAME.verity beside a bare image, opened now, with the same rights as the image and its other
 * sidecars; the mount comes later, with root's. */
static int open_hash_tree_file(const DissectedImage *m, const char *image_path, bool no_symlinks, VerityData *v) {
        _cleanup_free_ char *hp = path_auxiliary(image_path, ".verity");
        int r;

        assert(m && v);
        if (!hp)
                return -ENOMEM;
        r = open_sidecar(hp, no_symlinks);
        if (r == -ELOOP && no_symlinks)
                return sx_error(r, "%s: hash tree file %s is a symlink or lies behind one; refusing to follow it", m->path, hp);
        if (r == -ENOENT)
                return sx_error(r, "%s: a root hash is known (%s) but the hash tree file %s is missing",
                                m->path, v->root_hash_source, hp);
        if (r < 0)
                return sx_error(r, "%s: cannot open %s: %m", m->path, hp);
        v->hash_fd = r;
        v->hash_path = TAKE_PTR(hp);
        return 0;
}

/* A bare filesystem is dissected as the root partition; its hash may be named roothash or usrhash,
 * and the hash tree lies in NAME.verity. */
static int load_bare(VeritySettings *s, const DissectedImage *m, const char *image_path, bool no_symlinks) {
        VerityData *v = &s->data[PARTITION_ROOT];
        int r;

        assert(m);
        r = load_for(m, image_path, no_symlinks, PARTITION_ROOT, "roothash", v);
        if (r == 0 && !v->root_hash)
                r = load_for(m, image_path, no_symlinks, PARTITION_ROOT, "usrhash", v);
        if (r < 0)
                return r;
        if (!v->root_hash)
                return 0;
        if (!image_path)
                return sx_error(-ENOENT, "%s: a root hash is known but no hash tree file", m->path);
        return open_hash_tree_file(m, image_path, no_symlinks, v);
}

int verity_settings_load(const DissectedImage *m, const char *image_path, bool no_symlinks, VeritySettings **ret) {
        _cleanup_(verity_settings_freep) VeritySettings *s = NULL;
        int r = 0;

        if (!m || !ret)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(s->data); i++)
                s->data[i].hash_fd = -EBADF;
        s->image_path = strdup(image_path ?: m->path);
        if (!s->image_path)
                return -ENOMEM;
        if (m->kind == DISSECT_GPT)
                r = load_gpt(s, m, image_path, no_symlinks);
        else if (m->kind == DISSECT_FILESYSTEM)
                r = load_bare(s, m, image_path, no_symlinks);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- verity.d: the trusted certificates ---- */

static const char * const default_cert_dirs[] = {
        "/etc/verity.d", "/run/verity.d", "/usr/local/lib/verity.d", "/usr/lib/verity.d",
};

static int cert_dirs(const char *root, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        const char *e = TEST_HOOK(verity_dirs, NULL);

        assert(ret);
        if (e)  /* test builds: replaces the list */
                return strv_split(e, ":", ret);
        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(default_cert_dirs); i++)
                if (strv_push(&l, path_join_root(root, default_cert_dirs[i])) < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}

static bool is_masked(int dfd, const char *name) {
        char target[MASK_TARGET_MAX];
        ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);

        if (n < 0)
                return false;
        target[n] = 0;
        return streq(target, "/dev/null");
}

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/* One directory's *.crt; names in seen were won by an earlier directory. */
static int cert_dir_foreach(const char *dir, char ***seen, VerityCertFileFn fn, void *userdata) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;
        int r;

        assert(seen && fn);
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                if (!endswith(de->d_name, ".crt") || de->d_name[0] == '.' || strv_contains(*seen, de->d_name))
                        continue;
                r = strv_extend(seen, de->d_name);
                if (r >= 0 && !is_masked(dirfd(d), de->d_name))
                        r = fn(dirfd(d), dir, de->d_name, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

int verity_cert_files_foreach(const char *root, VerityCertFileFn fn, void *userdata) {
        _cleanup_strv_free_ char **dirs = NULL, **seen = NULL;
        int r;

        assert(fn);
        r = cert_dirs(root, &dirs);
        if (r < 0)
                return r;
        seen = calloc(1, sizeof(char *));
        if (!seen)
                return -ENOMEM;
        STRV_FOREACH(dir, dirs) {
                r = cert_dir_foreach(*dir, &seen, fn, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}
