/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The start-up split: libcryptsetup, libcrypto and libsystemd are dlopen()ed only when needed
 * (dlopen-util.h), so this test binary, which links the whole library, must not have them mapped
 * until a verity or reload path asks for them. Also the helpers that replaced library calls: our
 * base64 decoder (was EVP_DecodeBlock) and the id128 parser/formatter (were in libsystemd). */

#include "dlopen-util.h"
#include "id128-util.h"
#include "test-helpers.h"
#include "verity-setup.h"
#include "verity-sig.h"

/* Whether a shared object whose file name starts with prefix is mapped into this process. */
static bool mapped(const char *prefix) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/maps", "re");
        char line[PATH_MAX + 128];

        if (!f)
                return false;
        while (fgets(line, sizeof(line), f)) {
                const char *slash = strrchr(line, '/');

                if (slash && startswith(slash + 1, prefix))
                        return true;
        }
        return false;
}

static void test_not_loaded_at_start(void) {
        CHECK(!mapped("libcryptsetup.so"), "libcryptsetup is not loaded at start-up");
        CHECK(!mapped("libcrypto.so"), "libcrypto is not loaded at start-up");
        CHECK(!mapped("libsystemd.so"), "libsystemd is not loaded at start-up");
        CHECK(!mapped("libdevmapper.so"), "libdevmapper is not loaded at start-up");
}

static void check_b64(const char *in, const char *want) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t n = 0;
        int r = verity_sig_base64_decode(in, &b, &n);

        if (!HAVE_OPENSSL) {
                CHECK(r == -EOPNOTSUPP, "base64 \"%s\": not supported without OpenSSL", in);
                return;
        }
        if (!want)
                CHECK(r == -EINVAL, "base64 \"%s\" is refused (%d)", in, r);
        else
                CHECK(r == 0 && n == strlen(want) && memcmp(b, want, n) == 0, "base64 \"%s\" -> \"%s\"", in, want);
}

static void test_base64(void) {
        check_b64("Zm9vYmFy", "foobar");
        check_b64("Zm9vYmE=", "fooba");
        check_b64("Zm9vYg==", "foob");
        check_b64("Zg==", "f");
        check_b64("+/+/", "\xfb\xff\xbf");        /* the two characters beyond alnum */
        check_b64("", NULL);
        check_b64("Zm9", NULL);
        check_b64("Zm9vY===", NULL);
        check_b64("====", NULL);
        check_b64("Zm=v", NULL);
        check_b64("Zm9v YmE", NULL);
        check_b64("Zm9v\nYmE=", NULL);
        CHECK(!mapped("libcrypto.so"), "decoding base64 does not load libcrypto");
}

static void test_id128(void) {
        const char *u = "4d21b016-b534-45c2-a9fb-5c16e091fd2d";
        char s[ID128_UUID_STRING_MAX];
        sd_id128_t a, b;

        CHECK(id128_from_string(u, &a) == 0 && streq(id128_to_uuid_string(a, s), u), "UUID round trip: %s", s);
        CHECK(id128_from_string("4D21B016B53445C2A9FB5C16E091FD2D", &b) == 0 && sd_id128_equal(a, b),
              "32 hex digits, upper case");
        CHECK(a.bytes[0] == 0x4d && a.bytes[15] == 0x2d, "byte order is the string's");
        CHECK(id128_from_string("4d21b016-b534-45c2-a9fb-5c16e091fd2", &b) == -EINVAL, "short UUID refused");
        CHECK(id128_from_string("4d21b016b-534-45c2-a9fb-5c16e091fd2d", &b) == -EINVAL, "misplaced dash refused");
        CHECK(id128_from_string("4d21b016-b534-45c2-a9fb-5c16e091fdzd", &b) == -EINVAL, "non-hex refused");
        CHECK(id128_from_string("", &b) == -EINVAL && id128_from_string(NULL, &b) == -EINVAL, "empty refused");
}

static void test_dlopen_errors(void) {
        static void *dl;
        static void *sym_strlen;
        const DlopenSymbol syms[] = { { &sym_strlen, "no_such_symbol_here" } };
        const char *e;

        sx_clear_error();
        CHECK(dlopen_many(&dl, "libno-such-library.so.7", "for the test", NULL, 0) == -EOPNOTSUPP && !dl,
              "a missing library is -EOPNOTSUPP");
        e = sx_last_error();
        CHECK(e && strstr(e, "libno-such-library.so.7") && strstr(e, "for the test"), "the message names it: %s", strna(e));
        CHECK(dlopen_many(&dl, "libc.so.6", "for the test", syms, ELEMENTSOF(syms)) == -EOPNOTSUPP && !dl &&
              !sym_strlen, "a missing symbol is -EOPNOTSUPP and leaves nothing set");
        e = sx_last_error();
        CHECK(e && strstr(e, "no_such_symbol_here"), "the message names the symbol: %s", strna(e));
}

/* After a chroot (as after joining another mount namespace) the soname would resolve in someone
 * else's files: refused. */
static void test_refuses_other_root(void) {
        static void *dl;
        char dir[] = "/tmp/test-dlopen-XXXXXX";
        int status = 0;
        pid_t pid;

        if (geteuid() != 0) {
                SKIP("chroot needs root");
                return;
        }
        if (!mkdtemp(dir)) {
                CHECK(false, "mkdtemp: %m");
                return;
        }
        pid = fork();
        if (pid == 0) {
                if (chroot(dir) < 0 || chdir("/") < 0)
                        _exit(2);
                _exit(dlopen_many(&dl, "libc.so.6", "for the test", NULL, 0) == -EPERM && !dl ? 0 : 1);
        }
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "inside another root, loading is refused (child status %d)", status);
        (void) rmdir(dir);
        CHECK(dlopen_many(&dl, "libc.so.6", "for the test", NULL, 0) == 0 && dl, "in our own root it loads");
}

static void test_cryptsetup_on_demand(void) {
        if (!HAVE_LIBCRYPTSETUP) {
                CHECK(verity_setup_supported("x") == -EOPNOTSUPP, "without libcryptsetup: not supported");
                return;
        }
        CHECK(verity_setup_supported("x") == 0, "libcryptsetup loads when verity needs it");
        CHECK(mapped("libcryptsetup.so.12"), "and then it is mapped");
}

int main(void) {
        test_setup_output();
        test_not_loaded_at_start();
        test_base64();
        test_id128();
        test_dlopen_errors();
        test_refuses_other_root();
        test_cryptsetup_on_demand();
        return test_result();
}
