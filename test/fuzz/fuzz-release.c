/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* os-release / extension-release parsing of image bytes, and the compatibility check of the result
 * against fixed hosts and scopes. */

#include "extension-release.h"
#include "fuzz.h"

static ReleaseFile *hosts[3];

static const char * const host_texts[] = {
        "ID=debian\nID_LIKE=\"ubuntu fedora\"\nVERSION_ID=12\nSYSEXT_LEVEL=1.0\n",
        "ID=fedora\nVERSION_ID='39'\n",
        "NAME=rolling\nID=arch\n",
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        for (size_t i = 0; i < ELEMENTSOF(host_texts); i++)
                if (release_file_parse("host", host_texts[i], strlen(host_texts[i]), &hosts[i]) < 0)
                        abort();
        return 0;
}

static bool key_is_valid(const char *k) {
        if (!(*k == '_' || (*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z')))
                return false;
        for (const char *p = k + 1; *p; p++)
                if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
                        return false;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char * const scopes[] = { "system", "initrd", "portable", NULL };
        _cleanup_(release_file_freep) ReleaseFile *f = NULL;
        size_t n;
        int r;

        if (size > 2 * 1024 * 1024)
                return -1;
        sx_clear_error();
        /* The raw bytes, not NUL-terminated: the parser must stay within size. */
        r = release_file_parse("fuzz-release", (const char *) data, size, &f);
        fuzz_check_error_message();
        if (r < 0) {
                FUZZ_ASSERT(r == -EBADMSG || r == -ENOMEM, "unexpected error %d", r);
                return 0;
        }
        FUZZ_ASSERT(f && f->pairs, "success without pairs");

        n = strv_length(f->pairs);
        FUZZ_ASSERT(n % 2 == 0, "odd number of strings (%zu)", n);
        for (size_t i = 0; i < n; i += 2) {
                FUZZ_ASSERT(key_is_valid(f->pairs[i]), "invalid key '%s' accepted", f->pairs[i]);
                FUZZ_ASSERT(fuzz_text_is_clean(f->pairs[i + 1]), "value of %s has control characters", f->pairs[i]);
                /* keys are unique: a later assignment replaced the earlier one (checked on small
                 * inputs only, the check is quadratic) */
                for (size_t j = i + 2; n <= 2000 && j < n; j += 2)
                        FUZZ_ASSERT(!streq(f->pairs[i], f->pairs[j]), "key %s stored twice", f->pairs[i]);
                FUZZ_ASSERT(release_file_get(f, f->pairs[i]) == f->pairs[i + 1], "lookup of %s", f->pairs[i]);
        }

        for (size_t h = 0; h < ELEMENTSOF(hosts); h++)
                for (size_t s = 0; s < ELEMENTSOF(scopes); s++) {
                        char *reason = NULL;

                        sx_clear_error();
                        r = extension_release_check(IMAGE_CLASS_SYSEXT, "fuzz", f, hosts[h], scopes[s], &reason);
                        fuzz_check_error_message();
                        FUZZ_ASSERT(r == 0 || r == 1 || r == -ENOMEM, "check returned %d", r);
                        if (r == 0) {
                                FUZZ_ASSERT(reason, "refused without a reason");
                                FUZZ_ASSERT(fuzz_text_is_clean(reason), "reason with control characters: %s", reason);
                        }
                        free(reason);
                }
        return 0;
}
