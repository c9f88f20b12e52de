/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Image dissection policy, compatible with systemd.image-policy(7):
 *
 *     designator=flag+flag:designator=flag:=default-flags
 *
 * plus the whole-policy shortcuts "*" (everything open), "-" or "" (everything ignored) and "~"
 * (everything absent). All designators systemd knows are parsed, although sysext only ever checks
 * root, usr and their verity/signature partitions. Parse errors use systemd's errnos:
 *     -EINVAL   syntax (an entry without '=', an empty entry)
 *     -EBADSLT  unknown partition designator
 *     -EBADRQC  unknown (or empty) policy flag
 *     -ENOTUNIQ a designator, or the default, given twice
 * and record a message naming the offending word (sx_last_error()). */

#include <stdbool.h>

#include "util.h"

typedef enum PartitionPolicyFlags {
        /* How the partition may be used: at least one of these must match what the image has. */
        PARTITION_POLICY_VERITY         = 1 << 0,  /* exists, used with a verity hash partition */
        PARTITION_POLICY_SIGNED         = 1 << 1,  /* exists, used with verity + signed root hash */
        PARTITION_POLICY_ENCRYPTED      = 1 << 2,  /* exists, LUKS */
        PARTITION_POLICY_UNPROTECTED    = 1 << 3,  /* exists, used without verity or LUKS */
        PARTITION_POLICY_UNUSED         = 1 << 4,  /* exists, not used */
        PARTITION_POLICY_ABSENT         = 1 << 5,  /* does not exist */
        PARTITION_POLICY_OPEN           = PARTITION_POLICY_VERITY | PARTITION_POLICY_SIGNED |
                                          PARTITION_POLICY_ENCRYPTED | PARTITION_POLICY_UNPROTECTED |
                                          PARTITION_POLICY_UNUSED | PARTITION_POLICY_ABSENT,
        PARTITION_POLICY_IGNORE         = PARTITION_POLICY_UNUSED | PARTITION_POLICY_ABSENT,
        _PARTITION_POLICY_USE_MASK      = PARTITION_POLICY_OPEN,

        /* GPT partition attribute bits. Neither or both of a pair set = don't care. */
        PARTITION_POLICY_READ_ONLY_OFF  = 1 << 6,
        PARTITION_POLICY_READ_ONLY_ON   = 1 << 7,
        _PARTITION_POLICY_READ_ONLY_MASK = PARTITION_POLICY_READ_ONLY_OFF | PARTITION_POLICY_READ_ONLY_ON,
        PARTITION_POLICY_GROWFS_OFF     = 1 << 8,
        PARTITION_POLICY_GROWFS_ON      = 1 << 9,
        _PARTITION_POLICY_GROWFS_MASK   = PARTITION_POLICY_GROWFS_OFF | PARTITION_POLICY_GROWFS_ON,
        _PARTITION_POLICY_PFLAGS_MASK   = _PARTITION_POLICY_READ_ONLY_MASK | _PARTITION_POLICY_GROWFS_MASK,

        /* Allowed file systems (newer systemd). None set = any file system. */
        PARTITION_POLICY_BTRFS          = 1 << 10,
        PARTITION_POLICY_EROFS          = 1 << 11,
        PARTITION_POLICY_EXT4           = 1 << 12,
        PARTITION_POLICY_F2FS           = 1 << 13,
        PARTITION_POLICY_SQUASHFS       = 1 << 14,
        PARTITION_POLICY_VFAT           = 1 << 15,
        PARTITION_POLICY_XFS            = 1 << 16,
        _PARTITION_POLICY_FSTYPE_MASK   = PARTITION_POLICY_BTRFS | PARTITION_POLICY_EROFS |
                                          PARTITION_POLICY_EXT4 | PARTITION_POLICY_F2FS |
                                          PARTITION_POLICY_SQUASHFS | PARTITION_POLICY_VFAT |
                                          PARTITION_POLICY_XFS,

        _PARTITION_POLICY_MASK          = _PARTITION_POLICY_USE_MASK | _PARTITION_POLICY_PFLAGS_MASK |
                                          _PARTITION_POLICY_FSTYPE_MASK,
        _PARTITION_POLICY_FLAGS_INVALID = -EINVAL,
        _PARTITION_POLICY_FLAGS_ERRNO_MIN = -4095, /* the whole errno range fits */
} PartitionPolicyFlags;

typedef struct ImagePolicy ImagePolicy;  /* opaque */

/* What systemd-sysext uses when no --image-policy= is given. */
extern const char image_policy_sysext_default[];
/* systemd's "sysext-strict": signed verity or nothing. */
extern const char image_policy_sysext_strict[];

/* s == NULL yields the sysext default; "" is the ignore policy, as in systemd. *ret untouched on
 * failure. */
int image_policy_from_string(const char *s, ImagePolicy **ret);
ImagePolicy *image_policy_free(ImagePolicy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(ImagePolicy *, image_policy_free);
#define _cleanup_image_policy_ _cleanup_(image_policy_freep)

/* A policy allowing exactly what both a and b allow (NULL is the sysext default): an administrator's
 * policy can only tighten a rule such as "images a user controls must be signed". */
int image_policy_intersect(const ImagePolicy *a, const ImagePolicy *b, ImagePolicy **ret);

/* Canonical form, designators in systemd's order, default last. simplify=false spells every flag
 * exactly as stored and parses back to an identical policy; simplify=true uses "open"/"ignore",
 * drops entries equal to the default and "don't care" attribute pairs, and may collapse the whole
 * policy to "*", "-" or "~"; it parses back to an equivalent policy. p == NULL is the sysext
 * default (in every function below, too). */
int image_policy_to_string(const ImagePolicy *p, bool simplify, char **ret);

/* Exact / outcome equality (systemd's image_policy_equal() / image_policy_equivalent()). */
bool image_policy_equal(const ImagePolicy *a, const ImagePolicy *b);
bool image_policy_equivalent(const ImagePolicy *a, const ImagePolicy *b);

/* Effective, normalized flags for a designator: its own entry, else (for *-verity and *-verity-sig)
 * a rule derived from the data partition's entry, else the default. Unspecified parts are filled in
 * ("no use flag" = open, "no read-only flag" = both, …); flags meaningless for the designator are
 * masked off. Returns _PARTITION_POLICY_FLAGS_INVALID for an unknown designator name. */
PartitionPolicyFlags image_policy_get(const ImagePolicy *p, const char *designator_name);
PartitionPolicyFlags image_policy_get_default(const ImagePolicy *p);

/* An existing partition should be used (1) or silently ignored (0: the policy allows nothing but
 * unused/absent for it). Negative errno for an unknown designator. */
int image_policy_may_use(const ImagePolicy *p, const char *designator_name);

/* Check one of our partitions: `protection` is exactly one of VERITY, SIGNED, ENCRYPTED,
 * UNPROTECTED, UNUSED, ABSENT (what the image actually has for that designator; UNUSED = it
 * exists, but image_policy_may_use() said to ignore it); read_only/growfs are the GPT flags.
 * Returns 1 if allowed, 0 if refused with *ret_reason like
 * "usr partition is unprotected, but policy requires verity+signed", <0 on error (unknown
 * designator, invalid protection value, ENOMEM). ret_reason may be NULL; it is set to NULL on 1.
 *
 * As in systemd, a partition set offering more protection than the policy names may be used with
 * less: signed → verity (signature ignored) → unprotected (verity ignored), provided the policy
 * lets the dropped verity/signature partition be ignored. */
int image_policy_check(const ImagePolicy *p, const char *designator_name, PartitionPolicyFlags protection,
                       bool read_only, bool growfs, char **ret_reason);

/* Same, plus: fstype (NULL = not checked) against the file system flags, and *ret_use (may be NULL)
 * receives the protection level to actually set up when allowed (e.g. VERITY for a signed image
 * under "usr=verity"). */
int image_policy_check_full(const ImagePolicy *p, const char *designator_name,
                            PartitionPolicyFlags protection, bool read_only, bool growfs,
                            const char *fstype, PartitionPolicyFlags *ret_use, char **ret_reason);

/* Name of a single flag ("verity", "read-only-on", "open", "ignore", "erofs", …), NULL otherwise. */
const char *partition_policy_flag_to_string(PartitionPolicyFlags single_flag);
/* Flags as "a+b+c" ("-" for none). */
int partition_policy_flags_to_string(PartitionPolicyFlags flags, bool simplify, char **ret);
/* Parse "a+b+c"; "" and "-" are 0. -EBADRQC for an unknown or empty flag (message recorded). */
PartitionPolicyFlags partition_policy_flags_from_string(const char *s);

/* Every designator systemd knows, in its order (NULL-terminated), for callers and tests. */
extern const char * const image_policy_designators[];
bool image_policy_designator_is_known(const char *name);
