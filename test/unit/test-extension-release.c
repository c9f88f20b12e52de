/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* release_file_parse(), extension_release_load() and extension_release_check(). */

#include <sys/xattr.h>

#include "extension-release.h"
#include "test-helpers.h"

static ReleaseFile *parse(const char *s) {
        ReleaseFile *f = NULL;

        sx_clear_error();
        if (release_file_parse("test", s, strlen(s), &f) < 0)
                return NULL;
        return f;
}

static void expect_value(const char *data, const char *key, const char *value) {
        _cleanup_(release_file_freep) ReleaseFile *f = parse(data);
        const char *v = f ? release_file_get(f, key) : NULL;

        CHECK(f && v && streq(v, value), "parse: %s -> [%s] (expected [%s])", key, strna(v), value);
}

static void expect_bad(const char *label, const char *data, size_t size, const char *needle) {
        ReleaseFile *f = (ReleaseFile *) 0x1;   /* must stay untouched */
        int r;

        sx_clear_error();
        r = release_file_parse("test", data, size, &f);
        CHECK(r == -EBADMSG && f == (ReleaseFile *) 0x1 && sx_last_error() && strstr(sx_last_error(), needle),
              "refuse %s: r=%d, message \"%s\"", label, r, strna(sx_last_error()));
}

static void test_parser(void) {
        const char *big = "ID=debian\n"
                "# a comment\n"
                "; also a comment\n"
                "\n"
                "   \t\n"
                "  VERSION_ID=\"12\"  \n"
                "NAME='Debian GNU/Linux'\n"
                "PRETTY=\"a \\\"quoted\\\" \\$word\\\\ \\n\"\n"
                "SPACED = value with  inner spaces   \n"
                "EMPTY=\n"
                "EMPTYQ=\"\"\n"
                "CONCAT=\"a\" 'b' c\n"
                "LITERAL=x\"y\"\n"
                "CONT=one\\\ntwo\n"
                "MULTI=\"line1\nline2\"\n"
                "CRLF=yes\r\n"
                "DUP=1\n"
                "DUP=2\n"
                "HASH=a # not a comment\n"
                "UTF8=Grüße\n"
                "NOEQUALS LINE IS IGNORED\n"
                "LAST=no newline";

        expect_value(big, "ID", "debian");
        expect_value(big, "VERSION_ID", "12");
        expect_value(big, "NAME", "Debian GNU/Linux");
        expect_value(big, "PRETTY", "a \"quoted\" $word\\ \\n");
        expect_value(big, "SPACED", "value with  inner spaces");
        expect_value(big, "EMPTY", "");
        expect_value(big, "EMPTYQ", "");
        expect_value(big, "CONCAT", "abc");
        expect_value(big, "LITERAL", "x\"y\"");
        expect_value(big, "CONT", "onetwo");
        expect_value(big, "MULTI", "line1\nline2");
        expect_value(big, "CRLF", "yes");
        expect_value(big, "DUP", "2");
        expect_value(big, "HASH", "a # not a comment");
        expect_value(big, "UTF8", "Grüße");
        expect_value(big, "LAST", "no newline");
        expect_value("# comment \\\nSWALLOWED=1\nX=2\n", "X", "2");
        {
                _cleanup_(release_file_freep) ReleaseFile *f = parse(big);
                CHECK(f && !release_file_get(f, "NOEQUALS") && !release_file_get(f, "MISSING"),
                      "parse: lines without '=' are ignored, missing keys are NULL");
                _cleanup_(release_file_freep) ReleaseFile *g = parse("# a comment \\\nSWALLOWED=1\n");
                CHECK(g && !release_file_get(g, "SWALLOWED"), "parse: backslash continues a comment (as systemd)");
                _cleanup_(release_file_freep) ReleaseFile *e = parse("");
                CHECK(e && strv_length(e->pairs) == 0, "parse: empty file gives no pairs");
        }

        expect_bad("NUL byte", "ID=deb\0ian\n", 11, "line 1: contains control character 0x00");
        expect_bad("control character", "A=1\nID=\x01\x02\x03\n", 11, "line 2: contains control character 0x01");
        expect_bad("ESC", "A=\x1b[31m\n", 8, "control character 0x1b");
        expect_bad("invalid UTF-8", "A=1\nB=\xff\xfe\n", 9, "line 2: invalid UTF-8");
        expect_bad("overlong UTF-8", "A=\xc0\xaf\n", 5, "invalid UTF-8");
        expect_bad("invalid key (space)", "FOO BAR=1\n", 10, "line 1: invalid key 'FOO BAR'");
        expect_bad("invalid key (digit)", "A=1\n\n1A=2\n", 10, "line 3: invalid key '1A'");
        expect_bad("invalid key (dash)", "A-B=1\n", 6, "invalid key 'A-B'");
        expect_bad("empty key", "=1\n", 3, "invalid key ''");
        /* the quoted key is cut at 64 bytes, but never inside a UTF-8 sequence (found by fuzz-release) */
        expect_bad("long invalid key", "A23456789 12345678901234567890123456789012345678901234567890123\xc3\xa4=1\n", 68,
                   "invalid key 'A23456789 12345678901234567890123456789012345678901234567890123'");
        expect_bad("unterminated double quote", "A=1\nB=\"abc\nC=2\n", 15, "line 2: unterminated double quote");
        expect_bad("unterminated single quote", "B='abc", 6, "line 1: unterminated single quote");
        expect_bad("escaped closing quote", "B=\"abc\\\"", 8, "unterminated double quote");

        /* A 1 MiB line: refused cleanly, with the line number. */
        size_t n = 1024 * 1024;
        _cleanup_free_ char *huge = malloc(n + 8);
        memcpy(huge, "A=1\nB=", 6);
        memset(huge + 6, 'x', n);
        huge[n + 6] = '\n';
        expect_bad("1 MiB line", huge, n + 7, "line 2: line longer than 65536 bytes");
        /* A line of exactly 64 KiB is fine. */
        memset(huge + 2, 'y', 65534);
        huge[65536] = '\n';
        {
                ReleaseFile *f = NULL;
                int r = release_file_parse("test", huge, 65537, &f);
                CHECK(r == 0 && f && strlen(release_file_get(f, "A")) == 65534, "parse: 64 KiB line accepted (r=%d)", r);
                release_file_free(f);
        }

        /* Many different keys: 1024 are fine, one more is refused (each assignment scans the keys so
         * far; 140000 of them in 1 MiB used to take a minute). Repeating a key does not count. */
        _cleanup_free_ char *many = malloc(1025 * 16 + 64);
        size_t l = 0;
        for (unsigned i = 0; i < 1024; i++)
                l += (size_t) sprintf(many + l, "K%u=%u\nK0=x\n", i, i);
        {
                ReleaseFile *f = NULL;
                int r = release_file_parse("test", many, l, &f);
                CHECK(r == 0 && f && strv_length(f->pairs) == 2048 && streq(strempty(release_file_get(f, "K0")), "x"),
                      "parse: 1024 different keys accepted (r=%d)", r);
                release_file_free(f);
        }
        l += (size_t) sprintf(many + l, "K1024=1\n");
        expect_bad("1025 different keys", many, l, "line 2049: more than 1024 different keys");
}

/* ---- compatibility rules ---- */

static void expect_check(const char *label, const char *ext_s, const char *host_s, const char *scope, int expected,
                         const char *needle) {
        _cleanup_(release_file_freep) ReleaseFile *ext = parse(ext_s), *host = parse(host_s);
        _cleanup_free_ char *reason = NULL;
        int r;

        r = extension_release_check(IMAGE_CLASS_SYSEXT, "foo", ext, host, scope, &reason);
        CHECK(r == expected && (expected != 0 || (reason && strstr(reason, needle))),
              "check %s: r=%d reason \"%s\"", label, r, strna(reason));
}

static void test_check(void) {
        const char *debian = "ID=debian\nVERSION_ID=12\n";
        const char *ubuntu = "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=12\n";
        const char *leveled = "ID=debian\nVERSION_ID=12\nSYSEXT_LEVEL=1.0\n";
        const char *rolling = "ID=arch\n";
        _cleanup_free_ char *arch_ok = NULL, *arch_bad = NULL;

        CHECK(native_architecture() && strchr(native_architecture(), '_') == NULL,
              "native_architecture() = %s", strna(native_architecture()));
        arch_ok = strjoin("ID=debian\nVERSION_ID=12\nARCHITECTURE=", native_architecture(), "\n");
        arch_bad = strjoin("ID=debian\nVERSION_ID=12\nARCHITECTURE=",
                           streq(native_architecture(), "s390x") ? "x86-64" : "s390x", "\n");

        expect_check("exact match", debian, debian, "system", 1, NULL);
        expect_check("empty extension-release", "", debian, "system", 0, "carries no data");
        expect_check("ID mismatch", "ID=fedora\nVERSION_ID=12\n", debian, "system", 0,
                     "ID=fedora does not match host ID=debian");
        expect_check("ID missing", "VERSION_ID=12\n", debian, "system", 0, "ID is not set");
        expect_check("ID=_any skips version checks", "ID=_any\n", debian, "system", 1, NULL);
        expect_check("ID=_any with other VERSION_ID", "ID=_any\nVERSION_ID=99\n", debian, "system", 1, NULL);
        expect_check("ID_LIKE", debian, ubuntu, "system", 1, NULL);
        expect_check("ID_LIKE mismatch", "ID=fedora\nVERSION_ID=12\n", ubuntu, "system", 0,
                     "ID=fedora does not match host ID=ubuntu or ID_LIKE=debian");
        expect_check("VERSION_ID mismatch", "ID=debian\nVERSION_ID=11\n", debian, "system", 0,
                     "VERSION_ID=11 does not match host VERSION_ID=12");
        expect_check("neither SYSEXT_LEVEL nor VERSION_ID", "ID=debian\n", debian, "system", 0, "VERSION_ID is not set");
        expect_check("SYSEXT_LEVEL match beats VERSION_ID", "ID=debian\nVERSION_ID=11\nSYSEXT_LEVEL=1.0\n", leveled,
                     "system", 1, NULL);
        expect_check("SYSEXT_LEVEL mismatch", "ID=debian\nVERSION_ID=12\nSYSEXT_LEVEL=2\n", leveled, "system", 0,
                     "SYSEXT_LEVEL=2 does not match host SYSEXT_LEVEL=1.0");
        expect_check("SYSEXT_LEVEL only on the extension: VERSION_ID decides", "ID=debian\nSYSEXT_LEVEL=1.0\n", debian,
                     "system", 0, "VERSION_ID is not set");
        expect_check("SYSEXT_LEVEL only on the host: VERSION_ID decides", "ID=debian\nVERSION_ID=12\n", leveled,
                     "system", 1, NULL);
        expect_check("rolling host accepts any version", "ID=arch\nVERSION_ID=1\n", rolling, "system", 1, NULL);
        expect_check("rolling host, no version at all", "ID=arch\n", rolling, "system", 1, NULL);
        expect_check("default scope includes system", debian, debian, "system", 1, NULL);
        expect_check("default scope excludes initrd", debian, debian, "initrd", 0,
                     "SYSEXT_SCOPE is not set (default 'system portable') and does not include host scope 'initrd'");
        expect_check("scope initrd on system", "ID=debian\nVERSION_ID=12\nSYSEXT_SCOPE=initrd\n", debian, "system", 0,
                     "SYSEXT_SCOPE=initrd does not include host scope 'system'");
        expect_check("scope list", "ID=debian\nVERSION_ID=12\nSYSEXT_SCOPE=\"initrd  system\"\n", debian, "initrd", 1,
                     NULL);
        expect_check("empty scope matches nothing", "ID=debian\nVERSION_ID=12\nSYSEXT_SCOPE=\n", debian, "system", 0,
                     "SYSEXT_SCOPE= does not include");
        expect_check("scope is checked before ID", "ID=fedora\nSYSEXT_SCOPE=initrd\n", debian, "system", 0,
                     "SYSEXT_SCOPE");
        expect_check("native ARCHITECTURE", arch_ok, debian, "system", 1, NULL);
        expect_check("ARCHITECTURE=_any", "ID=debian\nVERSION_ID=12\nARCHITECTURE=_any\n", debian, "system", 1, NULL);
        expect_check("foreign ARCHITECTURE", arch_bad, debian, "system", 0, "does not match host architecture");
        expect_check("architecture is checked before ID", "ID=fedora\nARCHITECTURE=nope\n", debian, "system", 0,
                     "ARCHITECTURE=nope");

        _cleanup_(release_file_freep) ReleaseFile *ext = parse(debian), *noid = parse("VERSION_ID=12\n");
        CHECK(extension_release_check(IMAGE_CLASS_SYSEXT, "foo", ext, noid, "system", NULL) == -EINVAL, "check: host without ID is an error");
}

/* confext: CONFEXT_SCOPE and CONFEXT_LEVEL instead of the SYSEXT_ keys, the rest the same. */
static void expect_confext(const char *label, const char *ext_s, const char *host_s, const char *scope, int expected,
                           const char *needle) {
        _cleanup_(release_file_freep) ReleaseFile *ext = parse(ext_s), *host = parse(host_s);
        _cleanup_free_ char *reason = NULL;
        int r = extension_release_check(IMAGE_CLASS_CONFEXT, "foo", ext, host, scope, &reason);

        CHECK(r == expected && (expected != 0 || (reason && strstr(reason, needle))),
              "confext check %s: r=%d reason \"%s\"", label, r, strna(reason));
}

static void test_check_confext(void) {
        const char *host = "ID=debian\nVERSION_ID=12\nCONFEXT_LEVEL=3\nSYSEXT_LEVEL=9\n";

        expect_confext("exact match", "ID=debian\nVERSION_ID=12\n", host, "system", 1, NULL);
        expect_confext("CONFEXT_LEVEL decides", "ID=debian\nVERSION_ID=11\nCONFEXT_LEVEL=3\n", host, "system", 1, NULL);
        expect_confext("CONFEXT_LEVEL mismatch", "ID=debian\nCONFEXT_LEVEL=4\n", host, "system", 0,
                       "CONFEXT_LEVEL=4 does not match host CONFEXT_LEVEL=3");
        expect_confext("SYSEXT_LEVEL means nothing to a confext", "ID=debian\nVERSION_ID=11\nSYSEXT_LEVEL=9\n", host,
                       "system", 0, "VERSION_ID=11 does not match");
        expect_confext("CONFEXT_SCOPE", "ID=debian\nVERSION_ID=12\nCONFEXT_SCOPE=initrd\n", host, "system", 0,
                       "CONFEXT_SCOPE=initrd does not include host scope 'system'");
        expect_confext("SYSEXT_SCOPE means nothing to a confext", "ID=debian\nVERSION_ID=12\nSYSEXT_SCOPE=initrd\n", host,
                       "system", 1, NULL);
        expect_confext("default scope excludes initrd", "ID=debian\nVERSION_ID=12\n", host, "initrd", 0,
                       "CONFEXT_SCOPE is not set");
}

/* ---- loading from a tree ---- */

static char *base;     /* per run: openat2() and the userspace fallback */

static int write_file(const char *rel, const char *content) {
        _cleanup_free_ char *p = strjoin(base, "/", rel), *dir = NULL;

        dir = strdup(p);
        *strrchr(dir, '/') = 0;
        if (mkdir_p(dir, 0755) < 0)
                return -1;
        return write_string_at(AT_FDCWD, p, content, 0644);
}

static int set_strict(const char *rel, const char *value) {
        _cleanup_free_ char *p = strjoin(base, "/", rel);

        return setxattr(p, "user.extension-release.strict", value, strlen(value), 0) < 0 ? -errno : 0;
}

static int load(const char *sub, bool usr_only, const char *name, ReleaseFile **ret, char **ret_path) {
        _cleanup_free_ char *p = strjoin(base, "/", sub);
        _cleanup_close_ int fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);

        sx_clear_error();
        return extension_release_load(fd, usr_only, IMAGE_CLASS_SYSEXT, name, ret, ret_path);
}

static void test_load(void) {
        _cleanup_(release_file_freep) ReleaseFile *f = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        /* exact name, image root and usr-only tree */
        write_file("img1/usr/lib/extension-release.d/extension-release.foo", "ID=debian\nVERSION_ID=12\n");
        r = load("img1", false, "foo", &f, &path);
        CHECK(r == 0 && f && streq(release_file_get(f, "ID"), "debian") && path &&
              streq(path, "/usr/lib/extension-release.d/extension-release.foo"),
              "load: exact name (r=%d, path %s)", r, strna(path));
        f = release_file_free(f);
        free(path);
        path = NULL;
        r = load("img1/usr", true, "foo", &f, NULL);
        CHECK(r == 0 && f, "load: usr-only tree (r=%d)", r);
        f = release_file_free(f);
        r = load("img1", false, "bar", &f, NULL);
        CHECK(r == -ENOENT && !f && strstr(strempty(sx_last_error()), "bar: no /usr/lib/extension-release.d/extension-release.bar"),
              "load: missing file -> -ENOENT, \"%s\"", strna(sx_last_error()));
        r = load("img1", false, "../x", &f, NULL);
        CHECK(r == -EINVAL, "load: invalid image name refused (r=%d)", r);

        /* symlinks resolve inside the image */
        write_file("img2/usr/lib/real", "ID=debian\n");
        write_file("img2/usr/lib/extension-release.d/.keep", "");
        {
                _cleanup_free_ char *l = strjoin(base, "/img2/usr/lib/extension-release.d/extension-release.foo");
                _cleanup_free_ char *l2 = strjoin(base, "/img2/usr/lib/extension-release.d/extension-release.esc");
                (void) symlink("/usr/lib/real", l);
                (void) symlink("/../../../../../../etc/passwd", l2);
        }
        r = load("img2", false, "foo", &f, NULL);
        CHECK(r == 0 && f && streq(strempty(release_file_get(f, "ID")), "debian"),
              "load: absolute symlink resolved inside the image (r=%d)", r);
        f = release_file_free(f);
        r = load("img2", false, "esc", &f, NULL);
        CHECK(r < 0 && !f, "load: symlink to /etc/passwd does not escape the image (r=%d, %s)", r, strna(sx_last_error()));

        /* junk and size limits */
        write_file("img3/usr/lib/extension-release.d/extension-release.junk", "ID=debian\n\x7f" "ELF\x01\x01\n");
        r = load("img3", false, "junk", &f, NULL);
        CHECK(r == -EBADMSG && strstr(strempty(sx_last_error()), "junk: /usr/lib/extension-release.d/extension-release.junk: line 2"),
              "load: binary junk refused: \"%s\"", strna(sx_last_error()));
        {
                size_t n = 2 * 1024 * 1024;
                _cleanup_free_ char *big = malloc(n + 1);
                memset(big, 'x', n);
                big[n] = 0;
                write_file("img3/usr/lib/extension-release.d/extension-release.big", big);
                big[1024 * 1024 - 8] = 0;
                memcpy(big, "A=", 2);
                write_file("img3/usr/lib/extension-release.d/extension-release.line", big);
        }
        r = load("img3", false, "big", &f, NULL);
        CHECK(r == -EFBIG && strstr(strempty(sx_last_error()), "too large"), "load: 2 MiB file refused: \"%s\"",
              strna(sx_last_error()));
        r = load("img3", false, "line", &f, NULL);
        CHECK(r == -EBADMSG && strstr(strempty(sx_last_error()), "line 1: line longer"),
              "load: 1 MiB line refused: \"%s\"", strna(sx_last_error()));
        {
                _cleanup_free_ char *fifo = strjoin(base, "/img3/usr/lib/extension-release.d/extension-release.fifo");
                (void) mkfifo(fifo, 0644);
        }
        r = load("img3", false, "fifo", &f, NULL);
        CHECK(r < 0 && strstr(strempty(sx_last_error()), "not a regular file"), "load: FIFO refused without hanging: \"%s\"",
              strna(sx_last_error()));

        /* confext: etc/extension-release.d, never in a usr-only tree */
        write_file("cx/etc/extension-release.d/extension-release.foo", "ID=debian\nVERSION_ID=12\n");
        {
                _cleanup_free_ char *p = strjoin(base, "/cx");
                _cleanup_close_ int fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);

                r = extension_release_load(fd, false, IMAGE_CLASS_CONFEXT, "foo", &f, &path);
                CHECK(r == 0 && f && path && streq(path, "/etc/extension-release.d/extension-release.foo"),
                      "load confext: /etc/extension-release.d (r=%d, path %s)", r, strna(path));
                f = release_file_free(f);
                free(path);
                path = NULL;
                sx_clear_error();
                r = extension_release_load(fd, true, IMAGE_CLASS_CONFEXT, "foo", &f, NULL);
                CHECK(r == -ENOENT && !f && strstr(strempty(sx_last_error()), "no /etc/extension-release.d/extension-release.foo"),
                      "load confext: a usr-only tree has none: \"%s\"", strna(sx_last_error()));
        }
        r = load("img1", false, "foo", &f, NULL);
        CHECK(r == 0, "load: a sysext's release file is found as before (r=%d)", r);
        f = release_file_free(f);
        {
                _cleanup_free_ char *p = strjoin(base, "/img1");
                _cleanup_close_ int fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);

                sx_clear_error();
                r = extension_release_load(fd, false, IMAGE_CLASS_CONFEXT, "foo", &f, NULL);
                CHECK(r == -ENOENT && !f, "load confext: a sysext is no confext (%s)", strna(sx_last_error()));
        }

        /* os-release inside the image */
        write_file("img4/usr/lib/extension-release.d/extension-release.foo", "ID=debian\nVERSION_ID=12\n");
        write_file("img4/usr/lib/os-release", "ID=debian\n");
        r = load("img4", false, "foo", &f, NULL);
        CHECK(r == -EMEDIUMTYPE && !f && strstr(strempty(sx_last_error()), "os-release"),
              "load: image shipping /usr/lib/os-release refused: \"%s\"", strna(sx_last_error()));
        write_file("img1/etc/os-release", "ID=debian\n");
        r = load("img1", false, "foo", &f, NULL);
        CHECK(r == 0, "load: /etc/os-release in the image is allowed, as in systemd (r=%d)", r);
        f = release_file_free(f);

        /* xattr fallback: the image file was renamed on deployment */
        write_file("img5/usr/lib/extension-release.d/extension-release.orig", "ID=debian\nVERSION_ID=12\n");
        r = set_strict("img5/usr/lib/extension-release.d/extension-release.orig", "0");
        if (r == -EOPNOTSUPP || r == -ENOTSUP || r == -EPERM) {
                printf("skip: xattr fallback: %s does not support user xattrs (%s)\n", base, strerror(-r));
                return;
        }
        CHECK(r == 0, "setxattr user.extension-release.strict (r=%d)", r);
        r = load("img5", false, "renamed", &f, &path);
        CHECK(r == 0 && f, "load: fallback to the single file with strict=0 (r=%d)", r);
        f = release_file_free(f);
        free(path);
        path = NULL;
        set_strict("img5/usr/lib/extension-release.d/extension-release.orig", "FaLsE");
        r = load("img5", false, "renamed", &f, &path);
        CHECK(r == 0 && path && streq(path, "/usr/lib/extension-release.d/extension-release.orig"),
              "load: strict=FaLsE accepted (case-insensitive, as parse_boolean), path %s", strna(path));
        f = release_file_free(f);
        set_strict("img5/usr/lib/extension-release.d/extension-release.orig", "yes");
        r = load("img5", false, "renamed", &f, NULL);
        CHECK(r == -ENOENT, "load: strict=yes is not used as a fallback (r=%d)", r);
        set_strict("img5/usr/lib/extension-release.d/extension-release.orig", "maybe");
        r = load("img5", false, "renamed", &f, NULL);
        CHECK(r == -ENOENT, "load: unparsable strict xattr is not used as a fallback (r=%d)", r);
        set_strict("img5/usr/lib/extension-release.d/extension-release.orig", "off");
        write_file("img5/usr/lib/extension-release.d/extension-release.noxattr", "ID=fedora\n");
        r = load("img5", false, "renamed", &f, NULL);
        CHECK(r == 0 && f && streq(strempty(release_file_get(f, "ID")), "debian"),
              "load: files without the xattr do not count (r=%d)", r);
        f = release_file_free(f);
        write_file("img5/usr/lib/extension-release.d/extension-release.other", "ID=debian\n");
        set_strict("img5/usr/lib/extension-release.d/extension-release.other", "n");
        r = load("img5", false, "renamed", &f, NULL);
        CHECK(r == -ENOTUNIQ && !f, "load: two relaxed candidates are ambiguous: \"%s\"", strna(sx_last_error()));
        r = load("img5", false, "orig", &f, NULL);
        CHECK(r == 0 && f, "load: the exact name still wins over the fallback (r=%d)", r);
}

static void test_host(void) {
        _cleanup_(release_file_freep) ReleaseFile *f = NULL;
        _cleanup_free_ char *root = strjoin(base, "/host");
        _cleanup_free_ char *etc = strjoin(root, "/etc/os-release");
        int r;

        write_file("host/usr/lib/os-release", "ID=debian\nVERSION_ID=12\n");
        write_file("host/etc/.keep", "");
        write_file("os-release", "ID=evil\n");
        /* the usual relative symlink, and an absolute one that must resolve inside the root */
        (void) symlink("../usr/lib/os-release", etc);
        r = host_release_load(root, &f);
        CHECK(r == 0 && streq(strempty(release_file_get(f, "ID")), "debian"), "host: etc/os-release -> ../usr/lib/os-release (r=%d)", r);
        f = release_file_free(f);
        unlink(etc);
        {
                _cleanup_free_ char *t = strjoin("/../../../../../../../../", base, "/os-release");
                (void) symlink(t, etc);
        }
        r = host_release_load(root, &f);
        CHECK(r < 0 || !streq(strempty(release_file_get(f, "ID")), "evil"),
              "host: absolute symlink out of the root does not escape (r=%d)", r);
        f = release_file_free(f);
        unlink(etc);
        r = host_release_load(root, &f);
        CHECK(r == 0 && f, "host: usr/lib/os-release fallback (r=%d)", r);
        f = release_file_free(f);
        CHECK(streq(host_scope(root), "system"), "host_scope without initrd-release = %s", host_scope(root));
        write_file("host/etc/initrd-release", "ID=debian\n");
        CHECK(streq(host_scope(root), "initrd"), "host_scope with etc/initrd-release = %s", host_scope(root));
        {
                _cleanup_free_ char *none = strjoin(base, "/nohost");
                mkdir(none, 0755);
                r = host_release_load(none, &f);
                CHECK(r == -ENOENT && !f, "host: no os-release -> -ENOENT: \"%s\"", strna(sx_last_error()));
        }
        r = host_release_load(NULL, &f);
        CHECK(r == 0 && release_file_get(f, "ID"), "host: real / has ID=%s", strna(release_file_get(f, "ID")));
}

int main(void) {
        test_parser();
        test_check();
        test_check_confext();
        if (tmpdir_create("/var/tmp/test-extension-release.XXXXXX") < 0) {
                SKIP("cannot create %s: %m", tmpdir);
                return test_result();
        }
        for (int run = 0; run < 2; run++) {
                openat_beneath_use_fallback = run == 1;
                printf("--- path resolution: %s\n", run == 0 ? "openat2()" : "userspace fallback");
                base = strjoin(tmpdir, run == 0 ? "/openat2" : "/fallback");
                (void) mkdir(base, 0755);
                test_load();
                test_host();
                free(base);
        }
        return test_result();
}
