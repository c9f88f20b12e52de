/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Directory entry names of extension images, and the version order that decides merge order.
 * The input is split at NUL bytes into up to three strings a, b, c. Properties (abort on violation):
 *   image_name_parse: a valid name comes out, the version is the part after the first '_';
 *   version_compare: reflexive (a == a), antisymmetric (sign(a,b) == -sign(b,a)), transitive
 *   (a <= b <= c ⇒ a <= c, a == b == c ⇒ a == c), and NULL sorts first;
 *   vpick_parse: a candidate is "v_" + a non-empty version without '_' or '+'; vpick_compare is
 *   antisymmetric and reflexive over two candidates; vpick_dir_pattern gives a valid name. */

#include "image.h"
#include "version.h"
#include "vpick.h"
#include "fuzz.h"

static int sign(int v) {
        return (v > 0) - (v < 0);
}

static void check_name(const char *filename) {
        for (int is_dir = 0; is_dir <= 1; is_dir++) {
                _cleanup_free_ char *name = NULL, *version = NULL;
                int r = image_name_parse(filename, is_dir, &name, &version);

                if (r < 0) {
                        FUZZ_ASSERT(r == -EINVAL || r == -ENOMEM, "image_name_parse: %d", r);
                        FUZZ_ASSERT(!name && !version, "outputs set on failure");
                        continue;
                }
                FUZZ_ASSERT(name && image_name_is_valid(name), "invalid name '%s' from '%s'", strna(name), filename);
                FUZZ_ASSERT(!strchr(name, '_'), "name '%s' contains '_'", name);
                FUZZ_ASSERT(strncmp(filename, name, strlen(name)) == 0, "name '%s' is not a prefix of '%s'", name, filename);
                FUZZ_ASSERT(fuzz_text_is_clean(name) && (!version || fuzz_text_is_clean(version)), "control characters");
                if (version) {
                        FUZZ_ASSERT(*version, "empty version");
                        FUZZ_ASSERT(filename[strlen(name)] == '_' && strncmp(filename + strlen(name) + 1, version, strlen(version)) == 0,
                                    "version '%s' is not what follows '%s_' in '%s'", version, name, filename);
                }
                if (!is_dir)
                        FUZZ_ASSERT(endswith(filename, ".raw"), "file name without .raw accepted: '%s'", filename);
        }
}

static bool check_vpick(const char *filename, VpickCandidate *ret) {
        _cleanup_free_ char *base = NULL;
        bool raw_only;
        int r = vpick_dir_pattern(filename, &base, &raw_only);

        FUZZ_ASSERT(r == 0 || r == -EINVAL || r == -ENOMEM, "vpick_dir_pattern: %d", r);
        FUZZ_ASSERT(r < 0 || (base && image_name_is_valid(base) && !strchr(base, '_')), "bad base from '%s'", filename);
        r = vpick_parse(filename, !endswith(filename, ".raw"), "v", false, "x86-64", ret);
        FUZZ_ASSERT(r >= 0 || r == -ENOMEM, "vpick_parse: %d", r);
        if (r <= 0)
                return false;
        FUZZ_ASSERT(ret->version && *ret->version && !strpbrk(ret->version, "_+/") && startswith(filename, "v_"),
                    "bad candidate '%s' from '%s'", strna(ret->version), filename);
        FUZZ_ASSERT(ret->arch_rank <= 2, "rank %u", ret->arch_rank);
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s[3];
        int ab, ba, bc, ac;

        if (size > 16 * 1024)
                return -1;
        fuzz_split(data, size, s, 3);

        for (size_t i = 0; i < 3; i++) {
                check_name(s[i]);
                FUZZ_ASSERT(version_compare(s[i], s[i]) == 0, "not reflexive: '%s'", s[i]);
                FUZZ_ASSERT(version_compare(NULL, s[i]) < 0 && version_compare(s[i], NULL) > 0, "NULL does not sort first");
        }
        FUZZ_ASSERT(version_compare(NULL, NULL) == 0, "NULL != NULL");

        ab = sign(version_compare(s[0], s[1]));
        ba = sign(version_compare(s[1], s[0]));
        bc = sign(version_compare(s[1], s[2]));
        ac = sign(version_compare(s[0], s[2]));
        FUZZ_ASSERT(ab == -ba, "not antisymmetric: '%s' vs '%s': %d, %d", s[0], s[1], ab, ba);
        if (ab == 0 && bc == 0)
                FUZZ_ASSERT(ac == 0, "not transitive: '%s' == '%s' == '%s' but %d", s[0], s[1], s[2], ac);
        else if (ab <= 0 && bc <= 0)
                FUZZ_ASSERT(ac < 0, "not transitive: '%s' %d '%s' %d '%s' but %d", s[0], ab, s[1], bc, s[2], ac);
        else if (ab >= 0 && bc >= 0)
                FUZZ_ASSERT(ac > 0, "not transitive: '%s' %d '%s' %d '%s' but %d", s[0], ab, s[1], bc, s[2], ac);

        VpickCandidate c[2] = {};
        bool ok0 = check_vpick(s[0], &c[0]), ok1 = check_vpick(s[1], &c[1]);
        if (ok0 && ok1) {
                FUZZ_ASSERT(vpick_compare(&c[0], s[0], &c[0], s[0]) == 0, "vpick_compare not reflexive");
                FUZZ_ASSERT(sign(vpick_compare(&c[0], s[0], &c[1], s[1])) == -sign(vpick_compare(&c[1], s[1], &c[0], s[0])),
                            "vpick_compare not antisymmetric: '%s' '%s'", s[0], s[1]);
        }
        vpick_candidate_done(&c[0]);
        vpick_candidate_done(&c[1]);

        for (size_t i = 0; i < 3; i++)
                free(s[i]);
        return 0;
}
