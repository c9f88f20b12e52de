/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Trust for extension images: where the verity root hash and its signature come from (signature
 * partition, sidecar files, xattrs), checking the PKCS#7 signature against certificates in verity.d
 * directories, and opening a data partition either through dm-verity (kernel) or after checking the
 * whole data area against the hash tree in userspace (kernels without device-mapper). */

#include <stdbool.h>
#include <stdint.h>

#include "dissect.h"
#include "loop.h"

typedef enum VerityMode {
        VERITY_MODE_AUTO,       /* kernel if dm-verity is available, else userspace */
        VERITY_MODE_KERNEL,     /* dm-verity, fail without it */
        VERITY_MODE_USERSPACE,  /* check the whole data area once, then mount the plain loop device */
        VERITY_MODE_OFF,        /* do not verify; the image counts as unverified */
        _VERITY_MODE_MAX,
        _VERITY_MODE_INVALID = -EINVAL,
} VerityMode;

const char *verity_mode_to_string(VerityMode m);
VerityMode verity_mode_from_string(const char *s);

typedef enum VerityCheckedBy {
        VERITY_CHECKED_NONE,
        VERITY_CHECKED_KERNEL,
        VERITY_CHECKED_USERSPACE,
        VERITY_CHECKED_USERSPACE_COPY,  /* checked in userspace and served from a private sealed copy */
        VERITY_CHECKED_BROKER,          /* set up by the broker (sysext-idmapd), shared with its other users */
        _VERITY_CHECKED_MAX,
} VerityCheckedBy;

const char *verity_checked_by_to_string(VerityCheckedBy c);

/* What the image policy sees per designator (root or usr). */
typedef enum VerityProtection {
        VERITY_PROTECTION_ABSENT,       /* no such partition */
        VERITY_PROTECTION_UNPROTECTED,  /* partition present, no root hash known */
        VERITY_PROTECTION_VERITY,       /* root hash known; no signature, or not by a trusted certificate */
        VERITY_PROTECTION_SIGNED,       /* root hash signed by a trusted certificate (verified) */
        _VERITY_PROTECTION_MAX,
} VerityProtection;

const char *verity_protection_to_string(VerityProtection p);

/* Verity data of one data partition (root or usr). Sources are human readable: "signature partition",
 * "sidecar /x/y.usrhash", "xattr user.verity.usrhash". */
typedef struct VerityData {
        uint8_t *root_hash;
        size_t root_hash_size;
        char *root_hash_source;
        uint8_t *signature;             /* DER PKCS#7, detached, over the lowercase hex root hash */
        size_t signature_size;
        char *signature_source;
        char *expected_fingerprint;     /* "certificateFingerprint" from the signature JSON, lowercase hex */
        char *hash_path;                /* NAME.verity beside a bare filesystem image, else NULL */
        int hash_fd;                    /* that file, opened once by verity_settings_load(), or -EBADF */

        /* filled by verity_settings_verify_signatures() */
        bool signature_checked;
        bool signed_by_trusted;
        char *signer_fingerprint;       /* sha256 of the DER certificate, lowercase hex */
        char *signer_subject;
        char *signer_path;              /* the .crt file that matched */
} VerityData;

typedef struct VeritySettings {
        char *image_path;
        VerityData data[2];             /* indexed by PARTITION_ROOT, PARTITION_USR */
} VeritySettings;

VeritySettings *verity_settings_free(VeritySettings *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(VeritySettings *, verity_settings_free);

/* The VerityData for a data designator (root/usr), or NULL for anything else. */
const VerityData *verity_settings_get(const VeritySettings *s, PartitionDesignator d);

/* Collect root hashes, signatures and the hash file for image m (image_path: the file it was opened
 * from, for sidecars and xattrs; may differ from m->path only in tests). For GPT images the data and
 * verity partition UUIDs must match the root hash. Directories give empty settings. Errors name the
 * image. Sidecars are opened with the caller's file system ids; no_symlinks (a path a user
 * controls): a sidecar that is a symlink, or reached through one, is refused rather than followed. */
int verity_settings_load(const DissectedImage *m, const char *image_path, bool no_symlinks, VeritySettings **ret);

/* Parse the contents of a verity signature partition (size bytes: a JSON object with rootHash,
 * signature (base64 DER PKCS#7) and optionally certificateFingerprint, NUL padded). Pure: reads
 * nothing else; used by verity_settings_load() and the fuzzer. label names the image in messages.
 * Returns 0 and the decoded fields (*ret_fingerprint is NULL if absent), or -EBADMSG/-EFBIG
 * with a message. */
int verity_signature_json_parse(const char *label, const char *buf, size_t size,
                                uint8_t **ret_root_hash, size_t *ret_root_hash_size,
                                uint8_t **ret_signature, size_t *ret_signature_size,
                                char **ret_fingerprint);

/* Check the signatures in s against the certificates in the verity.d directories (below root if
 * given; $SYSEXT_IDMAP_VERITY_DIRS=dir1:dir2 replaces the list, for tests). A signature by a
 * certificate that is not trusted leaves signed_by_trusted=false; a signature that is malformed, does
 * not verify, or whose signer differs from certificateFingerprint is refused. */
int verity_settings_verify_signatures(VeritySettings *s, const char *root);

/* Protection class of designator d (root/usr) of image m with settings s (s may be NULL). */
VerityProtection verity_protection(const DissectedImage *m, const VeritySettings *s, PartitionDesignator d);

/* Per-open state, userdata for verity_open_partition(). */
typedef struct VerityResult {
        bool has_verity;                /* a root hash was known for this partition */
        VerityCheckedBy checked_by;
        char *root_hash;                /* lowercase hex, or NULL */
        bool is_signed;                 /* signed by a trusted certificate */
        char *signer_fingerprint, *signer_subject;
        char *dm_name;                  /* dm device we activated or reused (kernel mode) */
        bool dm_owned;                  /* we created it: remove it on failure */
        bool relinquished;              /* marked for deferred removal */
} VerityResult;

typedef struct VerityContext {
        const VeritySettings *settings;
        VerityMode mode;
        /* Without dm-verity, check and serve a private sealed copy (memfd) of the data area and hash
         * tree instead of the image file, which someone else may rewrite after the check; refuse an
         * image of more than private_copy_max bytes. */
        bool private_copy;
        uint64_t private_copy_max;
        VerityResult result[2];         /* indexed by PARTITION_ROOT, PARTITION_USR */
} VerityContext;

#define VERITY_CONTEXT_INIT(s, m) ((VerityContext) { .settings = (s), .mode = (m) })

/* Removes dm devices that were activated but not relinquished (i.e. on failure), frees results. */
void verity_context_done(VerityContext *c);

/* Matches DissectOpenPartition: userdata is a VerityContext. Returns -EOPNOTSUPP (mount the plain loop
 * device) when there is no root hash or mode is off; otherwise an O_RDONLY fd of the verified block
 * device (/dev/mapper/NAME, or the data loop device after a full userspace check), or a negative errno
 * with a message naming the image. */
int verity_open_partition(const DissectedImage *m, PartitionDesignator d, void *userdata, int *ret_block_fd);

/* Call right after dissected_image_mount() succeeded: marks dm devices for deferred removal, so they
 * disappear with the last mount. */
int verity_context_relinquish(VerityContext *c);

/* What verity_open_partition() records before it checks: root hash and signer of v. */
int verity_result_fill(const VerityData *v, VerityResult *res);

/* Whether dm-verity activation is possible here (cached). */
bool verity_kernel_available(void);

/* The userspace check on its own (also used by the benchmark): data_fd/hash_fd are files or block
 * devices; hash_offset is where the verity superblock lies in hash_fd. label names the image. */
int verity_check_userspace(const char *label, int data_fd, uint64_t data_offset, uint64_t data_size,
                           int hash_fd, uint64_t hash_offset, uint64_t hash_size,
                           const uint8_t *root_hash, size_t root_hash_size);

char *verity_hexmem(const uint8_t *p, size_t n);
