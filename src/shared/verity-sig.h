/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* verity-sig.c: what needs OpenSSL (libcrypto), built only when meson found it. Without it the
 * stubs below stand in, so callers need no #if of their own. With it, libcrypto.so.3 is dlopen()ed
 * by verity_sig_verify() only; the base64 decoder is our own and needs no library. */

#include "verity-internal.h"

#if HAVE_OPENSSL
/* Strict base64 (alphabet only, length a multiple of 4, at most two '=' at the very end) of the
 * signature field in the signature partition. -EINVAL if malformed. */
int verity_sig_base64_decode(const char *s, uint8_t **ret, size_t *ret_size);

/* Checks every signature in s against the certificates in the verity.d directories below root;
 * see verity_settings_verify_signatures(). */
int verity_sig_verify(VeritySettings *s, const char *root);
#else
static inline int verity_sig_base64_decode(const char *s, uint8_t **ret, size_t *ret_size) {
        return -EOPNOTSUPP;
}

/* Not an error: without OpenSSL no signature is checked, signed_by_trusted stays false, and an
 * image with a root hash counts as "verity", never "signed"; the image policy decides. */
static inline int verity_sig_verify(VeritySettings *s, const char *root) {
        return 0;
}
#endif
