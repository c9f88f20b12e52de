/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* --image-policy= strings: parsing, and the round trips to_string → from_string. The exact form
 * (simplify=false) must parse back to an equal policy, the simplified form to an equivalent one, and
 * the simplified form is a fixed point. The checks the tool runs with a policy must not fail for any
 * parsed policy. */

#include "policy.h"
#include "fuzz.h"

static void roundtrip(const ImagePolicy *p, const char *input) {
        _cleanup_free_ char *exact = NULL, *simple = NULL, *simple2 = NULL;
        _cleanup_image_policy_ ImagePolicy *q = NULL, *s = NULL;
        int r;

        r = image_policy_to_string(p, false, &exact);
        FUZZ_ASSERT(r == 0, "to_string(exact) of '%s' failed: %d", input, r);
        r = image_policy_from_string(exact, &q);
        FUZZ_ASSERT(r == 0, "exact form '%s' of '%s' does not parse: %d %s", exact, input, r, strna(sx_last_error()));
        FUZZ_ASSERT(image_policy_equal(p, q), "'%s' → '%s' does not parse back to an equal policy", input, exact);

        r = image_policy_to_string(p, true, &simple);
        FUZZ_ASSERT(r == 0, "to_string(simplified) of '%s' failed: %d", input, r);
        r = image_policy_from_string(simple, &s);
        FUZZ_ASSERT(r == 0, "simplified form '%s' of '%s' does not parse: %d %s", simple, input, r, strna(sx_last_error()));
        FUZZ_ASSERT(image_policy_equivalent(p, s), "'%s' → '%s' does not parse back to an equivalent policy", input, simple);
        r = image_policy_to_string(s, true, &simple2);
        FUZZ_ASSERT(r == 0 && streq(simple, simple2), "simplified form not stable: '%s' → '%s' → '%s'", input, simple,
                    strna(simple2));

        /* equality implies equivalence, and both are reflexive */
        FUZZ_ASSERT(image_policy_equal(p, p) && image_policy_equivalent(p, p), "not reflexive");
        FUZZ_ASSERT(image_policy_equivalent(p, q), "equal but not equivalent");
}

static void use(const ImagePolicy *p) {
        static const PartitionPolicyFlags protections[] = {
                PARTITION_POLICY_VERITY, PARTITION_POLICY_SIGNED, PARTITION_POLICY_ENCRYPTED,
                PARTITION_POLICY_UNPROTECTED, PARTITION_POLICY_UNUSED, PARTITION_POLICY_ABSENT,
        };
        static const char * const fstypes[] = { "squashfs", "erofs", "ext4", NULL };

        for (const char * const *d = image_policy_designators; *d; d++) {
                PartitionPolicyFlags f = image_policy_get(p, *d);

                FUZZ_ASSERT(f >= 0 && !(f & ~_PARTITION_POLICY_MASK), "get(%s) = %d", *d, (int) f);
                FUZZ_ASSERT(image_policy_may_use(p, *d) >= 0, "may_use(%s)", *d);
        }
        for (const char *d = "root";; d = "usr") {
                for (size_t i = 0; i < ELEMENTSOF(protections); i++)
                        for (int flags = 0; flags < 4; flags++) {
                                PartitionPolicyFlags use = 0;
                                char *reason = NULL;
                                int r = image_policy_check_full(p, d, protections[i], flags & 1, flags & 2,
                                                                fstypes[(i + (size_t) flags) % ELEMENTSOF(fstypes)],
                                                                &use, &reason);
                                FUZZ_ASSERT(r == 0 || r == 1, "check(%s) = %d", d, r);
                                FUZZ_ASSERT(r == 1 || reason, "refused without a reason");
                                FUZZ_ASSERT(r == 0 || !reason, "allowed with a reason");
                                free(reason);
                        }
                if (streq(d, "usr"))
                        break;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_image_policy_ ImagePolicy *p = NULL;
        _cleanup_free_ char *s = NULL;
        int r;

        if (size > 64 * 1024)
                return -1;
        s = fuzz_strndup(data, size);

        sx_clear_error();
        r = image_policy_from_string(s, &p);
        fuzz_check_error_message();
        if (r < 0) {
                FUZZ_ASSERT(!p, "failure left a policy");
                FUZZ_ASSERT(r == -EINVAL || r == -EBADSLT || r == -EBADRQC || r == -ENOTUNIQ || r == -ENOMEM,
                            "unexpected error %d for '%s'", r, s);
                FUZZ_ASSERT(r == -ENOMEM || sx_last_error(), "error %d without a message", r);
                return 0;
        }
        FUZZ_ASSERT(p, "success without a policy");
        roundtrip(p, s);
        use(p);

        /* the flags syntax on its own */
        PartitionPolicyFlags f = partition_policy_flags_from_string(s);
        if (f >= 0) {
                _cleanup_free_ char *t = NULL;
                FUZZ_ASSERT(partition_policy_flags_to_string(f, false, &t) == 0, "flags_to_string");
                FUZZ_ASSERT(partition_policy_flags_from_string(t) == f, "flags '%s' → '%s' differ", s, t);
        }
        return 0;
}
