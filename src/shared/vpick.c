/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <limits.h>

#include "image.h"
#include "version.h"
#include "vpick.h"

/* systemd's architecture names (src/basic/architecture.c): "_NAME" at the end of a version is an
 * architecture only if it is one of these. */
static const char * const architectures[] = {
        "alpha", "arc", "arc-be", "arm", "arm-be", "arm64", "arm64-be", "cris", "ia64", "loongarch64",
        "m68k", "mips", "mips-le", "mips64", "mips64-le", "nios2", "parisc", "parisc64", "ppc", "ppc-le",
        "ppc64", "ppc64-le", "riscv32", "riscv64", "s390", "s390x", "sh", "sh64", "sparc", "sparc64",
        "tilegx", "x32", "x86", "x86-64", NULL,
};

/* architecture.h's ARCHITECTURE_SECONDARY: what the native one also runs. */
static const char * const secondary_architectures[][2] = {
        { "x86-64", "x86" },
        { "arm64", "arm" },
        { "ppc64", "ppc" },
        { "ppc64-le", "ppc-le" },
        { "s390x", "s390" },
};

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool is_alnum(char c) {
        return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

enum { ARCH_RANK_NATIVE, ARCH_RANK_SECONDARY, ARCH_RANK_ANY, ARCH_RANK_FOREIGN };

const char *vpick_secondary_architecture(const char *native) {
        for (size_t i = 0; native && i < ELEMENTSOF(secondary_architectures); i++)
                if (streq(native, secondary_architectures[i][0]))
                        return secondary_architectures[i][1];
        return NULL;
}

void vpick_candidate_done(VpickCandidate *c) {
        free(c->version);
        c->version = NULL;
}

int vpick_dir_pattern(const char *dirname, char **ret_basename, bool *ret_raw_only) {
        _cleanup_free_ char *b = NULL;
        bool raw_only;

        assert(dirname && ret_basename && ret_raw_only);
        if (!endswith(dirname, VPICK_DIR_SUFFIX))
                return -EINVAL;
        b = strndup(dirname, strlen(dirname) - STRLEN(VPICK_DIR_SUFFIX));
        if (!b)
                return -ENOMEM;
        raw_only = endswith(b, VPICK_RAW_SUFFIX);
        if (raw_only)
                b[strlen(b) - STRLEN(VPICK_RAW_SUFFIX)] = 0;
        if (!image_name_is_valid(b) || strchr(b, '_'))
                return -EINVAL;
        *ret_basename = TAKE_PTR(b);
        *ret_raw_only = raw_only;
        return 0;
}

/* "+LEFT" or "+LEFT-DONE", decimal. */
static bool parse_tries(const char *s, unsigned *ret_left, unsigned *ret_done) {
        unsigned long left, done = 0;
        char *end;

        if (s[0] != '+' || !is_digit(s[1]))
                return false;
        errno = 0;
        left = strtoul(s + 1, &end, 10);
        if (*end == '-' && is_digit(end[1]))
                done = strtoul(end + 1, &end, 10);
        if (*end != 0 || errno != 0 || left >= UINT_MAX || done >= UINT_MAX)
                return false;
        *ret_left = (unsigned) left;
        *ret_done = (unsigned) done;
        return true;
}

static unsigned arch_rank(const char *a, const char *native) {
        const char *secondary = vpick_secondary_architecture(native);

        if (native && streq(a, native))
                return ARCH_RANK_NATIVE;
        if (secondary && streq(a, secondary))
                return ARCH_RANK_SECONDARY;
        return ARCH_RANK_FOREIGN;
}

/* UAPI version characters; '_' and '+' are separators here, so never part of a version. */
static bool version_is_valid(const char *v) {
        if (isempty(v))
                return false;
        for (const char *p = v; *p; p++)
                if (!is_alnum(*p) && !strchr(".~^-", *p))
                        return false;
        return true;
}

/* Cuts the "+LEFT-DONE" and "_ARCH" parts off the variable part v (in place). */
static bool vpick_split(char *v, const char *native, VpickCandidate *c) {
        char *plus = strrchr(v, '+'), *us;

        c->tries_left = c->tries_done = VPICK_NO_TRIES;
        if (plus && parse_tries(plus, &c->tries_left, &c->tries_done))
                *plus = 0;
        c->arch_rank = ARCH_RANK_ANY;
        us = strrchr(v, '_');
        if (us) {
                /* As systemd: a last "_WORD" that names no architecture is cut off all the same. */
                if (strv_contains((char **) architectures, us + 1))
                        c->arch_rank = arch_rank(us + 1, native);
                *us = 0;
        }
        return c->arch_rank != ARCH_RANK_FOREIGN && version_is_valid(v);
}

int vpick_parse(const char *filename, bool is_dir, const char *basename, bool raw_only, const char *native,
                VpickCandidate *ret) {
        _cleanup_free_ char *v = NULL;
        VpickCandidate c = { .dir = is_dir };
        size_t bl = strlen(basename);

        assert(filename && basename && ret);
        if (strncmp(filename, basename, bl) != 0 || filename[bl] != '_' || !image_name_is_valid(filename))
                return 0;
        /* Files carry .raw, directories no suffix (only NAME.v/ holds directories). */
        if (is_dir ? raw_only || endswith(filename, VPICK_RAW_SUFFIX) : !endswith(filename, VPICK_RAW_SUFFIX))
                return 0;
        v = strndup(filename + bl + 1, strlen(filename) - bl - 1 - (is_dir ? 0 : STRLEN(VPICK_RAW_SUFFIX)));
        if (!v)
                return -ENOMEM;
        if (!vpick_split(v, native, &c))
                return 0;
        c.version = TAKE_PTR(v);
        *ret = c;
        return 1;
}

#define CMP(a, b) ((a) < (b) ? -1 : (a) > (b) ? 1 : 0)

int vpick_compare(const VpickCandidate *a, const char *a_name, const VpickCandidate *b, const char *b_name) {
        int d;

        d = CMP(a->tries_left != 0, b->tries_left != 0);
        if (d == 0)
                d = version_compare(a->version, b->version);
        if (d == 0)
                d = -CMP(a->arch_rank, b->arch_rank);
        if (d == 0)
                d = CMP(a->tries_left, b->tries_left);
        if (d == 0)
                d = -CMP(a->tries_done, b->tries_done);
        if (d == 0)
                d = strcmp(a_name, b_name);
        return d;
}
