/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* dm-verity for extension images, the way systemd finds and uses it: the root hash comes from the
 * image's signature partition, from sidecar files (NAME.roothash, NAME.usrhash, ….p7s, NAME.verity) or
 * from xattrs; its PKCS#7 signature is checked in userspace against verity.d certificates; the data is
 * then opened through dm-verity, or, on kernels without device-mapper, checked as a whole against the
 * hash tree before the plain loop device is mounted. Everything read from the image is hostile. */

#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/xattr.h>

#include <json-c/json.h>

#if HAVE_LIBCRYPTSETUP
#include <libcryptsetup.h>
#endif
#if HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#endif

#include "mountapi.h"
#include "verity.h"

/* The signature partition holds a small JSON object; anything bigger is not ours. */
#define SIG_PARTITION_MAX (4U * 1024U * 1024U)
#define SIDECAR_HASH_MAX 4096U
#define SIDECAR_SIG_MAX (1024U * 1024U)
#define CERT_FILE_MAX (1024U * 1024U)
/* SHA-256 and up; a root hash must at least fill the two partition UUIDs. */
#define ROOT_HASH_MIN 16U
#define ROOT_HASH_MAX 64U
/* 4 MiB */
#define VERITY_READAHEAD_SECTORS 8192U
/* Copying an image into its private copy, per read. */
#define PRIVATE_COPY_CHUNK (1024U * 1024U)

static const char * const verity_mode_table[_VERITY_MODE_MAX] = {
        [VERITY_MODE_AUTO]      = "auto",
        [VERITY_MODE_KERNEL]    = "kernel",
        [VERITY_MODE_USERSPACE] = "userspace",
        [VERITY_MODE_OFF]       = "off",
};

const char *verity_mode_to_string(VerityMode m) {
        return m >= 0 && m < _VERITY_MODE_MAX ? verity_mode_table[m] : NULL;
}

VerityMode verity_mode_from_string(const char *s) {
        for (int i = 0; s && i < _VERITY_MODE_MAX; i++)
                if (streq(verity_mode_table[i], s))
                        return (VerityMode) i;
        return _VERITY_MODE_INVALID;
}

const char *verity_checked_by_to_string(VerityCheckedBy c) {
        static const char * const table[_VERITY_CHECKED_MAX] = {
                [VERITY_CHECKED_NONE]      = "none",
                [VERITY_CHECKED_KERNEL]    = "kernel",
                [VERITY_CHECKED_USERSPACE] = "userspace",
                [VERITY_CHECKED_USERSPACE_COPY] = "userspace-copy",
        };
        return c >= 0 && c < _VERITY_CHECKED_MAX ? table[c] : NULL;
}

const char *verity_protection_to_string(VerityProtection p) {
        static const char * const table[_VERITY_PROTECTION_MAX] = {
                [VERITY_PROTECTION_ABSENT]      = "absent",
                [VERITY_PROTECTION_UNPROTECTED] = "unprotected",
                [VERITY_PROTECTION_VERITY]      = "verity",
                [VERITY_PROTECTION_SIGNED]      = "signed",
        };
        return p >= 0 && p < _VERITY_PROTECTION_MAX ? table[p] : NULL;
}

static bool is_data_designator(PartitionDesignator d) {
        return d == PARTITION_ROOT || d == PARTITION_USR;
}

static PartitionDesignator verity_of(PartitionDesignator d) {
        return d == PARTITION_ROOT ? PARTITION_ROOT_VERITY : PARTITION_USR_VERITY;
}

static PartitionDesignator sig_of(PartitionDesignator d) {
        return d == PARTITION_ROOT ? PARTITION_ROOT_VERITY_SIG : PARTITION_USR_VERITY_SIG;
}

/* ---- hex ---- */

char *verity_hexmem(const uint8_t *p, size_t n) {
        static const char hex[] = "0123456789abcdef";
        char *s = malloc(n * 2 + 1);

        if (!s)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                s[i * 2] = hex[p[i] >> 4];
                s[i * 2 + 1] = hex[p[i] & 15];
        }
        s[n * 2] = 0;
        return s;
}

static int unhex_char(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Strict: even length, hex digits only, ROOT_HASH_MIN..ROOT_HASH_MAX bytes. */
static int parse_root_hash(const char *s, size_t l, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *b = NULL;

        if (l % 2 != 0 || l / 2 < ROOT_HASH_MIN || l / 2 > ROOT_HASH_MAX)
                return -EINVAL;
        b = malloc(l / 2);
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < l / 2; i++) {
                int hi = unhex_char(s[i * 2]), lo = unhex_char(s[i * 2 + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                b[i] = (uint8_t) (hi << 4 | lo);
        }
        *ret = TAKE_PTR(b);
        *ret_size = l / 2;
        return 0;
}

/* ---- settings ---- */

static void verity_data_done(VerityData *v) {
        free(v->root_hash);
        free(v->root_hash_source);
        free(v->signature);
        free(v->signature_source);
        free(v->expected_fingerprint);
        free(v->hash_path);
        safe_close(v->hash_fd);
        free(v->signer_fingerprint);
        free(v->signer_subject);
        free(v->signer_path);
        *v = (VerityData) { .hash_fd = -EBADF };
}

VeritySettings *verity_settings_free(VeritySettings *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(s->data); i++)
                verity_data_done(&s->data[i]);
        free(s->image_path);
        free(s);
        return NULL;
}

const VerityData *verity_settings_get(const VeritySettings *s, PartitionDesignator d) {
        if (!s || !is_data_designator(d))
                return NULL;
        return &s->data[d];
}

/* systemd's rule: NAME.raw → NAME<suffix>; any other name gets the suffix appended. */
static char *auxiliary_path(const char *image, const char *suffix) {
        size_t l = strlen(image);

        if (endswith(image, ".raw"))
                l -= STRLEN(".raw");
        char *p = malloc(l + strlen(suffix) + 1);
        if (!p)
                return NULL;
        memcpy(p, image, l);
        strcpy(p + l, suffix);
        return p;
}

/* Reads a hex root hash from a one-line text (trailing whitespace allowed). */
static int root_hash_from_text(const char *label, const char *what, const char *text, size_t n,
                               uint8_t **ret, size_t *ret_size) {
        while (n > 0 && isspace((unsigned char) text[n - 1]))
                n--;
        if (memchr(text, 0, n) || parse_root_hash(text, n, ret, ret_size) < 0)
                return sx_error(-EBADMSG, "%s: root hash in %s is not a valid hex string of %u..%u bytes",
                                label, what, ROOT_HASH_MIN, ROOT_HASH_MAX);
        return 0;
}

static int set_root_hash(VerityData *v, uint8_t *hash, size_t size, char *source) {
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
        int fd = sys_openat2(AT_FDCWD, path, &how, sizeof(how));

        if (fd < 0 && errno == ENOSYS && !no_symlinks)
                fd = open(path, (int) how.flags);
        return fd < 0 ? negative_errno() : fd;
}

/* A sidecar file beside the image; 0 if it does not exist. */
static int read_sidecar(const char *label, const char *path, bool no_symlinks, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = open_sidecar(path, no_symlinks);
        int r = fd < 0 ? fd : read_full_fd(fd, max, ret, ret_size);

        if (r == -ENOENT)
                return 0;
        if (r == -EFBIG)
                return sx_error(r, "%s: sidecar %s is larger than %zu bytes", label, path, max);
        if (r == -ELOOP && no_symlinks)
                return sx_error(r, "%s: sidecar %s is a symlink or lies behind one; refusing to follow it", label, path);
        if (r < 0)
                return sx_error(r, "%s: cannot read sidecar %s: %s", label, path, strerror(-r));
        return 1;
}

static int load_sidecar_hash(const char *label, const char *image_path, bool no_symlinks, const char *suffix, VerityData *v) {
        _cleanup_free_ char *p = auxiliary_path(image_path, suffix), *text = NULL;
        uint8_t *hash;
        size_t n, size;
        int r;

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
        _cleanup_free_ char *p = auxiliary_path(image_path, suffix), *sig = NULL;
        size_t n;
        int r;

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

#if HAVE_OPENSSL
/* Strict base64: alphabet only, length a multiple of 4, at most two '=' at the very end. */
static int base64_decode(const char *s, uint8_t **ret, size_t *ret_size) {
        size_t l = strlen(s), pad = 0;
        _cleanup_free_ uint8_t *b = NULL;
        int n;

        if (l == 0 || l % 4 != 0 || l > INT32_MAX)
                return -EINVAL;
        while (pad < 2 && s[l - 1 - pad] == '=')
                pad++;
        for (size_t i = 0; i < l - pad; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '+' && s[i] != '/')
                        return -EINVAL;
        b = malloc(l / 4 * 3 + 1);
        if (!b)
                return -ENOMEM;
        /* EVP_DecodeBlock() counts the padding as zero bytes: take them off again. */
        n = EVP_DecodeBlock(b, (const unsigned char *) s, (int) l);
        if (n < 0 || (size_t) n != l / 4 * 3 || (size_t) n < pad + 1)
                return -EINVAL;
        *ret_size = (size_t) n - pad;
        *ret = TAKE_PTR(b);
        return 0;
}
#endif

static const char *json_get_string(json_object *o, const char *key, bool *ret_wrong_type) {
        json_object *v;

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
        json_object *o;
        size_t end;

        if (!tok)
                return -ENOMEM;
        if (l > INT32_MAX)
                return -EFBIG;
        o = json_tokener_parse_ex(tok, text, (int) l);
        if (!o || json_tokener_get_error(tok) != json_tokener_success) {
                json_object_put(o);
                return -EBADMSG;
        }
        end = json_tokener_get_parse_end(tok);
        for (size_t i = end; i < l; i++)
                if (!isspace((unsigned char) text[i])) {
                        json_object_put(o);
                        return -EBADMSG;
                }
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

static int read_sig_partition(const DissectedImage *m, const DissectedPartition *p, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t done = 0;

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

        /* sha256: 32 bytes */
        if (strlen(fp) != 64 || parse_root_hash(fp, 64, &b, &n) < 0)
                return sx_error(-EBADMSG, "%s: certificateFingerprint in verity signature partition is not a sha256 hex string", label);
        *ret = verity_hexmem(b, n);
        return *ret ? 0 : -ENOMEM;
}

int verity_signature_json_parse(const char *label, const char *buf, size_t size,
                                uint8_t **ret_root_hash, size_t *ret_root_hash_size,
                                uint8_t **ret_signature, size_t *ret_signature_size,
                                char **ret_fingerprint) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *fp = NULL;
        _cleanup_free_ uint8_t *hash = NULL, *sig = NULL;
        const char *hash_s, *sig_s, *fp_s;
        size_t len, hash_size = 0, sig_size = 0;
        bool bad1, bad2, bad3;

        if ((!buf && size > 0) || !ret_root_hash || !ret_root_hash_size || !ret_signature || !ret_signature_size ||
            !ret_fingerprint)
                return -EINVAL;
        if (size > SIG_PARTITION_MAX)
                return sx_error(-EFBIG, "%s: verity signature partition is larger than %u bytes", label, SIG_PARTITION_MAX);
        len = size > 0 ? strnlen(buf, size) : 0;
        /* Only NUL padding may follow the JSON text. */
        for (size_t i = len; i < size; i++)
                if (buf[i] != 0)
                        return sx_error(-EBADMSG, "%s: verity signature partition has data after the JSON text", label);
        if (json_parse_object(buf ?: "", len, &o) < 0)
                return sx_error(-EBADMSG, "%s: verity signature partition does not hold a valid JSON object", label);
        hash_s = json_get_string(o, "rootHash", &bad1);
        sig_s = json_get_string(o, "signature", &bad2);
        fp_s = json_get_string(o, "certificateFingerprint", &bad3);
        if (bad1 || bad2 || bad3 || !hash_s || !sig_s)
                return sx_error(-EBADMSG, "%s: verity signature JSON lacks string fields rootHash and signature, or has a field of the wrong type",
                                label);
        if (parse_root_hash(hash_s, strlen(hash_s), &hash, &hash_size) < 0)
                return sx_error(-EBADMSG, "%s: rootHash in verity signature partition is not a valid hex string", label);
#if HAVE_OPENSSL
        if (base64_decode(sig_s, &sig, &sig_size) < 0)
                return sx_error(-EBADMSG, "%s: signature in verity signature partition is not valid base64", label);
#else
        return sx_error(-EOPNOTSUPP, "%s: built without OpenSSL, cannot read verity signature partition", label);
#endif
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
        const DissectedPartition *p = &m->partitions[sig_of(d)];
        _cleanup_free_ char *text = NULL, *fp = NULL;
        _cleanup_free_ uint8_t *hash = NULL, *sig = NULL;
        size_t size = 0, hash_size = 0, sig_size = 0;
        int r;

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
        const DissectedPartition *data = &m->partitions[d], *hash = &m->partitions[verity_of(d)];
        const char *what = partition_designator_to_string(d);
        sd_id128_t want_data, want_hash;

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

/* A bare filesystem is dissected as the root partition; its hash may be named roothash or usrhash,
 * and the hash tree lies in NAME.verity. */
static int load_bare(VeritySettings *s, const DissectedImage *m, const char *image_path, bool no_symlinks) {
        VerityData *v = &s->data[PARTITION_ROOT];
        _cleanup_free_ char *hp = NULL;
        int r;

        r = load_for(m, image_path, no_symlinks, PARTITION_ROOT, "roothash", v);
        if (r == 0 && !v->root_hash)
                r = load_for(m, image_path, no_symlinks, PARTITION_ROOT, "usrhash", v);
        if (r < 0)
                return r;
        if (!v->root_hash)
                return 0;
        if (!image_path)
                return sx_error(-ENOENT, "%s: a root hash is known but no hash tree file", m->path);
        hp = auxiliary_path(image_path, ".verity");
        if (!hp)
                return -ENOMEM;
        /* Opened now, with the same rights as the image and its other sidecars; the mount comes
         * later, with root's. */
        r = open_sidecar(hp, no_symlinks);
        if (r == -ELOOP && no_symlinks)
                return sx_error(r, "%s: hash tree file %s is a symlink or lies behind one; refusing to follow it", m->path, hp);
        if (r == -ENOENT)
                return sx_error(r, "%s: a root hash is known (%s) but the hash tree file %s is missing",
                                m->path, v->root_hash_source, hp);
        if (r < 0)
                return sx_error(r, "%s: cannot open %s: %s", m->path, hp, strerror(-r));
        v->hash_fd = r;
        v->hash_path = TAKE_PTR(hp);
        return 0;
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

VerityProtection verity_protection(const DissectedImage *m, const VeritySettings *s, PartitionDesignator d) {
        const VerityData *v = verity_settings_get(s, d);

        /* A directory is a root without any protection, as a plain file system image is. */
        if (!m || !is_data_designator(d) || !m->partitions[d].found)
                return VERITY_PROTECTION_ABSENT;
        if (!v || !v->root_hash)
                return VERITY_PROTECTION_UNPROTECTED;
        return v->signed_by_trusted ? VERITY_PROTECTION_SIGNED : VERITY_PROTECTION_VERITY;
}

/* ---- signatures ---- */

#if HAVE_OPENSSL
DEFINE_TRIVIAL_CLEANUP_FUNC(PKCS7 *, PKCS7_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);

typedef struct TrustedCerts {
        STACK_OF(X509) *certs;
        char **paths;           /* parallel to certs */
} TrustedCerts;

static void trusted_certs_done(TrustedCerts *t) {
        sk_X509_pop_free(t->certs, X509_free);
        strv_free(t->paths);
        *t = (TrustedCerts) {};
}

static const char * const default_cert_dirs[] = {
        "/etc/verity.d", "/run/verity.d", "/usr/local/lib/verity.d", "/usr/lib/verity.d",
};

static int cert_dirs(const char *root, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        const char *e = TEST_HOOK(verity_dirs, NULL);

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
        char target[16];
        ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);

        if (n < 0)
                return false;
        target[n] = 0;
        return streq(target, "/dev/null");
}

static int load_cert_file(int dfd, const char *dir, const char *name, TrustedCerts *t) {
        _cleanup_free_ char *pem = NULL, *path = NULL;
        _cleanup_(BIO_freep) BIO *b = NULL;
        _cleanup_(X509_freep) X509 *x = NULL;
        size_t n;
        int r;

        r = read_full_file_at(dfd, name, CERT_FILE_MAX, &pem, &n);
        if (r < 0)
                return sx_error(r, "%s/%s: cannot read certificate: %s", dir, name, strerror(-r));
        b = BIO_new_mem_buf(pem, (int) n);
        if (!b)
                return -ENOMEM;
        x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (!x)
                return sx_error(-EBADMSG, "%s/%s: not a PEM certificate", dir, name);
        path = strjoin(dir, "/", name);
        if (!path || strv_push(&t->paths, TAKE_PTR(path)) < 0)
                return -ENOMEM;
        if (!sk_X509_push(t->certs, x))
                return -ENOMEM;
        TAKE_PTR(x);
        return 0;
}

/* *.crt from each directory; the first directory having a name wins it, a symlink to /dev/null
 * masks it. Unreadable certificates are errors: a broken trust store should not pass silently. */
static int load_trusted_certs(const char *root, TrustedCerts *ret) {
        _cleanup_strv_free_ char **dirs = NULL, **seen = NULL;
        TrustedCerts t = {};
        int r;

        r = cert_dirs(root, &dirs);
        if (r < 0)
                return r;
        t.certs = sk_X509_new_null();
        t.paths = calloc(1, sizeof(char *));
        seen = calloc(1, sizeof(char *));
        if (!t.certs || !t.paths || !seen) {
                trusted_certs_done(&t);
                return -ENOMEM;
        }
        STRV_FOREACH(dir, dirs) {
                DIR *d = opendir(*dir);
                struct dirent *de;

                if (!d)
                        continue;
                while ((de = readdir(d))) {
                        if (!endswith(de->d_name, ".crt") || de->d_name[0] == '.' || strv_contains(seen, de->d_name))
                                continue;
                        r = strv_extend(&seen, de->d_name);
                        if (r >= 0 && !is_masked(dirfd(d), de->d_name))
                                r = load_cert_file(dirfd(d), *dir, de->d_name, &t);
                        if (r < 0) {
                                closedir(d);
                                trusted_certs_done(&t);
                                return r;
                        }
                }
                closedir(d);
        }
        *ret = t;
        return 0;
}

static int cert_fingerprint(X509 *x, char **ret) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;

        if (X509_digest(x, EVP_sha256(), md, &n) != 1)
                return -EIO;
        *ret = verity_hexmem(md, n);
        return *ret ? 0 : -ENOMEM;
}

static char *cert_subject(X509 *x) {
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
        char *data, *s;
        long n;

        if (!b || X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) < 0)
                return NULL;
        n = BIO_get_mem_data(b, &data);
        s = n >= 0 ? strndup(data, (size_t) n) : NULL;
        return s;
}

/* The one signer of p7 found in certs (NULL: internal certificates), or NULL. */
static X509 *find_signer(PKCS7 *p7, STACK_OF(X509) *certs, int flags) {
        STACK_OF(X509) *signers;
        X509 *x = NULL;

        ERR_set_mark();
        signers = PKCS7_get0_signers(p7, certs, flags);
        ERR_pop_to_mark();
        if (signers && sk_X509_num(signers) == 1)
                x = sk_X509_value(signers, 0);
        sk_X509_free(signers);
        return x;
}

/* Can OpenSSL compute every digest the signature lists? PKCS7_verify() fails if not, and OpenSSL 3.0
 * then leaks its internal copy of the content BIO (found by fuzz-verity-sig): check first. */
static bool pkcs7_digests_known(PKCS7 *p7) {
        STACK_OF(X509_ALGOR) *algs = p7->d.sign ? p7->d.sign->md_algs : NULL;

        for (int i = 0; i < sk_X509_ALGOR_num(algs); i++) {
                const X509_ALGOR *a = sk_X509_ALGOR_value(algs, i);
                EVP_MD *md;

                if (!a || !a->algorithm)
                        return false;
                if (EVP_get_digestbyobj(a->algorithm))
                        continue;
                ERR_set_mark();
                md = EVP_MD_fetch(NULL, OBJ_nid2sn(OBJ_obj2nid(a->algorithm)), NULL);
                ERR_pop_to_mark();
                if (!md)
                        return false;
                EVP_MD_free(md);
        }
        return true;
}

static bool pkcs7_verifies(PKCS7 *p7, STACK_OF(X509) *certs, const char *hex, int flags) {
        _cleanup_(BIO_freep) BIO *data = NULL;
        int r;

        if (!PKCS7_type_is_signed(p7) || !pkcs7_digests_known(p7))
                return false;
        data = BIO_new_mem_buf(hex, (int) strlen(hex));
        if (!data)
                return false;
        /* NOVERIFY: the verity.d certificates are the trust anchors themselves (usually self-signed
         * leaves without any particular purpose); what counts is that one of them made the signature. */
        ERR_set_mark();
        r = PKCS7_verify(p7, certs, NULL, data, NULL, flags | PKCS7_NOVERIFY | PKCS7_BINARY | PKCS7_NOCHAIN);
        ERR_pop_to_mark();
        return r == 1;
}

/* A signature by a certificate we do not trust still has to be intact: check it against the
 * certificate it carries, so that corruption is refused rather than reported as "untrusted". */
static int check_untrusted(const char *label, VerityData *v, PKCS7 *p7, const char *hex) {
        _cleanup_free_ char *fp = NULL;
        X509 *x = find_signer(p7, NULL, 0);

        if (!x)
                return 0;       /* no certificate inside: nothing more to check */
        if (!pkcs7_verifies(p7, NULL, hex, 0))
                return sx_error(-EBADMSG, "%s: verity signature (%s) is corrupt: it does not verify even against its own certificate",
                                label, v->signature_source);
        if (cert_fingerprint(x, &fp) < 0)
                return -ENOMEM;
        if (v->expected_fingerprint && !streq(v->expected_fingerprint, fp))
                return sx_error(-EBADMSG, "%s: verity signature certificate does not match certificateFingerprint", label);
        return 0;
}

static int verify_one(const char *label, VerityData *v, TrustedCerts *t) {
        const unsigned char *p = v->signature;
        _cleanup_(PKCS7_freep) PKCS7 *p7 = NULL;
        _cleanup_free_ char *hex = NULL, *fp = NULL;
        X509 *signer;
        int idx;

        p7 = d2i_PKCS7(NULL, &p, (long) v->signature_size);
        ERR_clear_error();
        if (!p7 || p != v->signature + v->signature_size || !PKCS7_type_is_signed(p7))
                return sx_error(-EBADMSG, "%s: verity signature (%s) is not a valid DER PKCS#7 signature", label, v->signature_source);
        hex = verity_hexmem(v->root_hash, v->root_hash_size);
        if (!hex)
                return -ENOMEM;
        v->signature_checked = true;
        /* NOINTERN: only our certificates may identify the signer, never ones the image brings. */
        signer = find_signer(p7, t->certs, PKCS7_NOINTERN);
        if (!signer)
                return check_untrusted(label, v, p7, hex);
        if (!pkcs7_verifies(p7, t->certs, hex, PKCS7_NOINTERN))
                return sx_error(-EKEYREJECTED, "%s: verity signature (%s) does not match the root hash %s", label,
                                v->signature_source, hex);
        if (cert_fingerprint(signer, &fp) < 0)
                return -ENOMEM;
        if (v->expected_fingerprint && !streq(v->expected_fingerprint, fp))
                return sx_error(-EBADMSG, "%s: verity signature was made by certificate %s, but certificateFingerprint says %s",
                                label, fp, v->expected_fingerprint);
        idx = sk_X509_find(t->certs, signer);
        free(v->signer_path);
        v->signer_path = idx >= 0 && (size_t) idx < strv_length(t->paths) ? strdup(t->paths[idx]) : NULL;
        free(v->signer_subject);
        v->signer_subject = cert_subject(signer);
        free(v->signer_fingerprint);
        v->signer_fingerprint = TAKE_PTR(fp);
        v->signed_by_trusted = true;
        return 0;
}

int verity_settings_verify_signatures(VeritySettings *s, const char *root) {
        TrustedCerts t = {};
        int r;

        if (!s)
                return -EINVAL;
        if (!s->data[PARTITION_ROOT].signature && !s->data[PARTITION_USR].signature)
                return 0;
        r = load_trusted_certs(root, &t);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(s->data) && r >= 0; i++)
                if (s->data[i].signature && s->data[i].root_hash)
                        r = verify_one(s->image_path, &s->data[i], &t);
        trusted_certs_done(&t);
        return r;
}
#else
int verity_settings_verify_signatures(VeritySettings *s, const char *root) {
        if (!s)
                return -EINVAL;
        return 0;       /* signatures stay unchecked: signed_by_trusted remains false */
}
#endif

/* ---- activation ---- */

static void verity_result_done(VerityResult *r) {
        free(r->root_hash);
        free(r->signer_fingerprint);
        free(r->signer_subject);
        free(r->dm_name);
        *r = (VerityResult) {};
}

#if HAVE_LIBCRYPTSETUP
DEFINE_TRIVIAL_CLEANUP_FUNC(struct crypt_device *, crypt_free);

static __thread char crypt_last_message[512];

static void crypt_log_cb(int level, const char *msg, void *userdata) {
        size_t l;

        if (level != CRYPT_LOG_ERROR && level != CRYPT_LOG_NORMAL) {
                if (sx_debug_enabled && level != CRYPT_LOG_DEBUG_JSON)
                        sx_debug("libcryptsetup: %s", msg);
                return;
        }
        (void) snprintf(crypt_last_message, sizeof(crypt_last_message), "%s", msg);
        l = strlen(crypt_last_message);
        while (l > 0 && crypt_last_message[l - 1] == '\n')
                crypt_last_message[--l] = 0;
        sx_debug("libcryptsetup: %s", crypt_last_message);
}

static void crypt_log_setup(void) {
        static bool done;

        if (!done) {
                crypt_set_log_callback(NULL, crypt_log_cb, NULL);
                if (sx_debug_enabled)
                        crypt_set_debug_level(CRYPT_DEBUG_ALL);
                done = true;
        }
}

/* A verity setup in progress: loop devices for hash and data, and the libcryptsetup context. */
typedef struct VeritySetup {
        LoopDevice *hash, *data;
        struct crypt_device *cd;
} VeritySetup;

static void verity_setup_done(VeritySetup *v) {
        if (v->cd)
                crypt_free(v->cd);
        loop_device_free(v->hash);
        loop_device_free(v->data);
        *v = (VeritySetup) {};
}

static bool fd_is_regular(int fd) {
        struct stat st;

        return fstat(fd, &st) >= 0 && S_ISREG(st.st_mode);
}

static int loop_for(const char *label, const char *what, int fd, uint64_t offset, uint64_t size, LoopDevice **ret) {
        _cleanup_free_ char *why = NULL;
        int r;

        sx_clear_error();
        r = loop_device_make(fd, offset, size, ret);
        if (r >= 0) {
                /* libcryptsetup reads the whole device sequentially in small blocks: a large
                 * readahead keeps the loop worker busy with big requests (about +30% here). */
                (void) ioctl((*ret)->fd, BLKRASET, (unsigned long) VERITY_READAHEAD_SECTORS);
                return r;
        }
        why = strdup(sx_last_error() ?: strerror(-r));
        return sx_error(r, "%s: cannot set up loop device for the verity %s: %s", label, what, strna(why));
}

/* Load the superblock from the hash device, then attach exactly the data area it covers: a data
 * partition larger than the hash tree must not expose unverified bytes. */
static int verity_setup(const char *label, int data_fd, uint64_t data_offset, uint64_t data_size,
                        int hash_fd, uint64_t hash_offset, uint64_t hash_size, size_t root_hash_size,
                        bool userspace_check, VeritySetup *ret) {
        _cleanup_(verity_setup_done) VeritySetup v = {};
        struct crypt_params_verity params = {};
        uint64_t bytes;
        int r;

        crypt_log_setup();
        r = loop_for(label, "hash tree", hash_fd, hash_offset, hash_size, &v.hash);
        if (r < 0)
                return r;
        r = crypt_init(&v.cd, v.hash->node);
        if (r < 0)
                return sx_error(r, "%s: cannot open verity hash device: %s", label, strerror(-r));
        crypt_last_message[0] = 0;
        /* CRYPT_VERITY_CHECK_HASH belongs into the load parameters, not the activation flags (there
         * the same bit means CRYPT_ACTIVATE_NO_UUID and nothing would be checked). */
        r = crypt_load(v.cd, CRYPT_VERITY, &(struct crypt_params_verity) {
                .hash_area_offset = 0,
                .flags = userspace_check ? CRYPT_VERITY_CHECK_HASH : 0,
        });
        if (r < 0)
                return sx_error(r, "%s: no valid verity superblock in the hash tree%s%s", label,
                                crypt_last_message[0] ? ": " : "", crypt_last_message);
        r = crypt_get_verity_info(v.cd, &params);
        if (r < 0)
                return sx_error(r, "%s: cannot read verity parameters: %s", label, strerror(-r));
        if (params.data_block_size == 0 || params.data_block_size % 512 != 0 ||
            params.data_size > UINT64_MAX / params.data_block_size)
                return sx_error(-EBADMSG, "%s: verity superblock has invalid data geometry", label);
        if (params.flags & CRYPT_VERITY_NO_HEADER)
                return sx_error(-EBADMSG, "%s: verity hash tree without superblock is not supported", label);
        if ((size_t) crypt_get_volume_key_size(v.cd) != root_hash_size)
                return sx_error(-EBADMSG, "%s: root hash has %zu bytes, but the verity hash %s produces %i",
                                label, root_hash_size, strna(params.hash_name), crypt_get_volume_key_size(v.cd));
        bytes = params.data_size * params.data_block_size;
        if (bytes == 0 || bytes > data_size)
                return sx_error(-EBADMSG, "%s: verity hash tree covers %" PRIu64 " bytes, but the data area has only %" PRIu64,
                                label, bytes, data_size);
        r = loop_for(label, "data", data_fd, data_offset, bytes, &v.data);
        if (r < 0)
                return r;
        /* The check reads every block once: straight from the image file where the data area starts
         * at its beginning (a bare image), so it comes from the file's page cache rather than
         * through a fresh loop device's; the mount uses the loop device, which reads the same file.
         * (Either way the check is of a snapshot: see --verity=kernel.) */
        char proc[32];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", data_fd);
        if (userspace_check && data_offset == 0 && fd_is_regular(data_fd))
                r = crypt_set_data_device(v.cd, proc);
        else
                r = crypt_set_data_device(v.cd, v.data->node);
        if (r < 0)
                return sx_error(r, "%s: cannot attach verity data device: %s", label, strerror(-r));
        *ret = v;
        v = (VeritySetup) {};
        return 0;
}

static int userspace_check(const char *label, VeritySetup *v, const uint8_t *root_hash, size_t root_hash_size) {
        int r;

        crypt_last_message[0] = 0;
        /* name NULL: nothing is activated; CHECK_HASH (set at load) makes libcryptsetup read every
         * data and hash block and compare the tree up to the root hash. */
        r = crypt_activate_by_volume_key(v->cd, NULL, (const char *) root_hash, root_hash_size, 0);
        if (r == -EPERM || r == -EFAULT)
                return sx_error(-EBADMSG, "%s: verity data does not match the root hash (userspace check)%s%s", label,
                                crypt_last_message[0] ? ": " : "", crypt_last_message);
        if (r < 0)
                return sx_error(r, "%s: userspace verity check failed: %s%s%s", label, strerror(-r),
                                crypt_last_message[0] ? ": " : "", crypt_last_message);
        return 0;
}

int verity_check_userspace(const char *label, int data_fd, uint64_t data_offset, uint64_t data_size,
                           int hash_fd, uint64_t hash_offset, uint64_t hash_size,
                           const uint8_t *root_hash, size_t root_hash_size) {
        _cleanup_(verity_setup_done) VeritySetup v = {};
        int r;

        r = verity_setup(label, data_fd, data_offset, data_size, hash_fd, hash_offset, hash_size, root_hash_size, true, &v);
        if (r < 0)
                return r;
        return userspace_check(label, &v, root_hash, root_hash_size);
}

static int kernel_probe_cached = -1;

bool verity_kernel_available(void) {
        int fd;

        if (kernel_probe_cached >= 0)
                return kernel_probe_cached;
        fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0) {
                close(fd);
                kernel_probe_cached = 1;
        } else
                /* ENOENT/ENODEV/ENXIO: no device-mapper in this kernel (or no node); EACCES: not root */
                kernel_probe_cached = 0;
        return kernel_probe_cached;
}

static int open_mapper(const char *label, const char *name, int *ret) {
        _cleanup_free_ char *node = strjoin("/dev/mapper/", name);
        int fd;

        if (!node)
                return -ENOMEM;
        fd = open(node, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return sx_error(negative_errno(), "%s: cannot open %s: %m", label, node);
        *ret = fd;
        return 0;
}

/* An existing device of that name is reused only if it carries the same root hash; the name
 * already encodes the image inode. Returns 1 if reused, 0 if there is none. */
static int reuse_existing(const char *label, const char *name, const uint8_t *hash, size_t size, int *ret_fd) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        char key[ROOT_HASH_MAX];
        size_t n = sizeof(key);
        int r;

        r = crypt_init_by_name(&cd, name);
        if (r == -ENODEV)
                return 0;
        if (r < 0)
                return sx_error(r, "%s: cannot inspect existing device-mapper device %s: %s", label, name, strerror(-r));
        if (!streq(strempty(crypt_get_type(cd)), CRYPT_VERITY) ||
            crypt_volume_key_get(cd, CRYPT_ANY_SLOT, key, &n, NULL, 0) < 0 || n != size || memcmp(key, hash, size) != 0)
                return sx_error(-EEXIST, "%s: device-mapper device %s already exists for something else", label, name);
        r = open_mapper(label, name, ret_fd);
        return r < 0 ? r : 1;
}

static int kernel_activate(const DissectedImage *m, const VerityData *v, VeritySetup *vs, VerityResult *res, int *ret_fd) {
        _cleanup_free_ char *hex = verity_hexmem(v->root_hash, v->root_hash_size);
        char name[128];
        struct stat st;
        int r;

        if (!hex)
                return -ENOMEM;
        if (fstat(m->fd, &st) < 0)
                return negative_errno();
        (void) snprintf(name, sizeof(name), "sysext-idmap-%.16s-%" PRIx64 "-%" PRIx64, hex, (uint64_t) st.st_dev, (uint64_t) st.st_ino);
        r = reuse_existing(m->path, name, v->root_hash, v->root_hash_size, ret_fd);
        if (r < 0)
                return r;
        res->dm_name = strdup(name);
        if (!res->dm_name)
                return -ENOMEM;
        if (r > 0)
                return 0;
        crypt_last_message[0] = 0;
        r = -ENOKEY;
        /* The kernel checks the signature only if its keyring holds the certificate; we already did
         * in userspace, so an unknown key is not fatal. */
        if (v->signature && v->signed_by_trusted)
                r = crypt_activate_by_signed_key(vs->cd, name, (const char *) v->root_hash, v->root_hash_size,
                                                 (const char *) v->signature, v->signature_size, CRYPT_ACTIVATE_READONLY);
        if (r < 0)
                r = crypt_activate_by_volume_key(vs->cd, name, (const char *) v->root_hash, v->root_hash_size,
                                                 CRYPT_ACTIVATE_READONLY);
        if (r == -EEXIST)
                return sx_error(r, "%s: device-mapper device %s appeared concurrently", m->path, name);
        if (r < 0)
                return sx_error(r, "%s: cannot activate dm-verity device %s: %s%s%s", m->path, name, strerror(-r),
                                crypt_last_message[0] ? ": " : "", crypt_last_message);
        res->dm_owned = true;
        return open_mapper(m->path, name, ret_fd);
}

/* Where the hash tree lives: the verity partition of a GPT image, or NAME.verity. */
static int hash_source(const DissectedImage *m, PartitionDesignator d, const VerityData *v,
                       int *ret_fd, uint64_t *ret_offset, uint64_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (m->kind == DISSECT_GPT) {
                const DissectedPartition *p = &m->partitions[verity_of(d)];
                if (!p->found)
                        return sx_error(-ENXIO, "%s: no %s partition", m->path, partition_designator_to_string(verity_of(d)));
                *ret_fd = -EBADF;       /* use m->fd */
                *ret_offset = p->offset;
                *ret_size = p->size;
                return 0;
        }
        if (v->hash_fd < 0)
                return sx_error(-ENOENT, "%s: no verity hash tree file", m->path);
        fd = fcntl(v->hash_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0 || fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || st.st_size <= 0)
                return sx_error(-EBADFD, "%s: %s is not a regular, non-empty file", m->path, v->hash_path);
        *ret_fd = TAKE_FD(fd);
        *ret_offset = 0;
        *ret_size = (uint64_t) st.st_size;
        return 0;
}

static int fill_result(const VerityData *v, VerityResult *res) {
        res->has_verity = true;
        res->root_hash = verity_hexmem(v->root_hash, v->root_hash_size);
        res->is_signed = v->signed_by_trusted;
        if (v->signed_by_trusted) {
                res->signer_fingerprint = v->signer_fingerprint ? strdup(v->signer_fingerprint) : NULL;
                res->signer_subject = v->signer_subject ? strdup(v->signer_subject) : NULL;
        }
        return res->root_hash ? 0 : -ENOMEM;
}

static int resolve_mode(const char *label, VerityMode mode, VerityMode *ret) {
        if (mode == VERITY_MODE_AUTO) {
                *ret = verity_kernel_available() ? VERITY_MODE_KERNEL : VERITY_MODE_USERSPACE;
                return 0;
        }
        if (mode == VERITY_MODE_KERNEL && !verity_kernel_available())
                return sx_error(-ENODEV, "%s: dm-verity is not available (no device-mapper in this kernel: /dev/mapper/control missing); "
                                "use --verity=userspace or --verity=auto", label);
        *ret = mode;
        return 0;
}


static int copy_range(int from, uint64_t offset, uint64_t size, int to, uint64_t to_offset) {
        _cleanup_free_ uint8_t *buf = malloc(PRIVATE_COPY_CHUNK);

        if (!buf)
                return -ENOMEM;
        while (size > 0) {
                size_t want = size < PRIVATE_COPY_CHUNK ? (size_t) size : PRIVATE_COPY_CHUNK;
                ssize_t n = pread(from, buf, want, (off_t) offset);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -ENODATA;        /* the file shrank under us */
                for (ssize_t done = 0; done < n;) {
                        ssize_t w = pwrite(to, buf + done, (size_t) (n - done), (off_t) (to_offset + (uint64_t) done));
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                return negative_errno();
                        done += w;
                }
                offset += (uint64_t) n;
                to_offset += (uint64_t) n;
                size -= (uint64_t) n;
        }
        return 0;
}

/* The bytes checked must be the bytes served. Whoever may write the image file could change it
 * after a userspace check, and the kernel would mount the new bytes: copy the data area and the
 * hash tree into a memfd nobody else holds, seal it against any change, and check and serve that.
 * The hash tree follows the data at the next 4 KiB boundary. */
static int private_copy(const char *label, int data_fd, uint64_t data_offset, uint64_t data_size,
                        int hash_fd, uint64_t hash_offset, uint64_t hash_size, uint64_t max,
                        int *ret_fd, uint64_t *ret_hash_offset) {
        _cleanup_close_ int fd = -EBADF;
        uint64_t at = (data_size + 4095) / 4096 * 4096;
        char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX];
        int r;

        if (data_size > UINT64_MAX - 8192 - hash_size || at + hash_size > max)
                return sx_error(-EFBIG, "%s: someone other than root may write this image and dm-verity is not available, so it "
                                "would be served from a private copy, but its %s exceed the limit of %s", label,
                                format_bytes(a, sizeof(a), data_size + hash_size), format_bytes(b, sizeof(b), max));
        fd = memfd_create("sysext-idmap-verified", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return sx_error(negative_errno(), "%s: cannot create a private copy: memfd_create: %m", label);
        if (ftruncate(fd, (off_t) (at + hash_size)) < 0)
                return sx_error(negative_errno(), "%s: cannot size the private copy: %m", label);
        r = copy_range(data_fd, data_offset, data_size, fd, 0);
        if (r >= 0)
                r = copy_range(hash_fd, hash_offset, hash_size, fd, at);
        if (r < 0)
                return sx_error(r, "%s: cannot copy the image into a private copy: %s", label,
                                r == -ENODATA ? "the file shrank while being copied" : strerror(-r));
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return sx_error(negative_errno(), "%s: cannot seal the private copy: %m", label);
        *ret_fd = TAKE_FD(fd);
        *ret_hash_offset = at;
        return 0;
}

static int open_partition_verified(const DissectedImage *m, PartitionDesignator d, VerityContext *c, int *ret_block_fd) {
        _cleanup_(verity_setup_done) VeritySetup vs = {};
        _cleanup_close_ int hash_fd = -EBADF, fd = -EBADF, copy_fd = -EBADF;
        const VerityData *v;
        VerityResult *res;
        uint64_t hoff = 0, hsize = 0;
        VerityMode mode = VERITY_MODE_OFF;
        int r;

        if (!m || !c || !ret_block_fd)
                return -EINVAL;
        if (!is_data_designator(d))
                return -EOPNOTSUPP;
        res = &c->result[d];
        verity_result_done(res);
        v = verity_settings_get(c->settings, d);
        if (!v || !v->root_hash || c->mode == VERITY_MODE_OFF) {
                if (v && v->root_hash)
                        return fill_result(v, res) < 0 ? -ENOMEM : -EOPNOTSUPP;
                return -EOPNOTSUPP;
        }
        r = fill_result(v, res);
        if (r < 0)
                return r;
        r = resolve_mode(m->path, c->mode, &mode);
        if (r < 0)
                return r;
        r = hash_source(m, d, v, &hash_fd, &hoff, &hsize);
        if (r < 0)
                return r;
        int data_fd = m->fd;
        uint64_t doff = m->partitions[d].offset, dsize = m->partitions[d].size;
        if (hash_fd < 0)
                hash_fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 3);
        if (hash_fd < 0)
                return negative_errno();
        if (mode != VERITY_MODE_KERNEL && c->private_copy) {
                r = private_copy(m->path, data_fd, doff, dsize, hash_fd, hoff, hsize, c->private_copy_max, &copy_fd, &hoff);
                if (r < 0)
                        return r;
                data_fd = copy_fd;
                doff = 0;
                safe_close(hash_fd);
                hash_fd = fcntl(copy_fd, F_DUPFD_CLOEXEC, 3);
                if (hash_fd < 0)
                        return negative_errno();
        }
        r = verity_setup(m->path, data_fd, doff, dsize, hash_fd, hoff, hsize, v->root_hash_size, mode != VERITY_MODE_KERNEL, &vs);
        if (r < 0)
                return r;
        if (mode == VERITY_MODE_KERNEL) {
                r = kernel_activate(m, v, &vs, res, &fd);
                if (r < 0)
                        return r;
                res->checked_by = VERITY_CHECKED_KERNEL;
        } else {
                r = userspace_check(m->path, &vs, v->root_hash, v->root_hash_size);
                if (r < 0)
                        return r;
                fd = fcntl(vs.data->fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return negative_errno();
                res->checked_by = copy_fd >= 0 ? VERITY_CHECKED_USERSPACE_COPY : VERITY_CHECKED_USERSPACE;
        }
        *ret_block_fd = TAKE_FD(fd);
        return 0;
}

int verity_context_relinquish(VerityContext *c) {
        int ret = 0;

        for (size_t i = 0; c && i < ELEMENTSOF(c->result); i++) {
                VerityResult *res = &c->result[i];
                int r;

                if (!res->dm_name || res->relinquished)
                        continue;
                r = crypt_deactivate_by_name(NULL, res->dm_name, CRYPT_DEACTIVATE_DEFERRED);
                if (r < 0 && ret == 0)
                        ret = sx_error(r, "%s: cannot mark %s for deferred removal: %s", c->settings ? c->settings->image_path : "image",
                                       res->dm_name, strerror(-r));
                else
                        res->relinquished = true;
        }
        return ret;
}

static void deactivate_now(VerityResult *res) {
        if (!res->dm_name || !res->dm_owned || res->relinquished)
                return;
        /* A mount made from it and dropped just now may still hold it: then let the kernel do it. */
        if (crypt_deactivate_by_name(NULL, res->dm_name, 0) == -EBUSY)
                (void) crypt_deactivate_by_name(NULL, res->dm_name, CRYPT_DEACTIVATE_DEFERRED);
}
#else
bool verity_kernel_available(void) {
        return false;
}

int verity_check_userspace(const char *label, int data_fd, uint64_t data_offset, uint64_t data_size,
                           int hash_fd, uint64_t hash_offset, uint64_t hash_size,
                           const uint8_t *root_hash, size_t root_hash_size) {
        return sx_error(-EOPNOTSUPP, "%s: built without libcryptsetup, cannot check verity", label);
}


static int open_partition_verified(const DissectedImage *m, PartitionDesignator d, VerityContext *c, int *ret_block_fd) {
        const VerityData *v = c ? verity_settings_get(c->settings, d) : NULL;

        if (!v || !v->root_hash || c->mode == VERITY_MODE_OFF)
                return -EOPNOTSUPP;
        return sx_error(-EOPNOTSUPP, "%s: built without libcryptsetup, cannot check verity", m->path);
}

int verity_context_relinquish(VerityContext *c) {
        return 0;
}

static void deactivate_now(VerityResult *res) {
}
#endif

int verity_open_partition(const DissectedImage *m, PartitionDesignator d, void *userdata, int *ret_block_fd) {
        VerityContext *c = userdata;
        const VerityData *v = c ? verity_settings_get(c->settings, d) : NULL;
        int r;

        r = open_partition_verified(m, d, c, ret_block_fd);
        /* -EOPNOTSUPP tells dissect to mount the plain loop device: only ever when there is nothing
         * to verify. Once a root hash is known, any failure must stop the mount. */
        if (r == -EOPNOTSUPP && v && v->root_hash && c->mode != VERITY_MODE_OFF && is_data_designator(d))
                return sx_error(-EIO, "%s: verity could not be set up: %s", m ? m->path : "image",
                                sx_last_error() ?: strerror(EOPNOTSUPP));
        return r;
}

void verity_context_done(VerityContext *c) {
        if (!c)
                return;
        for (size_t i = 0; i < ELEMENTSOF(c->result); i++) {
                deactivate_now(&c->result[i]);
                verity_result_done(&c->result[i]);
        }
}
