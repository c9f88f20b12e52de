/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Verity: root hash and signature sources, PKCS#7 checks against verity.d certificates, userspace
 * verification and activation, on images built at test time by verity-images.sh (systemd-repart,
 * mkfs.erofs + veritysetup + sfdisk, bare erofs with sidecars). Tampered copies must be refused with a
 * message naming the file, and no loop device backed by our files may remain after any case. */

#include <sys/xattr.h>

#include "dissect.h"
#include "test-helpers.h"
#include "test-hooks.h"
#include "verity.h"

#if !SYSEXT_IDMAP_TEST_HOOKS
/* The trusted certificates of these tests live in a scratch directory, which only the test hook
 * SYSEXT_IDMAP_VERITY_DIRS can name. */
int main(void) {
        printf("SKIP: test-verity needs a build with -Dtest_hooks=true\n");
        return 77;
}
#else

#ifndef TEST_SOURCE_DIR
#error "TEST_SOURCE_DIR must be defined"
#endif

static bool can_mount;

static char *read_text(const char *name) {
        char *c = NULL;
        size_t n;

        if (read_full_file_at(AT_FDCWD, T(name), 1 << 20, &c, &n) < 0)
                return NULL;
        while (n > 0 && (c[n - 1] == '\n' || c[n - 1] == ' '))
                c[--n] = 0;
        return c;
}

static uint64_t read_u64(const char *name) {
        _cleanup_free_ char *c = read_text(name);
        uint64_t v = 0;

        if (!c || safe_atou64(c, &v) < 0)
                abort();
        return v;
}

static bool error_says(const char *what) {
        const char *e = sx_last_error();
        return e && strstr(e, what);
}

/* Overwrite one byte; xor 0 = put `set` instead. */
static int patch_byte(const char *name, uint64_t offset, uint8_t xor, int set) {
        _cleanup_close_ int fd = open(T(name), O_RDWR | O_CLOEXEC);
        uint8_t b;

        if (fd < 0 || pread(fd, &b, 1, (off_t) offset) != 1)
                return -EIO;
        b = set >= 0 ? (uint8_t) set : (uint8_t) (b ^ xor);
        return pwrite(fd, &b, 1, (off_t) offset) == 1 ? 0 : -EIO;
}

/* user_image: opened as a path a user controls (no symlinks, sidecars included). */
static int load_image(const char *name, bool user_image, DissectedImage **ret_m, VeritySettings **ret_s) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        Image img = { .name = (char *) "test", .path = T(name), .type = IMAGE_RAW, .no_symlinks = user_image };
        int r;

        sx_clear_error();
        r = dissect_image(&img, &m);
        if (r < 0)
                return r;
        r = verity_settings_load(m, T(name), user_image, ret_s);
        if (r < 0)
                return r;
        *ret_m = TAKE_PTR(m);
        return 0;
}

static int load(const char *name, DissectedImage **ret_m, VeritySettings **ret_s) {
        return load_image(name, false, ret_m, ret_s);
}

static char *verity_dirs_hook;

static void set_cert_dirs(const char *dirs) {
        _cleanup_free_ char *v = NULL;
        _cleanup_strv_free_ char **l = NULL;

        if (strv_split(dirs, ":", &l) < 0)
                abort();
        /* every entry lies in tmpdir */
        _cleanup_strv_free_ char **full = calloc(1, sizeof(char *));
        if (!full)
                abort();
        STRV_FOREACH(d, l)
                if (strv_extend(&full, T(*d)) < 0)
                        abort();
        v = strv_join(full, ":");
        if (!v)
                abort();
        /* What the CLI's main() does from $SYSEXT_IDMAP_VERITY_DIRS; the library reads no environment. */
        free(verity_dirs_hook);
        test_hooks.verity_dirs = verity_dirs_hook = TAKE_PTR(v);
}

/* Open designator d with the given mode; returns r of verity_open_partition. */
static int try_open(const DissectedImage *m, const VeritySettings *s, PartitionDesignator d, VerityMode mode,
                    VerityCheckedBy *ret_checked) {
        _cleanup_(verity_context_done) VerityContext c = VERITY_CONTEXT_INIT(s, mode);
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        sx_clear_error();
        r = verity_open_partition(m, d, &c, &fd);
        if (r >= 0 && (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode)))
                r = -ENOTBLK;
        if (ret_checked)
                *ret_checked = c.result[d].checked_by;
        return r;
}

/* ---- cases ---- */

/* A signed DDI (repart or rootless): hash source, signature trust with various cert dirs,
 * userspace verification, kernel mode refusal, mounting through the hook. */
static void test_signed_ddi(const char *name, const char *expected_name) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        _cleanup_(verity_settings_freep) VeritySettings *s = NULL;
        _cleanup_free_ char *expected = read_text(expected_name), *fp = read_text("cert.fp"), *hex = NULL;
        const VerityData *v;
        VerityCheckedBy by;
        int r;

        if (load(name, &m, &s) < 0) {
                CHECK(false, "%s: dissect and load verity settings", name);
                return;
        }
        v = verity_settings_get(s, PARTITION_USR);
        hex = v->root_hash ? verity_hexmem(v->root_hash, v->root_hash_size) : NULL;
        CHECK(hex && expected && streq(hex, expected), "%s: usr root hash from the signature partition (%s)", name, strna(hex));
        CHECK(streq(strempty(v->root_hash_source), "signature partition") && v->signature &&
              streq(strempty(v->signature_source), "signature partition"), "%s: sources recorded as signature partition", name);
        CHECK(v->expected_fingerprint && fp && streq(v->expected_fingerprint, fp), "%s: certificateFingerprint read", name);
        CHECK(!verity_settings_get(s, PARTITION_ROOT)->root_hash, "%s: no root hash for root", name);
        CHECK(verity_protection(m, s, PARTITION_USR) == VERITY_PROTECTION_VERITY &&
              verity_protection(m, s, PARTITION_ROOT) == VERITY_PROTECTION_ABSENT, "%s: before signature check: usr verity, root absent", name);

        set_cert_dirs("empty");
        sx_clear_error();
        r = verity_settings_verify_signatures(s, NULL);
        CHECK(r == 0 && !v->signed_by_trusted && verity_protection(m, s, PARTITION_USR) == VERITY_PROTECTION_VERITY,
              "%s: empty cert dir: not signed, still verity", name);
        set_cert_dirs("othercerts");
        r = verity_settings_verify_signatures(s, NULL);
        CHECK(r == 0 && !v->signed_by_trusted, "%s: other certificate only: not signed", name);
        set_cert_dirs("mask:certs");
        r = verity_settings_verify_signatures(s, NULL);
        CHECK(r == 0 && !v->signed_by_trusted, "%s: certificate masked by /dev/null symlink in an earlier dir: not signed", name);
        set_cert_dirs("missing:othercerts:certs");
        r = verity_settings_verify_signatures(s, NULL);
        CHECK(r == 0 && v->signed_by_trusted && verity_protection(m, s, PARTITION_USR) == VERITY_PROTECTION_SIGNED,
              "%s: trusted certificate: signed", name);
        CHECK(v->signer_fingerprint && fp && streq(v->signer_fingerprint, fp) && v->signer_subject &&
              strstr(v->signer_subject, "CN=verity-test") && v->signer_path && endswith(v->signer_path, "certs/cert.crt"),
              "%s: signer %s, %s, %s", name, strna(v->signer_fingerprint), strna(v->signer_subject), strna(v->signer_path));

        r = try_open(m, s, PARTITION_USR, VERITY_MODE_USERSPACE, &by);
        CHECK(r == 0 && by == VERITY_CHECKED_USERSPACE, "%s: userspace verification passes", name);
        r = try_open(m, s, PARTITION_USR, VERITY_MODE_AUTO, &by);
        CHECK(r == 0 && by == (verity_kernel_available() ? VERITY_CHECKED_KERNEL : VERITY_CHECKED_USERSPACE),
              "%s: auto picks %s", name, verity_checked_by_to_string(by));
        r = try_open(m, s, PARTITION_USR, VERITY_MODE_OFF, &by);
        CHECK(r == -EOPNOTSUPP && by == VERITY_CHECKED_NONE, "%s: mode off: plain loop device, unverified", name);
        if (!verity_kernel_available()) {
                r = try_open(m, s, PARTITION_USR, VERITY_MODE_KERNEL, NULL);
                CHECK(r < 0 && error_says("dm-verity") && error_names(T(name)), "%s: mode kernel without dm: %s", name,
                      strna(sx_last_error()));
        } else
                SKIP("%s: kernel mode refusal: this kernel has dm-verity", name);
        CHECK(loops_in_tmpdir() == 0, "%s: no loop device left", name);

        if (!can_mount)
                return;
        _cleanup_(verity_context_done) VerityContext c = VERITY_CONTEXT_INIT(s, VERITY_MODE_AUTO);
        ImageMounts mounts = IMAGE_MOUNTS_NULL;
        _cleanup_free_ char *hello = NULL;
        int dir_fd = -EBADF;

        sx_clear_error();
        r = dissected_image_mount(m, verity_open_partition, &c, &mounts);
        CHECK(r == 0, "%s: mounted through the verity hook", name);
        if (r == 0) {
                CHECK(verity_context_relinquish(&c) >= 0, "%s: relinquish", name);
                CHECK(c.result[PARTITION_USR].has_verity && c.result[PARTITION_USR].is_signed &&
                      c.result[PARTITION_USR].checked_by != VERITY_CHECKED_NONE &&
                      streq(strempty(c.result[PARTITION_USR].root_hash), strempty(expected)),
                      "%s: result: verity, signed, checked by %s", name,
                      verity_checked_by_to_string(c.result[PARTITION_USR].checked_by));
                if (image_mounts_open_hierarchy(&mounts, "/usr/share/testext", &dir_fd) >= 0)
                        (void) read_full_file_at(dir_fd, "hello", 64, &hello, NULL);
                CHECK(hello && streq(hello, "hello\n"), "%s: file readable from the verified mount", name);
                safe_close(dir_fd);
                image_mounts_done(&mounts);
        }
        CHECK(loops_in_tmpdir() == 0, "%s: no loop device left after unmount", name);
}

/* A copy of ddi.raw with one change; load (and, if that passes, verify + userspace-open) must fail. */
static void expect_refused(const char *copy, const char *what, const char *expect_in_msg) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        _cleanup_(verity_settings_freep) VeritySettings *s = NULL;
        int r;

        set_cert_dirs("certs");
        r = load(copy, &m, &s);
        if (r >= 0) {
                sx_clear_error();
                r = verity_settings_verify_signatures(s, NULL);
        }
        if (r >= 0)
                r = try_open(m, s, m->partitions[PARTITION_USR].found ? PARTITION_USR : PARTITION_ROOT, VERITY_MODE_USERSPACE, NULL);
        CHECK(r < 0 && error_names(T(copy)) && (!expect_in_msg || error_says(expect_in_msg)),
              "%s refused: %s", what, strna(sx_last_error()));
        CHECK(loops_in_tmpdir() == 0, "%s: no loop device left", what);
}

static void test_tampered_ddi(void) {
        _cleanup_free_ char *json = read_text("ddi.json"), *h = read_text("ddi.expected"), *wt = NULL, *odd = NULL;
        uint64_t dataoff = read_u64("ddi.raw.dataoff"), hashoff = read_u64("ddi.raw.hashoff"), sigoff = read_u64("ddi.raw.sigoff");
        const char *sigfield;
        char du[40], hu[40];

        if (!json || !h) {
                CHECK(false, "reading ddi.json");
                return;
        }
        (void) snprintf(du, sizeof(du), "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
        (void) snprintf(hu, sizeof(hu), "%.8s-%.4s-%.4s-%.4s-%.12s", h + 32, h + 40, h + 44, h + 48, h + 52);

        CHECK(run("cp ddi.raw data.raw") == 0 && patch_byte("data.raw", dataoff + 2048, 0x01, -1) == 0, "copy: data byte flipped");
        expect_refused("data.raw", "flipped byte in data partition", "verity data does not match the root hash (userspace check)");
        CHECK(run("cp ddi.raw hash.raw") == 0 && patch_byte("hash.raw", hashoff + 4096 + 7, 0x80, -1) == 0, "copy: hash byte flipped");
        expect_refused("hash.raw", "flipped byte in hash partition", "verity data does not match the root hash");
        CHECK(run("cp ddi.raw sb.raw") == 0 && patch_byte("sb.raw", hashoff + 1, 0xff, -1) == 0, "copy: verity superblock byte flipped");
        expect_refused("sb.raw", "flipped byte in verity superblock", "superblock");
        /* a hex digit of rootHash replaced by another hex digit */
        CHECK(run("cp ddi.raw rh.raw") == 0 && patch_byte("rh.raw", sigoff + STRLEN("{\"rootHash\":\"") + 5, 0,
                                                             json[STRLEN("{\"rootHash\":\"") + 5] == '0' ? '1' : '0') == 0,
              "copy: rootHash in JSON changed");
        expect_refused("rh.raw", "root hash in JSON changed", "UUIDs do not match");
        sigfield = strstr(json, "\"signature\":\"");
        if (sigfield) {
                const char *b64 = sigfield + STRLEN("\"signature\":\"");
                size_t blen = strcspn(b64, "\"");
                uint64_t at = (uint64_t) (b64 - json) + blen - 12;
                CHECK(run("cp ddi.raw sig.raw") == 0 && patch_byte("sig.raw", sigoff + at, 0, json[at] == 'A' ? 'B' : 'A') == 0,
                      "copy: signature byte changed");
                expect_refused("sig.raw", "signature bytes changed", "signature");
                /* and with no trusted certificate at all it is still noticed */
                _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
                _cleanup_(verity_settings_freep) VeritySettings *s = NULL;
                set_cert_dirs("empty");
                int r = load("sig.raw", &m, &s);
                if (r >= 0)
                        r = verity_settings_verify_signatures(s, NULL);
                CHECK(r < 0 && error_names(T("sig.raw")) && error_says("corrupt"),
                      "signature bytes changed, untrusted: refused as corrupt: %s", strna(sx_last_error()));
        }
        CHECK(run("cp ddi.raw junk.raw") == 0 && patch_byte("junk.raw", sigoff + strlen(json) + 100, 0, 'x') == 0, "copy: junk after NUL");
        expect_refused("junk.raw", "junk after the NUL padding", "after the JSON");
        CHECK(run("cp ddi.raw bad.raw") == 0 && patch_byte("bad.raw", sigoff, 0, '[') == 0, "copy: JSON broken");
        expect_refused("bad.raw", "invalid JSON", "JSON");
        CHECK(run("cp ddi.raw uuid.raw && sfdisk -q --part-uuid uuid.raw 1 11111111-2222-3333-4444-555555555555") == 0,
              "copy: data partition UUID changed");
        expect_refused("uuid.raw", "partition UUID not matching the root hash", "UUIDs do not match");
        CHECK(run("bash %s/unit/verity-images.sh mkddi big.raw usr.erofs usr.verity ddi.json %s %s 10240", TEST_SOURCE_DIR, du, hu) == 0,
              "built DDI with a 5 MiB signature partition");
        expect_refused("big.raw", "oversize signature partition", "larger than");

        if (asprintf_safe(&wt, "{\"rootHash\":123,\"signature\":\"AAAA\"}") < 0 ||
            asprintf_safe(&odd, "{\"rootHash\":\"%.63s\",\"signature\":\"AAAA\"}", h) < 0)
                abort();
        CHECK(write_string_at(AT_FDCWD, T("wt.json"), wt, 0644) == 0 && write_string_at(AT_FDCWD, T("odd.json"), odd, 0644) == 0,
              "wrote JSON variants");
        CHECK(run("bash %s/unit/verity-images.sh mkddi wt.raw usr.erofs usr.verity wt.json %s %s", TEST_SOURCE_DIR, du, hu) == 0 &&
              run("bash %s/unit/verity-images.sh mkddi odd.raw usr.erofs usr.verity odd.json %s %s", TEST_SOURCE_DIR, du, hu) == 0,
              "built DDIs with JSON variants");
        expect_refused("wt.raw", "rootHash of the wrong type", "wrong type");
        expect_refused("odd.raw", "odd-length rootHash", "not a valid hex");
}

static void test_bare(void) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        _cleanup_(verity_settings_freep) VeritySettings *s = NULL;
        _cleanup_free_ char *expected = read_text("bare.expected"), *hex = NULL, *want_src = NULL;
        const VerityData *v;
        int r;

        if (load("bare.raw", &m, &s) < 0) {
                CHECK(false, "bare.raw: dissect and load");
                return;
        }
        v = verity_settings_get(s, PARTITION_ROOT);
        hex = v->root_hash ? verity_hexmem(v->root_hash, v->root_hash_size) : NULL;
        want_src = strjoin("sidecar ", T("bare.roothash"));
        CHECK(hex && expected && streq(hex, expected) && streq(strempty(v->root_hash_source), want_src),
              "bare.raw: root hash from %s", strna(v->root_hash_source));
        CHECK(v->hash_path && endswith(v->hash_path, "/bare.verity") && v->signature && endswith(strempty(v->signature_source), "bare.roothash.p7s"),
              "bare.raw: hash tree %s, signature from %s", strna(v->hash_path), strna(v->signature_source));
        set_cert_dirs("certs");
        r = verity_settings_verify_signatures(s, NULL);
        CHECK(r == 0 && verity_protection(m, s, PARTITION_ROOT) == VERITY_PROTECTION_SIGNED, "bare.raw: signed sidecar verifies");
        r = try_open(m, s, PARTITION_ROOT, VERITY_MODE_USERSPACE, NULL);
        CHECK(r == 0, "bare.raw: userspace verification passes");
        CHECK(loops_in_tmpdir() == 0, "bare.raw: no loop device left");

        /* tampered data with intact sidecars */
        CHECK(run("cp bare.raw bbad.raw && cp bare.verity bbad.verity && cp bare.roothash bbad.roothash") == 0 &&
              patch_byte("bbad.raw", 4096 + 100, 0x01, -1) == 0, "copy: bare data byte flipped");
        expect_refused("bbad.raw", "bare image with flipped data byte", "userspace check");
        CHECK(run("cp bare.raw bhash.raw && cp bare.verity bhash.verity && cp bare.roothash bhash.roothash") == 0 &&
              patch_byte("bhash.verity", 4096 + 3, 0x01, -1) == 0, "copy: .verity byte flipped");
        expect_refused("bhash.raw", "bare image with flipped .verity byte", "userspace check");
        CHECK(run("cp bare.raw bnov.raw && cp bare.roothash bnov.roothash") == 0, "copy: no .verity");
        expect_refused("bnov.raw", "root hash without hash tree file", ".verity");
        /* a bad signature sidecar over a good hash */
        CHECK(run("cp bare.raw bsig.raw && cp bare.verity bsig.verity && cp bare.roothash bsig.roothash && "
                  "head -c 600 bare.roothash.p7s > bsig.roothash.p7s") == 0, "copy: truncated .p7s");
        expect_refused("bsig.raw", "truncated signature sidecar", "PKCS#7");
        /* a signature listing a digest algorithm OpenSSL does not know: refused, and (under ASan) without
         * the leak OpenSSL 3.0's PKCS7_verify() has on that path (found by fuzz-verity-sig) */
        CHECK(run("cp bare.raw bdig.raw && cp bare.verity bdig.verity && cp bare.roothash bdig.roothash && "
                  "python3 -c 'import sys; d = open(\"bare.roothash.p7s\", \"rb\").read(); "
                  "o = bytes.fromhex(\"0609608648016503040201\"); "
                  "open(\"bdig.roothash.p7s\", \"wb\").write(d.replace(o, bytes.fromhex(\"0609608648016501040201\"), 1))'") == 0,
              "copy: .p7s with an unknown digest algorithm");
        expect_refused("bdig.raw", "signature with an unknown digest algorithm", "verity signature");

        /* xattr instead of a sidecar */
        _cleanup_(dissected_image_freep) DissectedImage *m2 = NULL;
        _cleanup_(verity_settings_freep) VeritySettings *s2 = NULL;
        CHECK(run("cp bare.raw bx.raw && cp bare.verity bx.verity") == 0, "copy: bx.raw");
        if (expected && setxattr(T("bx.raw"), "user.verity.roothash", expected, strlen(expected), 0) == 0) {
                r = load("bx.raw", &m2, &s2);
                v = r >= 0 ? verity_settings_get(s2, PARTITION_ROOT) : NULL;
                CHECK(v && v->root_hash && streq(strempty(v->root_hash_source), "xattr user.verity.roothash") &&
                      try_open(m2, s2, PARTITION_ROOT, VERITY_MODE_USERSPACE, NULL) == 0,
                      "xattr user.verity.roothash: loaded and verified");
        } else
                SKIP("xattr: cannot set user.verity.roothash here: %m");

        /* no .raw suffix: the suffix is appended to the full name; usrhash for a bare image */
        _cleanup_(dissected_image_freep) DissectedImage *m3 = NULL;
        _cleanup_(verity_settings_freep) VeritySettings *s3 = NULL;
        CHECK(run("cp bare.raw bu.img && cp bare.verity bu.img.verity && cp bare.roothash bu.img.usrhash") == 0, "copy: bu.img");
        r = load("bu.img", &m3, &s3);
        v = r >= 0 ? verity_settings_get(s3, PARTITION_ROOT) : NULL;
        CHECK(v && v->root_hash && endswith(strempty(v->root_hash_source), "/bu.img.usrhash") && v->hash_path &&
              endswith(v->hash_path, "/bu.img.verity") && try_open(m3, s3, PARTITION_ROOT, VERITY_MODE_USERSPACE, NULL) == 0,
              "bu.img: NAME.usrhash and NAME.verity beside a name without .raw");
        /* no hash at all */
        _cleanup_(dissected_image_freep) DissectedImage *m4 = NULL;
        _cleanup_(verity_settings_freep) VeritySettings *s4 = NULL;
        CHECK(run("cp bare.raw plain.raw") == 0 && load("plain.raw", &m4, &s4) == 0 &&
              verity_protection(m4, s4, PARTITION_ROOT) == VERITY_PROTECTION_UNPROTECTED &&
              try_open(m4, s4, PARTITION_ROOT, VERITY_MODE_AUTO, NULL) == -EOPNOTSUPP,
              "plain.raw: unprotected, hook defers to the plain loop device");
        CHECK(loops_in_tmpdir() == 0, "bare variants: no loop device left");
}

static void test_sidecar_on_ddi(void) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        _cleanup_(verity_settings_freep) VeritySettings *s = NULL;
        int r;

        /* a .usrhash sidecar agreeing with the signature partition: sidecar wins the hash source */
        CHECK(run("cp ddi.raw side.raw && cp ddi.expected side.usrhash") == 0, "copy: side.raw + side.usrhash");
        r = load("side.raw", &m, &s);
        const VerityData *v = r >= 0 ? verity_settings_get(s, PARTITION_USR) : NULL;
        CHECK(v && endswith(strempty(v->root_hash_source), "/side.usrhash") && streq(strempty(v->signature_source), "signature partition"),
              "side.raw: hash from sidecar, signature from partition");
        /* a .usrhash sidecar disagreeing with it */
        CHECK(run("cp ddi.raw side2.raw && cp bare.expected side2.usrhash") == 0, "copy: side2.raw with wrong usrhash");
        expect_refused("side2.raw", "sidecar hash differing from signature partition", "differs");
        /* .roothash on a usr-only image */
        CHECK(run("cp ddi.raw side3.raw && cp ddi.expected side3.roothash") == 0, "copy: side3.raw with roothash");
        expect_refused("side3.raw", "root hash for an image without root partition", "no root partition");
}

static void test_modes(void) {
        CHECK(verity_mode_from_string("auto") == VERITY_MODE_AUTO && verity_mode_from_string("kernel") == VERITY_MODE_KERNEL &&
              verity_mode_from_string("userspace") == VERITY_MODE_USERSPACE && verity_mode_from_string("off") == VERITY_MODE_OFF &&
              verity_mode_from_string("on") == _VERITY_MODE_INVALID && verity_mode_from_string(NULL) == _VERITY_MODE_INVALID,
              "verity mode strings parse");
        CHECK(streq(verity_mode_to_string(VERITY_MODE_USERSPACE), "userspace") && !verity_mode_to_string(_VERITY_MODE_MAX),
              "verity mode strings format");
        CHECK(streq(verity_protection_to_string(VERITY_PROTECTION_SIGNED), "signed") &&
              streq(verity_protection_to_string(VERITY_PROTECTION_UNPROTECTED), "unprotected"), "protection strings");
}

/* An image someone else may write: checked and served from a private sealed copy, so rewriting the
 * file after the check changes nothing that is read; the copy has a size limit. Sidecars of such an
 * image are never followed through a symlink. */
static void test_private_copy(void) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL, *m2 = NULL;
        _cleanup_(verity_settings_freep) VeritySettings *s = NULL, *s2 = NULL;
        ImageMounts mounts = IMAGE_MOUNTS_NULL;
        _cleanup_free_ char *hello = NULL;
        int r, dir_fd = -EBADF;

        CHECK(run("cp bare.raw pc.raw && cp bare.verity pc.verity && cp bare.roothash pc.roothash && "
                  "cp bare.roothash.p7s pc.roothash.p7s") == 0, "copy: pc.raw with sidecars");
        set_cert_dirs("certs");
        r = load_image("pc.raw", true, &m, &s);
        if (r >= 0)
                r = verity_settings_verify_signatures(s, NULL);
        CHECK(r == 0 && verity_protection(m, s, PARTITION_ROOT) == VERITY_PROTECTION_SIGNED,
              "pc.raw: loaded as a user's image, signed (%s)", strna(sx_last_error()));
        if (r < 0)
                return;
        {
                _cleanup_(verity_context_done) VerityContext c = VERITY_CONTEXT_INIT(s, VERITY_MODE_USERSPACE);
                c.private_copy = true;
                c.private_copy_max = 4096;
                sx_clear_error();
                r = dissected_image_mount(m, verity_open_partition, &c, &mounts);
                CHECK(r == -EFBIG && error_says("exceed the limit"), "pc.raw: a private copy over the limit is refused: %s",
                      strna(sx_last_error()));
                CHECK(loops_in_tmpdir() == 0, "pc.raw: nothing left after the refusal");
        }
        if (!can_mount)
                return;
        _cleanup_(verity_context_done) VerityContext c = VERITY_CONTEXT_INIT(s, VERITY_MODE_USERSPACE);
        c.private_copy = true;
        c.private_copy_max = UINT64_C(1) << 30;
        sx_clear_error();
        r = dissected_image_mount(m, verity_open_partition, &c, &mounts);
        CHECK(r == 0 && c.result[PARTITION_ROOT].checked_by == VERITY_CHECKED_USERSPACE_COPY,
              "pc.raw: mounted from a private copy (%s)", strna(sx_last_error()));
        if (r < 0)
                return;
        CHECK(loops_in_tmpdir() == 0, "pc.raw: no loop device is backed by the image file itself");
        /* The owner rewrites the whole file after the check, before anything is read. */
        CHECK(run("dd if=/dev/zero of=pc.raw bs=4096 count=$(( $(stat -c %%s pc.raw) / 4096 )) conv=notrunc status=none") == 0,
              "pc.raw: overwritten with zeros while mounted");
        if (image_mounts_open_hierarchy(&mounts, "/usr/share/testext", &dir_fd) >= 0)
                (void) read_full_file_at(dir_fd, "hello", 64, &hello, NULL);
        CHECK(hello && streq(hello, "hello\n"), "pc.raw: the mount still serves the verified bytes");
        safe_close(dir_fd);
        image_mounts_done(&mounts);

        /* The type probed before verification must be the verified device's (a polyglot whose
         * magic a writer flipped while we probed): pretend the early probe said squashfs. */
        {
                _cleanup_(verity_context_done) VerityContext c2 = VERITY_CONTEXT_INIT(s, VERITY_MODE_USERSPACE);
                ImageMounts mounts2 = IMAGE_MOUNTS_NULL;
                char *saved = m->partitions[PARTITION_ROOT].fstype;
                CHECK(run("cp bare.raw pc.raw") == 0, "pc.raw: restored");
                m->partitions[PARTITION_ROOT].fstype = (char *) "squashfs";
                sx_clear_error();
                r = dissected_image_mount(m, verity_open_partition, &c2, &mounts2);
                m->partitions[PARTITION_ROOT].fstype = saved;
                CHECK(r == -EBADMSG && error_says("probed as squashfs before verification but erofs after"),
                      "pc.raw: a type that differs after verification is refused: %s", strna(sx_last_error()));
                image_mounts_done(&mounts2);
        }

        CHECK(run("cp bare.raw pcs.raw && cp bare.roothash pcs.roothash && cp bare.roothash.p7s pcs.roothash.p7s && "
                  "cp bare.verity hidden.verity && chmod 0600 hidden.verity && ln -s hidden.verity pcs.verity") == 0,
              "copy: pcs.raw whose .verity is a symlink");
        r = load_image("pcs.raw", true, &m2, &s2);
        CHECK(r == -ELOOP && error_says("symlink"), "pcs.raw: a symlinked sidecar of a user's image is not followed: %s",
              strna(sx_last_error()));
        CHECK(run("rm pcs.roothash && ln -s pc.roothash pcs.roothash && rm pcs.verity && cp bare.verity pcs.verity") == 0,
              "copy: pcs.raw whose .roothash is a symlink");
        m2 = dissected_image_free(m2);
        s2 = verity_settings_free(s2);
        r = load_image("pcs.raw", true, &m2, &s2);
        CHECK(r == -ELOOP && error_says("symlink"), "pcs.raw: a symlinked root hash sidecar is not followed: %s",
              strna(sx_last_error()));
}

/* A build without OpenSSL or without libcryptsetup (-Dopenssl=disabled, -Dcryptsetup=disabled): what
 * it still does, and that what it cannot do fails closed, naming the image and the missing library. */
static void test_reduced_build(void) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL, *m2 = NULL;
        _cleanup_(verity_settings_freep) VeritySettings *s = NULL, *s2 = NULL;
        const VerityData *v;
        VerityCheckedBy by;
        int r;

        if (load("bare.raw", &m, &s) < 0) {
                CHECK(false, "bare.raw: dissect and load (%s)", strna(sx_last_error()));
                return;
        }
        v = verity_settings_get(s, PARTITION_ROOT);
        CHECK(v->root_hash && v->signature && v->hash_path, "bare.raw: root hash, signature and hash tree found");
        set_cert_dirs("certs");
        r = verity_settings_verify_signatures(s, NULL);
        if (HAVE_OPENSSL)
                CHECK(r == 0 && verity_protection(m, s, PARTITION_ROOT) == VERITY_PROTECTION_SIGNED, "bare.raw: signed sidecar verifies");
        else
                CHECK(r == 0 && !v->signature_checked && verity_protection(m, s, PARTITION_ROOT) == VERITY_PROTECTION_VERITY,
                      "bare.raw: without OpenSSL the signature stays unchecked: verity, not signed");
        r = try_open(m, s, PARTITION_ROOT, VERITY_MODE_USERSPACE, &by);
        if (HAVE_LIBCRYPTSETUP)
                CHECK(r == 0 && by == VERITY_CHECKED_USERSPACE, "bare.raw: userspace verification passes");
        else
                CHECK(r == -EIO && error_names(T("bare.raw")) && error_says("built without libcryptsetup"),
                      "bare.raw: without libcryptsetup a known root hash stops the mount: %s", strna(sx_last_error()));
        r = try_open(m, s, PARTITION_ROOT, VERITY_MODE_OFF, &by);
        CHECK(r == -EOPNOTSUPP && by == VERITY_CHECKED_NONE, "bare.raw: mode off: plain loop device, unverified");
        if (!HAVE_LIBCRYPTSETUP) {
                uint8_t hash[32] = {};
                CHECK(!verity_kernel_available(), "without libcryptsetup: no dm-verity");
                CHECK(verity_check_userspace("x.raw", -EBADF, 0, 0, -EBADF, 0, 0, hash, sizeof(hash)) == -EOPNOTSUPP &&
                      error_says("built without libcryptsetup"), "without libcryptsetup: verity_check_userspace() refuses");
        } else {
                CHECK(run("cp bare.raw bbad.raw && cp bare.verity bbad.verity && cp bare.roothash bbad.roothash") == 0 &&
                      patch_byte("bbad.raw", 4096 + 100, 0x01, -1) == 0, "copy: bare data byte flipped");
                expect_refused("bbad.raw", "bare image with flipped data byte", "userspace check");
        }

        r = load("ddi.raw", &m2, &s2);
        if (HAVE_OPENSSL)
                CHECK(r == 0 && verity_settings_get(s2, PARTITION_USR)->root_hash, "ddi.raw: root hash from the signature partition");
        else
                CHECK(r == -EOPNOTSUPP && error_names(T("ddi.raw")) && error_says("built without OpenSSL"),
                      "ddi.raw: without OpenSSL a signature partition cannot be read: %s", strna(sx_last_error()));
        CHECK(loops_in_tmpdir() == 0, "reduced build: no loop device left");
}

int main(void) {
        test_setup_output();
        test_modes();
        if (tmpdir_create("/var/tmp/test-verity-XXXXXX") < 0) {
                fprintf(stderr, "mkdtemp: %m\n");
                return 1;
        }
        if (geteuid() != 0 || access("/dev/loop-control", W_OK) < 0) {
                SKIP("verity tests need root and /dev/loop-control");
                return 77;
        }
        if (!have("veritysetup") || !have("mkfs.erofs") || !have("sfdisk") || !have("openssl")) {
                SKIP("verity tests need veritysetup, mkfs.erofs, sfdisk and openssl");
                return 77;
        }
        can_mount = mount_tests_possible();

        if (run("bash %s/unit/verity-images.sh", TEST_SOURCE_DIR) != 0 ||
            run("mkdir -p certs othercerts empty mask && cp cert.pem certs/cert.crt && cp other.pem othercerts/other.crt && "
                "ln -s /dev/null mask/cert.crt") != 0) {
                CHECK(false, "building test images (verity-images.sh)");
                return 1;
        }
        if (!HAVE_OPENSSL || !HAVE_LIBCRYPTSETUP) {
                SKIP("full verity tests: built without %s", HAVE_OPENSSL ? "libcryptsetup" : "OpenSSL");
                test_reduced_build();
                return test_result();
        }
        /* libcryptsetup keeps /dev/urandom and /dev/random open once its RNG is initialised: take
         * the baseline after the first case. */
        test_signed_ddi("ddi.raw", "ddi.expected");
        int fds_at_start = count_fds();
        if (access(T("repart.expected"), F_OK) == 0)
                test_signed_ddi("repart.raw", "repart.expected");
        else
                SKIP("systemd-repart DDI: systemd-repart/mksquashfs missing or failed");
        test_tampered_ddi();
        test_sidecar_on_ddi();
        test_bare();
        test_private_copy();
        CHECK(loops_in_tmpdir() == 0, "no loop device of ours left at the end");
        CHECK(count_fds() == fds_at_start, "no fd leaked (%d open at start, %d at end)", fds_at_start, count_fds());
        return test_result();
}
#endif
