/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Verity signature data from an image:
 *   - input starting with 0x30 (a DER SEQUENCE): a detached PKCS#7 signature, checked as if it came
 *     with the fixed root hash below (d2i_PKCS7, signer lookup, PKCS7_verify against the trusted
 *     certificates and, for untrusted signers, against the certificate the signature carries);
 *   - anything else: the contents of a verity signature partition (NUL padded JSON with rootHash,
 *     base64 signature, certificateFingerprint), then the signature check of what it decoded.
 * Trusted certificates come from $SYSEXT_IDMAP_VERITY_DIRS (tools/fuzz.sh points it at the corpus'
 * certificate, so seeds signed with its key reach the "signed by a trusted certificate" path); if
 * unset, an empty directory is used. Nothing outside that directory is read. */

#include <unistd.h>

#include "test-hooks.h"
#include "verity.h"
#include "fuzz.h"

#if !SYSEXT_IDMAP_TEST_HOOKS
#error "fuzz-verity-sig names its certificate directory through a test hook: build with -Dtest_hooks=true"
#endif

/* The root hash the DER-mode seeds are signed over (as lowercase hex, like the real thing). */
#define FIXED_ROOT_HASH "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        static char dir[] = "/tmp/fuzz-verity-sig.XXXXXX";

        /* The certificate directories, as the CLI's main() takes them from $SYSEXT_IDMAP_VERITY_DIRS
         * (the library itself reads no environment). */
        test_hooks.verity_dirs = getenv("SYSEXT_IDMAP_VERITY_DIRS");
        if (!test_hooks.verity_dirs) {
                if (!mkdtemp(dir))
                        abort();
                test_hooks.verity_dirs = dir;
        }
        return 0;
}

static uint8_t *memdup_or_die(const void *p, size_t n) {
        uint8_t *b = malloc(n > 0 ? n : 1);

        if (!b)
                abort();
        if (n > 0)
                memcpy(b, p, n);
        return b;
}

static void check_signature(uint8_t *hash, size_t hash_size, uint8_t *sig, size_t sig_size, char *fp) {
        _cleanup_(verity_settings_freep) VeritySettings *s = calloc(1, sizeof(VeritySettings));
        VerityData *v;
        int r;

        if (!s)
                abort();
        s->image_path = strdup("fuzz.raw");
        v = &s->data[PARTITION_USR];
        v->root_hash = hash;
        v->root_hash_size = hash_size;
        v->root_hash_source = strdup("signature partition");
        v->signature = sig;
        v->signature_size = sig_size;
        v->signature_source = strdup("signature partition");
        v->expected_fingerprint = fp;
        if (!s->image_path || !v->root_hash_source || !v->signature_source)
                abort();

        sx_clear_error();
        r = verity_settings_verify_signatures(s, NULL);
        fuzz_check_error_message();
        if (r < 0)
                return;
        if (v->signed_by_trusted) {
                FUZZ_ASSERT(v->signature_checked, "trusted without a check");
                FUZZ_ASSERT(v->signer_fingerprint && strlen(v->signer_fingerprint) == 64, "no signer fingerprint");
                FUZZ_ASSERT(!v->expected_fingerprint || streq(v->expected_fingerprint, v->signer_fingerprint),
                            "certificateFingerprint %s accepted for signer %s", v->expected_fingerprint,
                            v->signer_fingerprint);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t *hash = NULL, *sig = NULL;
        size_t hash_size = 0, sig_size = 0;
        char *fp = NULL;
        int r;

        if (size > 4 * 1024 * 1024 + 16)
                return -1;

        if (size > 0 && data[0] == 0x30) {
                static const char hex[] = FIXED_ROOT_HASH;
                hash_size = (sizeof(hex) - 1) / 2;
                hash = malloc(hash_size);
                if (!hash)
                        abort();
                for (size_t i = 0; i < hash_size; i++)
                        hash[i] = (uint8_t) strtoul((char[]) { hex[2 * i], hex[2 * i + 1], 0 }, NULL, 16);
                check_signature(hash, hash_size, memdup_or_die(data, size), size, NULL);
                return 0;
        }

        sx_clear_error();
        r = verity_signature_json_parse("fuzz.raw", (const char *) data, size, &hash, &hash_size, &sig, &sig_size, &fp);
        fuzz_check_error_message();
        if (r < 0) {
                FUZZ_ASSERT(!hash && !sig && !fp, "outputs set on failure");
                FUZZ_ASSERT(r == -EBADMSG || r == -EFBIG || r == -ENOMEM || r == -EOPNOTSUPP, "unexpected error %d", r);
                return 0;
        }
        FUZZ_ASSERT(hash && hash_size >= 16 && hash_size <= 64, "root hash of %zu bytes", hash_size);
        FUZZ_ASSERT(sig && sig_size > 0, "empty signature accepted");
        FUZZ_ASSERT(!fp || (strlen(fp) == 64 && strspn(fp, "0123456789abcdef") == 64), "fingerprint '%s'", fp);
        check_signature(hash, hash_size, sig, sig_size, fp);
        return 0;
}
