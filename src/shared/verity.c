/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* dm-verity for extension images, the way systemd finds and uses it. This file holds the module's
 * state and decides what to open and how; the rest is split by what it needs:
 *   verity-roothash.c  where root hashes, signatures and trusted certificates come from (json-c)
 *   verity-sig.c       PKCS#7 signature checks (OpenSSL; built only with it)
 *   verity-setup.c     the hash tree superblock, the userspace check, dm-verity (libcryptsetup;
 *                      built only with it)
 * On kernels without device-mapper the data is checked as a whole against the hash tree before
 * the plain loop device is mounted, from a private sealed copy if someone else may write the
 * image. Everything read from the image is hostile. */

#include <sys/mman.h>

#include "verity-internal.h"
#include "verity-setup.h"
#include "verity-sig.h"

/* Copying an image into its private copy, per read. */
#define PRIVATE_COPY_CHUNK (1024U * 1024U)
/* In the private copy, the hash tree starts at the next multiple of this after the data. */
#define PRIVATE_COPY_ALIGN 4096U

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
                [VERITY_CHECKED_BROKER]    = "broker",
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

/* ---- settings (loaded by verity-roothash.c, signatures checked by verity-sig.c) ---- */

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
        if (!s || !verity_is_data_designator(d))
                return NULL;
        return &s->data[d];
}

int verity_settings_verify_signatures(VeritySettings *s, const char *root) {
        if (!s)
                return -EINVAL;
        if (!s->data[PARTITION_ROOT].signature && !s->data[PARTITION_USR].signature)
                return 0;
        return verity_sig_verify(s, root);
}

VerityProtection verity_protection(const DissectedImage *m, const VeritySettings *s, PartitionDesignator d) {
        const VerityData *v = verity_settings_get(s, d);

        /* A directory is a root without any protection, as a plain file system image is. */
        if (!m || !verity_is_data_designator(d) || !m->partitions[d].found)
                return VERITY_PROTECTION_ABSENT;
        if (!v || !v->root_hash)
                return VERITY_PROTECTION_UNPROTECTED;
        return v->signed_by_trusted ? VERITY_PROTECTION_SIGNED : VERITY_PROTECTION_VERITY;
}

/* ---- checking and opening (the work itself is verity-setup.c's) ---- */

bool verity_kernel_available(void) {
        return verity_setup_kernel_available();
}

int verity_check_userspace(const char *label, int data_fd, uint64_t data_offset, uint64_t data_size,
                           int hash_fd, uint64_t hash_offset, uint64_t hash_size,
                           const uint8_t *root_hash, size_t root_hash_size) {
        _cleanup_(verity_setup_freep) VeritySetup *v = NULL;
        const VerityArea data = { data_fd, data_offset, data_size }, hash = { hash_fd, hash_offset, hash_size };
        int r;

        r = verity_setup_supported(label);
        if (r < 0)
                return r;
        r = verity_setup_new(label, &data, &hash, root_hash_size, true, &v);
        if (r < 0)
                return r;
        return verity_setup_check(label, v, root_hash, root_hash_size);
}

static void verity_result_done(VerityResult *r) {
        free(r->root_hash);
        free(r->signer_fingerprint);
        free(r->signer_subject);
        free(r->dm_name);
        *r = (VerityResult) {};
}

/* The data area of designator d, and its hash tree: the verity partition of a GPT image, or
 * NAME.verity. ret_hash->fd is a new fd the caller closes. */
static int verity_areas(const DissectedImage *m, PartitionDesignator d, const VerityData *v,
                        VerityArea *ret_data, VerityArea *ret_hash) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        assert(m && v && ret_data && ret_hash);
        if (m->kind == DISSECT_GPT) {
                const DissectedPartition *p = &m->partitions[verity_partition_of(d)];
                if (!p->found)
                        return sx_error(-ENXIO, "%s: no %s partition", m->path,
                                        partition_designator_to_string(verity_partition_of(d)));
                fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return negative_errno();
                *ret_hash = (VerityArea) { TAKE_FD(fd), p->offset, p->size };
        } else {
                if (v->hash_fd < 0)
                        return sx_error(-ENOENT, "%s: no verity hash tree file", m->path);
                fd = fcntl(v->hash_fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0 || fstat(fd, &st) < 0)
                        return negative_errno();
                if (!S_ISREG(st.st_mode) || st.st_size <= 0)
                        return sx_error(-EBADFD, "%s: %s is not a regular, non-empty file", m->path, v->hash_path);
                *ret_hash = (VerityArea) { TAKE_FD(fd), 0, (uint64_t) st.st_size };
        }
        *ret_data = (VerityArea) { m->fd, m->partitions[d].offset, m->partitions[d].size };
        return 0;
}

int verity_result_fill(const VerityData *v, VerityResult *res) {
        assert(v && res);
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
        assert(ret);
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

/* ---- the private sealed copy (libc only) ---- */

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
 * The hash tree follows the data at the next PRIVATE_COPY_ALIGN boundary. On success data and hash
 * describe the copy (hash->fd: a new fd of it, the old one closed), and *ret_fd is the memfd. */
static int private_copy(const char *label, VerityArea *data, VerityArea *hash, uint64_t max, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF, hash_fd = -EBADF;
        uint64_t at;
        char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX];
        int r;

        assert(label && data && hash && ret_fd);
        at = (data->size + PRIVATE_COPY_ALIGN - 1) / PRIVATE_COPY_ALIGN * PRIVATE_COPY_ALIGN;
        if (data->size > UINT64_MAX - 2 * PRIVATE_COPY_ALIGN - hash->size || at + hash->size > max)
                return sx_error(-EFBIG, "%s: someone other than root may write this image and dm-verity is not available, so it "
                                "would be served from a private copy, but its %s exceed the limit of %s", label,
                                format_bytes(a, sizeof(a), data->size + hash->size), format_bytes(b, sizeof(b), max));
        fd = memfd_create("sysext-idmap-verified", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return sx_error(negative_errno(), "%s: cannot create a private copy: memfd_create: %m", label);
        if (ftruncate(fd, (off_t) (at + hash->size)) < 0)
                return sx_error(negative_errno(), "%s: cannot size the private copy: %m", label);
        r = copy_range(data->fd, data->offset, data->size, fd, 0);
        if (r >= 0)
                r = copy_range(hash->fd, hash->offset, hash->size, fd, at);
        if (r == -ENODATA)
                return sx_error(r, "%s: cannot copy the image into a private copy: the file shrank while being copied", label);
        if (r < 0)
                return sx_error(r, "%s: cannot copy the image into a private copy: %m", label);
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return sx_error(negative_errno(), "%s: cannot seal the private copy: %m", label);
        hash_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (hash_fd < 0)
                return negative_errno();
        safe_close(hash->fd);
        *hash = (VerityArea) { TAKE_FD(hash_fd), at, hash->size };
        *data = (VerityArea) { fd, 0, data->size };
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Check (userspace) or activate (kernel) data against v's root hash; an fd of what is verified. */
static int verify_and_open(const DissectedImage *m, const VerityData *v, VerityMode mode,
                           const VerityArea *data, const VerityArea *hash, VerityResult *res, int *ret_fd) {
        _cleanup_(verity_setup_freep) VeritySetup *vs = NULL;
        int r;

        assert(m && v && data && hash && res && ret_fd);
        r = verity_setup_new(m->path, data, hash, v->root_hash_size, mode != VERITY_MODE_KERNEL, &vs);
        if (r < 0)
                return r;
        if (mode == VERITY_MODE_KERNEL) {
                r = verity_setup_activate(m, v, vs, res, ret_fd);
                if (r < 0)
                        return r;
                res->checked_by = VERITY_CHECKED_KERNEL;
                return 0;
        }
        r = verity_setup_check(m->path, vs, v->root_hash, v->root_hash_size);
        if (r < 0)
                return r;
        r = verity_setup_data_fd(vs);
        if (r < 0)
                return r;
        *ret_fd = r;
        res->checked_by = VERITY_CHECKED_USERSPACE;
        return 0;
}

/* A root hash is known and verification is on. */
static int open_partition_checked(const DissectedImage *m, PartitionDesignator d, VerityContext *c,
                                  const VerityData *v, int *ret_block_fd) {
        _cleanup_close_ int copy_fd = -EBADF;
        VerityResult *res = &c->result[d];
        VerityMode mode = VERITY_MODE_OFF;
        VerityArea data = { .fd = -EBADF }, hash = { .fd = -EBADF };
        int r;

        r = verity_setup_supported(m->path);
        if (r < 0)
                return r;
        r = verity_result_fill(v, res);
        if (r < 0)
                return r;
        r = resolve_mode(m->path, c->mode, &mode);
        if (r < 0)
                return r;
        r = verity_areas(m, d, v, &data, &hash);
        if (r >= 0 && mode != VERITY_MODE_KERNEL && c->private_copy)
                r = private_copy(m->path, &data, &hash, c->private_copy_max, &copy_fd);
        if (r >= 0)
                r = verify_and_open(m, v, mode, &data, &hash, res, ret_block_fd);
        safe_close(hash.fd);
        if (r < 0)
                return r;
        if (copy_fd >= 0)
                res->checked_by = VERITY_CHECKED_USERSPACE_COPY;
        return 0;
}

static int open_partition_verified(const DissectedImage *m, PartitionDesignator d, VerityContext *c, int *ret_block_fd) {
        const VerityData *v;
        VerityResult *res;

        if (!m || !c || !ret_block_fd)
                return -EINVAL;
        if (!verity_is_data_designator(d))
                return -EOPNOTSUPP;
        res = &c->result[d];
        verity_result_done(res);
        v = verity_settings_get(c->settings, d);
        if (!v || !v->root_hash)
                return -EOPNOTSUPP;
        if (c->mode == VERITY_MODE_OFF)
                return verity_result_fill(v, res) < 0 ? -ENOMEM : -EOPNOTSUPP;
        return open_partition_checked(m, d, c, v, ret_block_fd);
}

int verity_open_partition(const DissectedImage *m, PartitionDesignator d, void *userdata, int *ret_block_fd) {
        VerityContext *c = userdata;
        const VerityData *v = c ? verity_settings_get(c->settings, d) : NULL;
        int r;

        r = open_partition_verified(m, d, c, ret_block_fd);
        /* -EOPNOTSUPP tells dissect to mount the plain loop device: only ever when there is nothing
         * to verify. Once a root hash is known, any failure must stop the mount. */
        if (r == -EOPNOTSUPP && v && v->root_hash && c->mode != VERITY_MODE_OFF && verity_is_data_designator(d)) {
                /* Context in front of the callee's message, then recorded again for the errno we
                 * return, so that our callers' sx_error_prefix(-EIO, …) keeps it. */
                (void) sx_error_prefix(r, "%s: verity could not be set up", m ? m->path : "image");
                return sx_error(-EIO, "%s", strna(sx_last_error()));
        }
        return r;
}

/* ---- dm devices' lifetime ---- */

int verity_context_relinquish(VerityContext *c) {
        int ret = 0;

        for (size_t i = 0; c && i < ELEMENTSOF(c->result); i++) {
                VerityResult *res = &c->result[i];
                int r;

                if (!res->dm_name || res->relinquished)
                        continue;
                r = verity_setup_deactivate(res->dm_name, /* deferred= */ true);
                if (r < 0 && ret == 0)
                        ret = sx_error(r, "%s: cannot mark %s for deferred removal: %m",
                                       c->settings ? c->settings->image_path : "image", res->dm_name);
                else
                        res->relinquished = true;
        }
        return ret;
}

static void deactivate_now(VerityResult *res) {
        if (!res->dm_name || !res->dm_owned || res->relinquished)
                return;
        /* A mount made from it and dropped just now may still hold it: then let the kernel do it. */
        if (verity_setup_deactivate(res->dm_name, /* deferred= */ false) == -EBUSY)
                (void) verity_setup_deactivate(res->dm_name, /* deferred= */ true);
}

void verity_context_done(VerityContext *c) {
        if (!c)
                return;
        for (size_t i = 0; i < ELEMENTSOF(c->result); i++) {
                deactivate_now(&c->result[i]);
                verity_result_done(&c->result[i]);
        }
}
