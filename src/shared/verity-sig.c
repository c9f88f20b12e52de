/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* PKCS#7 verity signatures, checked in userspace with OpenSSL (libcrypto) against the verity.d
 * certificates, as systemd does before it hands a signed root hash to the kernel. Built only when
 * meson finds libcrypto; verity-sig.h has the stand-ins otherwise. The signature comes from the
 * image and is hostile; the certificates are trust anchors, not chains. */

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "dlopen-util.h"
#include "verity-sig.h"

/* libcrypto is loaded on first use (dlopen-util.h), under the soname of the headers we build
 * against (Debian 12: OpenSSL 3, libcrypto.so.3). Every OpenSSL function this file calls, also
 * through the headers' macros (sk_X509_*(), BIO_get_mem_data(), PKCS7_type_is_signed(),
 * EVP_get_digestbyobj()), is redirected to a pointer below, so the code reads as plain OpenSSL and
 * a call the table misses fails to link rather than loading libcrypto at start-up. */
#define LIBCRYPTO_SONAME "libcrypto.so.3"

static void *libcrypto_dl;
static typeof(BIO_ctrl) *sym_BIO_ctrl;
static typeof(BIO_free) *sym_BIO_free;
static typeof(BIO_new) *sym_BIO_new;
static typeof(BIO_new_mem_buf) *sym_BIO_new_mem_buf;
static typeof(BIO_s_mem) *sym_BIO_s_mem;
static typeof(ERR_clear_error) *sym_ERR_clear_error;
static typeof(ERR_pop_to_mark) *sym_ERR_pop_to_mark;
static typeof(ERR_set_mark) *sym_ERR_set_mark;
static typeof(EVP_MD_fetch) *sym_EVP_MD_fetch;
static typeof(EVP_MD_free) *sym_EVP_MD_free;
static typeof(EVP_get_digestbyname) *sym_EVP_get_digestbyname;
static typeof(EVP_sha256) *sym_EVP_sha256;
static typeof(OBJ_nid2sn) *sym_OBJ_nid2sn;
static typeof(OBJ_obj2nid) *sym_OBJ_obj2nid;
static typeof(OPENSSL_sk_find) *sym_OPENSSL_sk_find;
static typeof(OPENSSL_sk_free) *sym_OPENSSL_sk_free;
static typeof(OPENSSL_sk_new_null) *sym_OPENSSL_sk_new_null;
static typeof(OPENSSL_sk_num) *sym_OPENSSL_sk_num;
static typeof(OPENSSL_sk_pop_free) *sym_OPENSSL_sk_pop_free;
static typeof(OPENSSL_sk_push) *sym_OPENSSL_sk_push;
static typeof(OPENSSL_sk_value) *sym_OPENSSL_sk_value;
static typeof(PEM_read_bio_X509) *sym_PEM_read_bio_X509;
static typeof(PKCS7_free) *sym_PKCS7_free;
static typeof(PKCS7_get0_signers) *sym_PKCS7_get0_signers;
static typeof(PKCS7_verify) *sym_PKCS7_verify;
static typeof(X509_NAME_print_ex) *sym_X509_NAME_print_ex;
static typeof(X509_digest) *sym_X509_digest;
static typeof(X509_free) *sym_X509_free;
static typeof(X509_get_subject_name) *sym_X509_get_subject_name;
static typeof(d2i_PKCS7) *sym_d2i_PKCS7;

static const DlopenSymbol libcrypto_symbols[] = {
        DLSYM(BIO_ctrl),
        DLSYM(BIO_free),
        DLSYM(BIO_new),
        DLSYM(BIO_new_mem_buf),
        DLSYM(BIO_s_mem),
        DLSYM(ERR_clear_error),
        DLSYM(ERR_pop_to_mark),
        DLSYM(ERR_set_mark),
        DLSYM(EVP_MD_fetch),
        DLSYM(EVP_MD_free),
        DLSYM(EVP_get_digestbyname),
        DLSYM(EVP_sha256),
        DLSYM(OBJ_nid2sn),
        DLSYM(OBJ_obj2nid),
        DLSYM(OPENSSL_sk_find),
        DLSYM(OPENSSL_sk_free),
        DLSYM(OPENSSL_sk_new_null),
        DLSYM(OPENSSL_sk_num),
        DLSYM(OPENSSL_sk_pop_free),
        DLSYM(OPENSSL_sk_push),
        DLSYM(OPENSSL_sk_value),
        DLSYM(PEM_read_bio_X509),
        DLSYM(PKCS7_free),
        DLSYM(PKCS7_get0_signers),
        DLSYM(PKCS7_verify),
        DLSYM(X509_NAME_print_ex),
        DLSYM(X509_digest),
        DLSYM(X509_free),
        DLSYM(X509_get_subject_name),
        DLSYM(d2i_PKCS7),
};

#define BIO_ctrl sym_BIO_ctrl
#define BIO_free sym_BIO_free
#define BIO_new sym_BIO_new
#define BIO_new_mem_buf sym_BIO_new_mem_buf
#define BIO_s_mem sym_BIO_s_mem
#define ERR_clear_error sym_ERR_clear_error
#define ERR_pop_to_mark sym_ERR_pop_to_mark
#define ERR_set_mark sym_ERR_set_mark
#define EVP_MD_fetch sym_EVP_MD_fetch
#define EVP_MD_free sym_EVP_MD_free
#define EVP_get_digestbyname sym_EVP_get_digestbyname
#define EVP_sha256 sym_EVP_sha256
#define OBJ_nid2sn sym_OBJ_nid2sn
#define OBJ_obj2nid sym_OBJ_obj2nid
#define OPENSSL_sk_find sym_OPENSSL_sk_find
#define OPENSSL_sk_free sym_OPENSSL_sk_free
#define OPENSSL_sk_new_null sym_OPENSSL_sk_new_null
#define OPENSSL_sk_num sym_OPENSSL_sk_num
#define OPENSSL_sk_pop_free sym_OPENSSL_sk_pop_free
#define OPENSSL_sk_push sym_OPENSSL_sk_push
#define OPENSSL_sk_value sym_OPENSSL_sk_value
#define PEM_read_bio_X509 sym_PEM_read_bio_X509
#define PKCS7_free sym_PKCS7_free
#define PKCS7_get0_signers sym_PKCS7_get0_signers
#define PKCS7_verify sym_PKCS7_verify
#define X509_NAME_print_ex sym_X509_NAME_print_ex
#define X509_digest sym_X509_digest
#define X509_free sym_X509_free
#define X509_get_subject_name sym_X509_get_subject_name
#define d2i_PKCS7 sym_d2i_PKCS7

static int dlopen_libcrypto(void) {
        return dlopen_many(&libcrypto_dl, LIBCRYPTO_SONAME, "to check verity signatures", libcrypto_symbols,
                           ELEMENTSOF(libcrypto_symbols));
}

#define CERT_FILE_MAX (1024U * 1024U)
/* base64: every 4 characters carry 3 bytes; at most 2 '=' pad the last group. */
#define BASE64_GROUP_CHARS 4U
#define BASE64_GROUP_BYTES 3U
#define BASE64_PAD_MAX 2U
#define BASE64_BITS 6U

static int base64_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Our own decoder, not EVP_DecodeBlock(): reading the signature partition must not load libcrypto
 * before verity_sig_verify() needs it (and then with the image's name in a failure). */
int verity_sig_base64_decode(const char *s, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t l, pad = 0, n = 0;
        uint32_t acc = 0;

        assert(s && ret && ret_size);
        l = strlen(s);
        if (l == 0 || l % BASE64_GROUP_CHARS != 0 || l > INT32_MAX)
                return -EINVAL;
        while (pad < BASE64_PAD_MAX && s[l - 1 - pad] == '=')
                pad++;
        b = malloc(l / BASE64_GROUP_CHARS * BASE64_GROUP_BYTES + 1);
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < l; i++) {
                int v = i < l - pad ? base64_value(s[i]) : 0;

                if (v < 0)
                        return -EINVAL;
                acc = acc << BASE64_BITS | (uint32_t) v;
                if (i % BASE64_GROUP_CHARS == BASE64_GROUP_CHARS - 1)
                        for (int k = BASE64_GROUP_BYTES - 1; k >= 0; k--)
                                b[n++] = (uint8_t) (acc >> (k * 8));
        }
        if (n < pad + 1)
                return -EINVAL;
        *ret_size = n - pad;
        *ret = TAKE_PTR(b);
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(PKCS7 *, PKCS7_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);

typedef struct TrustedCerts {
        STACK_OF(X509) *certs;
        char **paths;           /* parallel to certs */
} TrustedCerts;

static void trusted_certs_done(TrustedCerts *t) {
        sk_X509_pop_free(t->certs, X509_free);
        strv_free(t->paths);
        *t = (TrustedCerts) {};
}

/* VerityCertFileFn: one PEM certificate file. */
static int load_cert_file(int dfd, const char *dir, const char *name, void *userdata) {
        TrustedCerts *t = userdata;
        _cleanup_free_ char *pem = NULL, *path = NULL;
        _cleanup_(BIO_freep) BIO *b = NULL;
        _cleanup_(X509_freep) X509 *x = NULL;
        size_t n;
        int r;

        assert(dir && name && t);
        r = read_full_file_at(dfd, name, CERT_FILE_MAX, &pem, &n);
        if (r < 0)
                return sx_error(r, "%s/%s: cannot read certificate: %m", dir, name);
        b = BIO_new_mem_buf(pem, (int) n);
        if (!b)
                return -ENOMEM;
        x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (!x)
                return sx_error(-EBADMSG, "%s/%s: not a PEM certificate", dir, name);
        path = strjoin(dir, "/", name);
        if (!path || strv_push(&t->paths, TAKE_PTR(path)) < 0)
                return -ENOMEM;
        if (!sk_X509_push(t->certs, x))
                return -ENOMEM;
        TAKE_PTR(x);
        return 0;
}

/* Unreadable certificates are errors: a broken trust store should not pass silently. */
static int load_trusted_certs(const char *root, TrustedCerts *ret) {
        TrustedCerts t = {};
        int r;

        assert(ret);
        t.certs = sk_X509_new_null();
        t.paths = calloc(1, sizeof(char *));
        r = t.certs && t.paths ? verity_cert_files_foreach(root, load_cert_file, &t) : -ENOMEM;
        if (r < 0) {
                trusted_certs_done(&t);
                return r;
        }
        *ret = t;
        return 0;
}

static int cert_fingerprint(X509 *x, char **ret) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;

        assert(x && ret);
        if (X509_digest(x, EVP_sha256(), md, &n) != 1)
                return -EIO;
        *ret = verity_hexmem(md, n);
        return *ret ? 0 : -ENOMEM;
}

static char *cert_subject(X509 *x) {
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
        char *data;
        long n;

        assert(x);
        if (!b || X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) < 0)
                return NULL;
        n = BIO_get_mem_data(b, &data);
        return n >= 0 ? strndup(data, (size_t) n) : NULL;
}

/* The one signer of p7 found in certs (NULL: internal certificates), or NULL. */
static X509 *find_signer(PKCS7 *p7, STACK_OF(X509) *certs, int flags) {
        STACK_OF(X509) *signers;
        X509 *x = NULL;

        assert(p7);
        ERR_set_mark();
        signers = PKCS7_get0_signers(p7, certs, flags);
        ERR_pop_to_mark();
        if (signers && sk_X509_num(signers) == 1)
                x = sk_X509_value(signers, 0);
        sk_X509_free(signers);
        return x;
}

/* Can OpenSSL compute every digest the signature lists? PKCS7_verify() fails if not, and OpenSSL 3.0
 * then leaks its internal copy of the content BIO (found by fuzz-verity-sig): check first. */
static bool pkcs7_digests_known(PKCS7 *p7) {
        STACK_OF(X509_ALGOR) *algs = p7->d.sign ? p7->d.sign->md_algs : NULL;

        for (int i = 0; i < sk_X509_ALGOR_num(algs); i++) {
                const X509_ALGOR *a = sk_X509_ALGOR_value(algs, i);
                EVP_MD *md;

                if (!a || !a->algorithm)
                        return false;
                if (EVP_get_digestbyobj(a->algorithm))
                        continue;
                ERR_set_mark();
                md = EVP_MD_fetch(NULL, OBJ_nid2sn(OBJ_obj2nid(a->algorithm)), NULL);
                ERR_pop_to_mark();
                if (!md)
                        return false;
                EVP_MD_free(md);
        }
        return true;
}

static bool pkcs7_verifies(PKCS7 *p7, STACK_OF(X509) *certs, const char *hex, int flags) {
        _cleanup_(BIO_freep) BIO *data = NULL;
        int r;

        assert(p7 && hex);
        if (!PKCS7_type_is_signed(p7) || !pkcs7_digests_known(p7))
                return false;
        data = BIO_new_mem_buf(hex, (int) strlen(hex));
        if (!data)
                return false;
        /* NOVERIFY: the verity.d certificates are the trust anchors themselves (usually self-signed
         * leaves without any particular purpose); what counts is that one of them made the signature. */
        ERR_set_mark();
        r = PKCS7_verify(p7, certs, NULL, data, NULL, flags | PKCS7_NOVERIFY | PKCS7_BINARY | PKCS7_NOCHAIN);
        ERR_pop_to_mark();
        return r == 1;
}

/* A signature by a certificate we do not trust still has to be intact: check it against the
 * certificate it carries, so that corruption is refused rather than reported as "untrusted". */
static int check_untrusted(const char *label, VerityData *v, PKCS7 *p7, const char *hex) {
        _cleanup_free_ char *fp = NULL;
        X509 *x = find_signer(p7, NULL, 0);

        assert(label && v);
        if (!x)
                return 0;       /* no certificate inside: nothing more to check */
        if (!pkcs7_verifies(p7, NULL, hex, 0))
                return sx_error(-EBADMSG, "%s: verity signature (%s) is corrupt: it does not verify even against its own certificate",
                                label, v->signature_source);
        if (cert_fingerprint(x, &fp) < 0)
                return -ENOMEM;
        if (v->expected_fingerprint && !streq(v->expected_fingerprint, fp))
                return sx_error(-EBADMSG, "%s: verity signature certificate does not match certificateFingerprint", label);
        return 0;
}

/* Records the trusted certificate that made the signature in v. Takes ownership of fp. */
static int set_signer(VerityData *v, const TrustedCerts *t, X509 *signer, char *fp) {
        int idx = sk_X509_find(t->certs, signer);

        assert(v && fp);
        free(v->signer_path);
        v->signer_path = idx >= 0 && (size_t) idx < strv_length(t->paths) ? strdup(t->paths[idx]) : NULL;
        free(v->signer_subject);
        v->signer_subject = cert_subject(signer);
        free(v->signer_fingerprint);
        v->signer_fingerprint = fp;
        v->signed_by_trusted = true;
        return 0;
}

static int verify_one(const char *label, VerityData *v, const TrustedCerts *t) {
        const unsigned char *p = v->signature;
        _cleanup_(PKCS7_freep) PKCS7 *p7 = NULL;
        _cleanup_free_ char *hex = NULL, *fp = NULL;
        X509 *signer;

        assert(label && v && v->signature && v->root_hash && t);
        p7 = d2i_PKCS7(NULL, &p, (long) v->signature_size);
        ERR_clear_error();
        if (!p7 || p != v->signature + v->signature_size || !PKCS7_type_is_signed(p7))
                return sx_error(-EBADMSG, "%s: verity signature (%s) is not a valid DER PKCS#7 signature", label, v->signature_source);
        hex = verity_hexmem(v->root_hash, v->root_hash_size);
        if (!hex)
                return -ENOMEM;
        v->signature_checked = true;
        /* NOINTERN: only our certificates may identify the signer, never ones the image brings. */
        signer = find_signer(p7, t->certs, PKCS7_NOINTERN);
        if (!signer)
                return check_untrusted(label, v, p7, hex);
        if (!pkcs7_verifies(p7, t->certs, hex, PKCS7_NOINTERN))
                return sx_error(-EKEYREJECTED, "%s: verity signature (%s) does not match the root hash %s", label,
                                v->signature_source, hex);
        if (cert_fingerprint(signer, &fp) < 0)
                return -ENOMEM;
        if (v->expected_fingerprint && !streq(v->expected_fingerprint, fp))
                return sx_error(-EBADMSG, "%s: verity signature was made by certificate %s, but certificateFingerprint says %s",
                                label, fp, v->expected_fingerprint);
        return set_signer(v, t, signer, TAKE_PTR(fp));
}

int verity_sig_verify(VeritySettings *s, const char *root) {
        TrustedCerts t = {};
        int r;

        assert(s);
        r = dlopen_libcrypto();
        if (r < 0)
                return sx_error_prefix(r, "%s", s->image_path);
        r = load_trusted_certs(root, &t);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(s->data) && r >= 0; i++)
                if (s->data[i].signature && s->data[i].root_hash)
                        r = verify_one(s->image_path, &s->data[i], &t);
        trusted_certs_done(&t);
        return r;
}
