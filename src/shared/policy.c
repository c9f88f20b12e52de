/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Image policy parsing, printing and checking, following systemd.image-policy(7) and the behaviour
 * of systemd's src/shared/image-policy.c + the policy checks in src/shared/dissect-image.c. */

#include <assert.h>

#include "policy.h"

/* systemd's designators, in systemd's order (which is also our canonical output order). */
enum {
        D_ROOT,
        D_USR,
        D_HOME,
        D_SRV,
        D_ESP,
        D_XBOOTLDR,
        D_SWAP,
        D_ROOT_VERITY,
        D_USR_VERITY,
        D_ROOT_VERITY_SIG,
        D_USR_VERITY_SIG,
        D_TMP,
        D_VAR,
        _D_MAX,
};

const char * const image_policy_designators[_D_MAX + 1] = {
        [D_ROOT]            = "root",
        [D_USR]             = "usr",
        [D_HOME]            = "home",
        [D_SRV]             = "srv",
        [D_ESP]             = "esp",
        [D_XBOOTLDR]        = "xbootldr",
        [D_SWAP]            = "swap",
        [D_ROOT_VERITY]     = "root-verity",
        [D_USR_VERITY]      = "usr-verity",
        [D_ROOT_VERITY_SIG] = "root-verity-sig",
        [D_USR_VERITY_SIG]  = "usr-verity-sig",
        [D_TMP]             = "tmp",
        [D_VAR]             = "var",
        [_D_MAX]            = NULL,
};

struct ImagePolicy {
        PartitionPolicyFlags default_flags;     /* for every designator without its own entry */
        uint32_t listed;                        /* bit per designator that has an entry */
        PartitionPolicyFlags flags[_D_MAX];     /* as parsed, not normalized */
};

#define SYSEXT_DATA_FLAGS                                                                       \
        (PARTITION_POLICY_VERITY | PARTITION_POLICY_SIGNED | PARTITION_POLICY_ENCRYPTED |      \
         PARTITION_POLICY_UNPROTECTED | PARTITION_POLICY_ABSENT)

const char image_policy_sysext_default[] =
        "root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent";
const char image_policy_sysext_strict[] = "root=signed+absent:usr=signed+absent";

/* What a NULL policy means everywhere: the same policy as image_policy_sysext_default. */
static const ImagePolicy sysext_default_policy = {
        .default_flags = PARTITION_POLICY_IGNORE,
        .listed = (1u << D_ROOT) | (1u << D_USR),
        .flags = {
                [D_ROOT] = SYSEXT_DATA_FLAGS,
                [D_USR] = SYSEXT_DATA_FLAGS,
        },
};

static const ImagePolicy *policy_or_default(const ImagePolicy *p) {
        return p ?: &sysext_default_policy;
}

/* ---- flag names ---- */

static const struct {
        const char *name;
        PartitionPolicyFlags flag;
} flag_table[] = {
        { "verity",        PARTITION_POLICY_VERITY },
        { "signed",        PARTITION_POLICY_SIGNED },
        { "encrypted",     PARTITION_POLICY_ENCRYPTED },
        { "unprotected",   PARTITION_POLICY_UNPROTECTED },
        { "unused",        PARTITION_POLICY_UNUSED },
        { "absent",        PARTITION_POLICY_ABSENT },
        { "open",          PARTITION_POLICY_OPEN },
        { "ignore",        PARTITION_POLICY_IGNORE },
        { "read-only-on",  PARTITION_POLICY_READ_ONLY_ON },
        { "read-only-off", PARTITION_POLICY_READ_ONLY_OFF },
        { "growfs-on",     PARTITION_POLICY_GROWFS_ON },
        { "growfs-off",    PARTITION_POLICY_GROWFS_OFF },
        { "btrfs",         PARTITION_POLICY_BTRFS },
        { "erofs",         PARTITION_POLICY_EROFS },
        { "ext4",          PARTITION_POLICY_EXT4 },
        { "f2fs",          PARTITION_POLICY_F2FS },
        { "squashfs",      PARTITION_POLICY_SQUASHFS },
        { "vfat",          PARTITION_POLICY_VFAT },
        { "xfs",           PARTITION_POLICY_XFS },
};

const char *partition_policy_flag_to_string(PartitionPolicyFlags single_flag) {
        for (size_t i = 0; i < ELEMENTSOF(flag_table); i++)
                if (flag_table[i].flag == single_flag)
                        return flag_table[i].name;
        return NULL;
}

static PartitionPolicyFlags flag_from_word(const char *w, size_t n) {
        for (size_t i = 0; i < ELEMENTSOF(flag_table); i++)
                if (strlen(flag_table[i].name) == n && strneq(flag_table[i].name, w, n))
                        return flag_table[i].flag;
        return _PARTITION_POLICY_FLAGS_INVALID;
}

/* ---- designators ---- */

static int designator_from_word(const char *w, size_t n) {
        for (int d = 0; d < _D_MAX; d++)
                if (strlen(image_policy_designators[d]) == n && strneq(image_policy_designators[d], w, n))
                        return d;
        return -EBADSLT;
}

static int designator_from_name(const char *name) {
        return name ? designator_from_word(name, strlen(name)) : -EINVAL;
}

bool image_policy_designator_is_known(const char *name) {
        return designator_from_name(name) >= 0;
}

static int verity_of(int d) {
        return d == D_ROOT ? D_ROOT_VERITY : d == D_USR ? D_USR_VERITY : -1;
}

static int verity_sig_of(int d) {
        return d == D_ROOT ? D_ROOT_VERITY_SIG : d == D_USR ? D_USR_VERITY_SIG : -1;
}

static int verity_to_data(int d) {
        return d == D_ROOT_VERITY ? D_ROOT : d == D_USR_VERITY ? D_USR : -1;
}

static int verity_sig_to_data(int d) {
        return d == D_ROOT_VERITY_SIG ? D_ROOT : d == D_USR_VERITY_SIG ? D_USR : -1;
}

/* ---- messages ---- */

#define ESCAPED_MAX 64
/* User input goes into messages printed on a terminal: escape anything that isn't printable ASCII
 * and cut long words, so a 10k-character or control-character policy cannot mangle the output. */
static const char *escape_word(const char *w, size_t n, char buf[static ESCAPED_MAX * 4 + 8]) {
        size_t o = 0;

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) w[i];

                if (i >= ESCAPED_MAX) {
                        memcpy(buf + o, "…", STRLEN("…"));
                        o += STRLEN("…");
                        break;
                }
                if (c >= ' ' && c < 127)
                        buf[o++] = (char) c;
                else
                        o += (size_t) snprintf(buf + o, 5, "\\x%02x", c);
        }
        buf[o] = 0;
        return buf;
}

/* ---- parsing ---- */

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Trim whitespace of the word [*w, *w + *n), as systemd's strstrip() does. */
static void strip_word(const char **w, size_t *n) {
        while (*n > 0 && is_space(**w)) {
                (*w)++;
                (*n)--;
        }
        while (*n > 0 && is_space((*w)[*n - 1]))
                (*n)--;
}

/* Parse "flag+flag" of length n. `what` names the entry for messages (NULL: no context). Flags are
 * OR'ed: repeating one, or naming both of a read-only/growfs pair, is allowed, as in systemd (both
 * of a pair means "don't care"). */
static int flags_parse(const char *s, size_t n, const char *what, PartitionPolicyFlags *ret) {
        PartitionPolicyFlags flags = 0;
        char esc[ESCAPED_MAX * 4 + 8];

        strip_word(&s, &n);
        if (n == 0 || (n == 1 && s[0] == '-')) {
                *ret = 0;
                return 0;
        }

        for (const char *w = s, *end = s + n;;) {
                const char *plus = memchr(w, '+', (size_t) (end - w)), *t = w;
                size_t l = (size_t) ((plus ?: end) - w);
                PartitionPolicyFlags f;

                strip_word(&t, &l);
                f = flag_from_word(t, l);
                if (f < 0) {
                        if (l == 0)
                                return sx_error(-EBADRQC, "Empty partition policy flag in '%s'%s%s",
                                                escape_word(s, n, esc), what ? " for " : "", strempty(what));
                        return sx_error(-EBADRQC, "Unknown partition policy flag '%s'%s%s",
                                        escape_word(t, l, esc), what ? " for " : "", strempty(what));
                }
                flags |= f;
                if (!plus)
                        break;
                w = plus + 1;
        }

        *ret = flags;
        return 0;
}

PartitionPolicyFlags partition_policy_flags_from_string(const char *s) {
        PartitionPolicyFlags f;
        int r;

        if (!s)
                return _PARTITION_POLICY_FLAGS_INVALID;
        r = flags_parse(s, strlen(s), NULL, &f);
        return r < 0 ? (PartitionPolicyFlags) r : f;
}

/* One "designator=flags" entry, [e, e + n). */
static int entry_parse(ImagePolicy *p, const char *e, size_t n, bool *default_seen) {
        char esc[ESCAPED_MAX * 4 + 8];
        const char *eq = memchr(e, '=', n), *name = e, *fl;
        size_t name_len, fl_len;
        int d;

        if (!eq) {
                strip_word(&e, &n);
                if (n == 0)
                        return sx_error(-EINVAL, "Empty entry in image policy, expected 'designator=flags'");
                return sx_error(-EINVAL, "Missing '=' in image policy entry '%s'", escape_word(e, n, esc));
        }

        name_len = (size_t) (eq - e);
        strip_word(&name, &name_len);
        fl = eq + 1;
        fl_len = (size_t) ((e + n) - fl);

        if (name_len == 0) {
                if (*default_seen)
                        return sx_error(-ENOTUNIQ, "Default partition policy flags specified more than once");
                *default_seen = true;
                return flags_parse(fl, fl_len, "the default", &p->default_flags);
        }

        d = designator_from_word(name, name_len);
        if (d < 0)
                return sx_error(-EBADSLT, "Unknown partition designator '%s' in image policy",
                                escape_word(name, name_len, esc));
        if (p->listed & (1u << d))
                return sx_error(-ENOTUNIQ, "Partition designator '%s' specified more than once in image policy",
                                image_policy_designators[d]);
        p->listed |= 1u << d;
        return flags_parse(fl, fl_len, image_policy_designators[d], &p->flags[d]);
}

static ImagePolicy *image_policy_new(PartitionPolicyFlags default_flags) {
        ImagePolicy *p = calloc(1, sizeof(ImagePolicy));

        if (p)
                p->default_flags = default_flags;
        return p;
}

int image_policy_from_string(const char *s, ImagePolicy **ret) {
        _cleanup_image_policy_ ImagePolicy *p = NULL;
        PartitionPolicyFlags symbolic = _PARTITION_POLICY_FLAGS_INVALID;
        bool default_seen = false;

        if (!s) {
                p = malloc(sizeof(ImagePolicy));
                if (!p)
                        return -ENOMEM;
                *p = sysext_default_policy;
                goto done;
        }

        if (isempty(s) || streq(s, "-"))
                symbolic = PARTITION_POLICY_IGNORE;     /* everything may exist, nothing is used */
        else if (streq(s, "*"))
                symbolic = PARTITION_POLICY_OPEN;       /* everything allowed */
        else if (streq(s, "~"))
                symbolic = PARTITION_POLICY_ABSENT;     /* nothing may exist */

        p = image_policy_new(symbolic >= 0 ? symbolic : PARTITION_POLICY_IGNORE);
        if (!p)
                return -ENOMEM;

        /* Entries are separated by ':'; empty ones (also a trailing ':') are errors, as in systemd. */
        for (const char *e = s; symbolic < 0;) {
                const char *colon = strchr(e, ':');
                size_t n = colon ? (size_t) (colon - e) : strlen(e);
                int r;

                r = entry_parse(p, e, n, &default_seen);
                if (r < 0)
                        return r;
                if (!colon)
                        break;
                e = colon + 1;
        }

done:
        if (ret)
                *ret = TAKE_PTR(p);
        return 0;
}

ImagePolicy *image_policy_free(ImagePolicy *p) {
        free(p);
        return NULL;
}

/* ---- effective flags ---- */

/* Fill in what was left unspecified: no use flag = all, no flag of a pair = both. */
static PartitionPolicyFlags flags_extend(PartitionPolicyFlags f) {
        if (!(f & _PARTITION_POLICY_USE_MASK))
                f |= PARTITION_POLICY_OPEN;
        if (!(f & _PARTITION_POLICY_READ_ONLY_MASK))
                f |= _PARTITION_POLICY_READ_ONLY_MASK;
        if (!(f & _PARTITION_POLICY_GROWFS_MASK))
                f |= _PARTITION_POLICY_GROWFS_MASK;
        return f;
}

static PartitionPolicyFlags flags_normalize(int d, PartitionPolicyFlags f) {
        f = flags_extend(f);

        /* Verity and signature partitions are the protection; they cannot be protected themselves. */
        if (verity_to_data(d) >= 0 || verity_sig_to_data(d) >= 0)
                f &= ~(PARTITION_POLICY_VERITY | PARTITION_POLICY_SIGNED | PARTITION_POLICY_ENCRYPTED);
        /* Designators without a verity partition type cannot be verity protected. */
        if (verity_of(d) < 0)
                f &= ~(PARTITION_POLICY_VERITY | PARTITION_POLICY_SIGNED);
        /* A partition that must be absent has no attribute bits to check. */
        if ((f & _PARTITION_POLICY_USE_MASK) == PARTITION_POLICY_ABSENT)
                f &= ~_PARTITION_POLICY_PFLAGS_MASK;

        return f;
}

/* The designator's own entry, or one derived for a verity (signature) partition from the data
 * partition's own entry; _PARTITION_POLICY_FLAGS_INVALID if neither exists. */
static PartitionPolicyFlags policy_get_listed(const ImagePolicy *p, int d) {
        PartitionPolicyFlags data;
        int data_d;

        if (p->listed & (1u << d))
                return flags_normalize(d, p->flags[d]);

        data_d = verity_to_data(d);
        if (data_d < 0)
                data_d = verity_sig_to_data(d);
        if (data_d < 0)
                return _PARTITION_POLICY_FLAGS_INVALID;

        data = policy_get_listed(p, data_d);
        if (data < 0)
                return data;
        /* The hash partition is needed for verity and signed, the signature partition only for signed. */
        if (!(data & (verity_to_data(d) >= 0 ? PARTITION_POLICY_VERITY | PARTITION_POLICY_SIGNED
                                              : PARTITION_POLICY_SIGNED)))
                return _PARTITION_POLICY_FLAGS_INVALID;

        /* Used unprotected (it is the protection); may be unused/absent if the data partition may be;
         * inherits the attribute policy. */
        return flags_normalize(d, PARTITION_POLICY_UNPROTECTED |
                                  (data & (PARTITION_POLICY_IGNORE | _PARTITION_POLICY_PFLAGS_MASK)));
}

static PartitionPolicyFlags policy_get(const ImagePolicy *p, int d) {
        PartitionPolicyFlags f = policy_get_listed(p, d);

        return f >= 0 ? f : flags_normalize(d, p->default_flags);
}

PartitionPolicyFlags image_policy_get(const ImagePolicy *p, const char *designator_name) {
        int d = designator_from_name(designator_name);

        if (d < 0)
                return _PARTITION_POLICY_FLAGS_INVALID;
        return policy_get(policy_or_default(p), d);
}

PartitionPolicyFlags image_policy_get_default(const ImagePolicy *p) {
        return policy_or_default(p)->default_flags;
}

/* ---- intersection ---- */

/* What both of two effective (normalized) flag sets allow. A pair of attribute flags or a set of
 * file systems the two do not share cannot be satisfied by an existing partition, and an empty use
 * set cannot be written down: both become "absent", the strictest rule a policy can state. */
static PartitionPolicyFlags flags_intersect(PartitionPolicyFlags a, PartitionPolicyFlags b) {
        PartitionPolicyFlags use = a & b & _PARTITION_POLICY_USE_MASK,
                             pflags = a & b & _PARTITION_POLICY_PFLAGS_MASK,
                             fa = a & _PARTITION_POLICY_FSTYPE_MASK, fb = b & _PARTITION_POLICY_FSTYPE_MASK,
                             fs = !fa ? fb : !fb ? fa : (fa & fb);
        bool contradiction = (fa && fb && !fs) ||
                             ((a | b) & _PARTITION_POLICY_READ_ONLY_MASK && !(pflags & _PARTITION_POLICY_READ_ONLY_MASK)) ||
                             ((a | b) & _PARTITION_POLICY_GROWFS_MASK && !(pflags & _PARTITION_POLICY_GROWFS_MASK));

        if (contradiction || use == 0)
                return PARTITION_POLICY_ABSENT;
        return use | pflags | fs;
}

int image_policy_intersect(const ImagePolicy *a, const ImagePolicy *b, ImagePolicy **ret) {
        const ImagePolicy *pa = policy_or_default(a), *pb = policy_or_default(b);
        ImagePolicy *p;

        assert(ret);
        p = image_policy_new(flags_intersect(flags_extend(pa->default_flags), flags_extend(pb->default_flags)));
        if (!p)
                return -ENOMEM;
        /* Every designator gets its own entry: the rules derived for verity and signature
         * partitions are intersected as they apply, not re-derived from the intersection. */
        for (int d = 0; d < _D_MAX; d++) {
                p->flags[d] = flags_intersect(policy_get(pa, d), policy_get(pb, d));
                p->listed |= 1u << d;
        }
        *ret = p;
        return 0;
}

/* ---- printing ---- */

int partition_policy_flags_to_string(PartitionPolicyFlags flags, bool simplify, char **ret) {
        /* Output order as systemd's, so our canonical strings match systemd-analyze's. */
        static const PartitionPolicyFlags order[] = {
                PARTITION_POLICY_VERITY, PARTITION_POLICY_SIGNED, PARTITION_POLICY_ENCRYPTED,
                PARTITION_POLICY_UNPROTECTED, PARTITION_POLICY_UNUSED, PARTITION_POLICY_ABSENT,
                PARTITION_POLICY_READ_ONLY_ON, PARTITION_POLICY_READ_ONLY_OFF,
                PARTITION_POLICY_GROWFS_OFF, PARTITION_POLICY_GROWFS_ON,
                PARTITION_POLICY_BTRFS, PARTITION_POLICY_EROFS, PARTITION_POLICY_EXT4,
                PARTITION_POLICY_F2FS, PARTITION_POLICY_SQUASHFS, PARTITION_POLICY_VFAT,
                PARTITION_POLICY_XFS,
        };
        PartitionPolicyFlags use = flags & _PARTITION_POLICY_USE_MASK;
        char buf[256] = "";
        size_t o = 0;

        if (flags < 0 || (flags & ~_PARTITION_POLICY_MASK))
                return -EINVAL;

        if (simplify && (use == PARTITION_POLICY_OPEN || use == PARTITION_POLICY_IGNORE)) {
                o = (size_t) snprintf(buf, sizeof(buf), "%s", partition_policy_flag_to_string(use));
                flags &= ~_PARTITION_POLICY_USE_MASK;
        }
        /* Simplified: a pair with both bits set is "don't care", same as neither. */
        if (simplify && (flags & _PARTITION_POLICY_READ_ONLY_MASK) == _PARTITION_POLICY_READ_ONLY_MASK)
                flags &= ~_PARTITION_POLICY_READ_ONLY_MASK;
        if (simplify && (flags & _PARTITION_POLICY_GROWFS_MASK) == _PARTITION_POLICY_GROWFS_MASK)
                flags &= ~_PARTITION_POLICY_GROWFS_MASK;

        for (size_t i = 0; i < ELEMENTSOF(order); i++)
                if (flags & order[i])
                        o += (size_t) snprintf(buf + o, sizeof(buf) - o, "%s%s", o > 0 ? "+" : "",
                                               partition_policy_flag_to_string(order[i]));

        *ret = strdup(o > 0 ? buf : "-");
        return *ret ? 0 : -ENOMEM;
}

static bool flags_extended_equal(PartitionPolicyFlags a, PartitionPolicyFlags b) {
        return flags_extend(a) == flags_extend(b);
}

/* Does every designator (and the default) behave as `expected`? Used to print "*", "-", "~". */
static bool policy_all_match(const ImagePolicy *p, PartitionPolicyFlags expected) {
        if (!flags_extended_equal(p->default_flags, expected))
                return false;
        for (int d = 0; d < _D_MAX; d++)
                if (policy_get(p, d) != flags_normalize(d, expected))
                        return false;
        return true;
}

static int strextend_entry(char **s, const char *name, const char *flags) {
        char *n = strjoin(strempty(*s), isempty(*s) ? "" : ":", name, "=", flags);

        if (!n)
                return -ENOMEM;
        free(*s);
        *s = n;
        return 0;
}

int image_policy_to_string(const ImagePolicy *policy, bool simplify, char **ret) {
        const ImagePolicy *p = policy_or_default(policy);
        _cleanup_free_ char *s = NULL;
        int r;

        if (simplify) {
                const char *fixed = policy_all_match(p, PARTITION_POLICY_OPEN) ? "*" :
                                    policy_all_match(p, PARTITION_POLICY_IGNORE) ? "-" :
                                    policy_all_match(p, PARTITION_POLICY_ABSENT) ? "~" : NULL;
                if (fixed) {
                        *ret = strdup(fixed);
                        return *ret ? 0 : -ENOMEM;
                }
        }

        ImagePolicy kept = *p;  /* the entries printed so far and those still to come */
        for (int d = 0; d < _D_MAX; d++) {
                _cleanup_free_ char *f = NULL;

                if (!(p->listed & (1u << d)))
                        continue;
                /* Entries that say the same as the default are redundant, unless an unlisted verity
                 * or signature partition would not fall back to the default but derive its rule from
                 * the data partition's entry (e.g. "usr=open:usr-verity-sig=absent:=absent"). */
                if (simplify && flags_normalize(d, p->default_flags) == p->flags[d]) {
                        ImagePolicy without = kept;

                        without.listed &= ~(1u << d);
                        if (image_policy_equivalent(&without, p)) {
                                kept = without;
                                continue;
                        }
                }

                r = partition_policy_flags_to_string(p->flags[d], simplify, &f);
                if (r < 0)
                        return r;
                r = strextend_entry(&s, image_policy_designators[d], f);
                if (r < 0)
                        return r;
        }

        if (!simplify || !flags_extended_equal(p->default_flags, PARTITION_POLICY_IGNORE)) {
                _cleanup_free_ char *f = NULL;

                r = partition_policy_flags_to_string(p->default_flags, simplify, &f);
                if (r < 0)
                        return r;
                r = strextend_entry(&s, "", f);
                if (r < 0)
                        return r;
        }

        if (isempty(s)) {
                free(s);
                s = strdup("-");
                if (!s)
                        return -ENOMEM;
        }

        *ret = TAKE_PTR(s);
        return 0;
}

bool image_policy_equal(const ImagePolicy *a, const ImagePolicy *b) {
        a = policy_or_default(a);
        b = policy_or_default(b);

        if (a->default_flags != b->default_flags || a->listed != b->listed)
                return false;
        for (int d = 0; d < _D_MAX; d++)
                if ((a->listed & (1u << d)) && a->flags[d] != b->flags[d])
                        return false;
        return true;
}

bool image_policy_equivalent(const ImagePolicy *a, const ImagePolicy *b) {
        a = policy_or_default(a);
        b = policy_or_default(b);

        if (!flags_extended_equal(a->default_flags, b->default_flags))
                return false;
        for (int d = 0; d < _D_MAX; d++)
                if (policy_get(a, d) != policy_get(b, d))
                        return false;
        return true;
}

/* ---- checking ---- */

int image_policy_may_use(const ImagePolicy *p, const char *designator_name) {
        int d = designator_from_name(designator_name);

        if (d < 0)
                return sx_error(-EINVAL, "Unknown partition designator '%s'", strna(designator_name));
        return !!(policy_get(policy_or_default(p), d) &
                  (_PARTITION_POLICY_USE_MASK & ~PARTITION_POLICY_IGNORE));
}

/* May partition d (a verity or signature partition) be left unused? */
static bool may_drop(const ImagePolicy *p, int d) {
        return d >= 0 && (policy_get(p, d) & PARTITION_POLICY_UNUSED);
}

/* Which protection level to set up for an existing partition of designator d that offers
 * `have`, under effective flags `want`: the offered level, or a weaker one reached by ignoring the
 * signature and/or verity partition where the policy lets those be ignored. 0 if none. */
static PartitionPolicyFlags pick_use(const ImagePolicy *p, int d, PartitionPolicyFlags want,
                                     PartitionPolicyFlags have) {
        bool drop_sig = may_drop(p, verity_sig_of(d)), drop_verity = may_drop(p, verity_of(d));

        if (want & have)
                return have;
        if (have == PARTITION_POLICY_SIGNED && (want & PARTITION_POLICY_VERITY) && drop_sig)
                return PARTITION_POLICY_VERITY;
        if (have == PARTITION_POLICY_SIGNED && (want & PARTITION_POLICY_UNPROTECTED) && drop_sig && drop_verity)
                return PARTITION_POLICY_UNPROTECTED;
        if (have == PARTITION_POLICY_VERITY && (want & PARTITION_POLICY_UNPROTECTED) && drop_verity)
                return PARTITION_POLICY_UNPROTECTED;
        return 0;
}

static PartitionPolicyFlags fstype_flag(const char *fstype) {
        PartitionPolicyFlags f = flag_from_word(fstype, strlen(fstype));

        return f > 0 && (f & _PARTITION_POLICY_FSTYPE_MASK) == f ? f : 0;
}

static int use_reason(int d, PartitionPolicyFlags have, PartitionPolicyFlags want, char **ret) {
        _cleanup_free_ char *w = NULL;
        const char *extra = "";
        int r;

        r = partition_policy_flags_to_string(want & _PARTITION_POLICY_USE_MASK, false, &w);
        if (r < 0)
                return r;
        /* The weaker level is allowed, but the partition that would have to be ignored is not. */
        if (verity_of(d) < 0)
                ;
        else if (have == PARTITION_POLICY_SIGNED && (want & (PARTITION_POLICY_VERITY | PARTITION_POLICY_UNPROTECTED)))
                extra = " (and does not allow ignoring the verity signature partition)";
        else if (have == PARTITION_POLICY_VERITY && (want & PARTITION_POLICY_UNPROTECTED))
                extra = " (and does not allow ignoring the verity partition)";
        return asprintf_safe(ret, "%s partition is %s, but policy requires %s%s",
                             image_policy_designators[d], partition_policy_flag_to_string(have), streq(w, "-") ? "nothing" : w, extra);
}

static int attr_reason(const char *name, PartitionPolicyFlags want, bool read_only, bool growfs,
                       const char *fstype, char **ret) {
        char esc[ESCAPED_MAX * 4 + 8];

        if ((want & _PARTITION_POLICY_READ_ONLY_MASK) ==
            (read_only ? PARTITION_POLICY_READ_ONLY_OFF : PARTITION_POLICY_READ_ONLY_ON))
                return asprintf_safe(ret, "%s partition has the read-only flag %s, but policy requires %s",
                                     name, read_only ? "set" : "unset",
                                     read_only ? "read-only-off" : "read-only-on");
        if ((want & _PARTITION_POLICY_GROWFS_MASK) ==
            (growfs ? PARTITION_POLICY_GROWFS_OFF : PARTITION_POLICY_GROWFS_ON))
                return asprintf_safe(ret, "%s partition has the growfs flag %s, but policy requires %s",
                                     name, growfs ? "set" : "unset", growfs ? "growfs-off" : "growfs-on");
        if (fstype && (want & _PARTITION_POLICY_FSTYPE_MASK) && !(want & fstype_flag(fstype))) {
                _cleanup_free_ char *w = NULL;
                int r = partition_policy_flags_to_string(want & _PARTITION_POLICY_FSTYPE_MASK, false, &w);

                if (r < 0)
                        return r;
                return asprintf_safe(ret, "%s partition has file system %s, but policy allows only %s",
                                     name, escape_word(fstype, strlen(fstype), esc), w);
        }
        *ret = NULL;
        return 0;
}

int image_policy_check_full(const ImagePolicy *policy, const char *designator_name,
                            PartitionPolicyFlags protection, bool read_only, bool growfs,
                            const char *fstype, PartitionPolicyFlags *ret_use, char **ret_reason) {
        const ImagePolicy *p = policy_or_default(policy);
        _cleanup_free_ char *reason = NULL;
        PartitionPolicyFlags want, use = protection;
        int d = designator_from_name(designator_name), r;
        bool allowed;

        if (d < 0)
                return sx_error(-EINVAL, "Unknown partition designator '%s'", strna(designator_name));
        if (protection <= 0 || (protection & ~_PARTITION_POLICY_USE_MASK) || (protection & (protection - 1)))
                return sx_error(-EINVAL, "%s: invalid partition protection value 0x%x",
                                designator_name, (unsigned) protection);

        want = policy_get(p, d);
        if (protection == PARTITION_POLICY_ABSENT) {
                if (!(want & PARTITION_POLICY_ABSENT))
                        r = use_reason(d, protection, want, &reason);
                else
                        r = 0;
        } else if ((want & _PARTITION_POLICY_USE_MASK) == PARTITION_POLICY_ABSENT)
                r = asprintf_safe(&reason, "%s partition exists, but policy requires it to be absent",
                                  designator_name);
        else {
                use = pick_use(p, d, want, protection);
                if (use == 0)
                        r = use_reason(d, protection, want, &reason);
                else if (use == PARTITION_POLICY_UNUSED)
                        r = 0;  /* an ignored partition is not "found": its attributes don't matter */
                else
                        r = attr_reason(designator_name, want, read_only, growfs, fstype, &reason);
        }
        if (r < 0)
                return -ENOMEM;

        allowed = !reason;
        if (ret_use && allowed)
                *ret_use = use;
        if (ret_reason)
                *ret_reason = TAKE_PTR(reason);
        return allowed;
}

int image_policy_check(const ImagePolicy *p, const char *designator_name, PartitionPolicyFlags protection,
                       bool read_only, bool growfs, char **ret_reason) {
        return image_policy_check_full(p, designator_name, protection, read_only, growfs, NULL, NULL,
                                       ret_reason);
}
