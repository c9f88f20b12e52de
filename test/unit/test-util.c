/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>

#include "test-helpers.h"
#include "test-hooks.h"
#include "util.h"

static char *mfree_str(char *p) {
        free(p);
        return NULL;
}

static void test_strv(void) {
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *j = NULL;

        CHECK(strv_split("::a::b:", ":", &l) == 0 && strv_length(l) == 2, "strv_split drops empty words");
        CHECK(strv_contains(l, "b") && !strv_contains(l, "c"), "strv_contains");
        CHECK(strv_extend(&l, "c") == 0 && strv_length(l) == 3, "strv_extend");
        j = strv_join(l, ", ");
        CHECK(j && streq(j, "a, b, c"), "strv_join: %s", strna(j));
}

static void test_strings(void) {
        _cleanup_free_ char *a = strjoin("x", "/", "y"), *e = cescape("a\nb\x01\x7f"), *bad = cescape("\xff\xfe");

        CHECK(a && streq(a, "x/y"), "strjoin");
        CHECK(startswith("foobar", "foo") && !startswith("fo", "foo"), "startswith");
        CHECK(streq(strempty(startswith_ptr("foobar", "foo")), "bar") && !startswith_ptr("x", "y"), "startswith_ptr");
        CHECK(endswith("a.raw", ".raw") && !endswith("raw", ".raw"), "endswith");
        CHECK(string_has_cc("a\tb") && string_has_cc("\x7f") && !string_has_cc("plain ü"), "string_has_cc");
        CHECK(utf8_is_valid("ü€𝄞") && !utf8_is_valid("\xc0\xaf") && !utf8_is_valid("\xed\xa0\x80") &&
              !utf8_is_valid("\xf4\x90\x80\x80") && !utf8_is_valid("\xe2\x82"), "utf8_is_valid: overlong, surrogate, range, truncated");
        CHECK(e && streq(e, "a\\x0ab\\x01\\x7f"), "cescape control characters: %s", strna(e));
        CHECK(bad && streq(bad, "\\xff\\xfe"), "cescape invalid UTF-8: %s", strna(bad));
}

static void test_paths(void) {
        _cleanup_free_ char *a = path_join_root(NULL, "usr"), *b = path_join_root("/", "/usr/"),
                            *c = path_join_root("/r//", "//usr//lib/"), *d = path_join_root("/", "");

        CHECK(a && streq(a, "/usr"), "path_join_root(NULL, usr) = %s", strna(a));
        CHECK(b && streq(b, "/usr"), "path_join_root(/, /usr/) = %s", strna(b));
        CHECK(c && streq(c, "/r/usr/lib"), "path_join_root(/r//, //usr//lib/) = %s", strna(c));
        CHECK(d && streq(d, "/"), "path_join_root(/, \"\") = %s", strna(d));
        CHECK(path_is_safe_component("a") && !path_is_safe_component("..") && !path_is_safe_component("a/b") &&
              !path_is_safe_component(""), "path_is_safe_component");
}

static void test_numbers(void) {
        uint64_t v;
        uint32_t w;

        CHECK(safe_atou64("42", &v) == 0 && v == 42, "safe_atou64");
        CHECK(safe_atou64("-1", &v) < 0 && safe_atou64("", &v) < 0 && safe_atou64("1x", &v) < 0 &&
              safe_atou64(" 1", &v) < 0, "safe_atou64 refuses junk");
        CHECK(safe_atou64("010", &v) == 0 && v == 10 && safe_atou64("0x10", &v) == -EINVAL && safe_atou64("+1", &v) < 0,
              "safe_atou64 is decimal only");
        CHECK(safe_atou32("4294967295", &w) == 0 && w == UINT32_MAX && safe_atou32("4294967296", &w) == -ERANGE,
              "safe_atou32 range");
}

static void test_files(void) {
        char dir[] = "/var/tmp/test-util.XXXXXX";
        _cleanup_free_ char *buf = NULL, *fifo = NULL;
        _cleanup_close_ int dfd = -EBADF;
        size_t n = 0;

        if (!mkdtemp(dir)) {
                CHECK(false, "mkdtemp: %s", strerror(errno));
                return;
        }
        dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        CHECK(write_string_at(dfd, "f", "hello\n", 0644) == 0, "write_string_at");
        CHECK(read_full_file_at(dfd, "f", 64, &buf, &n) == 0 && n == 6 && streq(buf, "hello\n"), "read_full_file_at");
        free(buf);
        buf = NULL;
        CHECK(read_full_file_at(dfd, "f", 3, &buf, &n) == -EFBIG, "read_full_file_at refuses files over the limit");
        free(buf), buf = NULL;
        CHECK(read_full_file_at(dfd, "f", 6, &buf, &n) == 0 && n == 6, "read_full_file_at takes a file of exactly the limit");
        free(buf), buf = NULL;
        CHECK(read_full_file_at(dfd, "f", 5, &buf, &n) == -EFBIG, "read_full_file_at refuses one byte over the limit");
        fifo = strjoin(dir, "/fifo");
        CHECK(mkfifo(fifo, 0600) == 0 && read_full_file_at(dfd, "fifo", 64, &buf, &n) == -EBADFD,
              "read_full_file_at refuses a FIFO without hanging");
        CHECK(symlinkat("/etc/passwd", dfd, "out") == 0 && openat_beneath(dfd, "out", O_RDONLY, false) == -EXDEV,
              "openat_beneath refuses an absolute symlink leaving the tree");
        int fd = openat_beneath(dfd, "out", O_PATH, true);
        CHECK(fd == -ENOENT, "openat_beneath(in_root) resolves the symlink inside the tree: %d", fd);
        safe_close(fd);
        (void) unlinkat(dfd, "f", 0);
        (void) unlinkat(dfd, "fifo", 0);
        (void) unlinkat(dfd, "out", 0);
        (void) rmdir(dir);
}

static void test_errors(void) {
        sx_clear_error();
        CHECK(!sx_last_error(), "no error recorded");
        CHECK(sx_error(-EINVAL, "%s: %s", "x.raw", "bad") == -EINVAL && streq(strempty(sx_last_error()), "x.raw: bad"),
              "sx_error returns r and records the message");
        /* A message too long for the buffer is shortened between characters, never inside a UTF-8
         * sequence, at either cut (found by fuzz-idmap). */
        for (size_t pre = 0; pre < 2; pre++)
                for (size_t post = 0; post < 2; post++) {
                        char src[64] = "", dst[16];
                        strcat(src, pre ? "a" : "");
                        for (size_t i = 0; i < 20; i++)
                                strcat(src, "\xc3\xa4");
                        strcat(src, post ? "b" : "");
                        copy_message(dst, sizeof(dst), src);
                        CHECK(strlen(dst) < sizeof(dst) && strstr(dst, "...") && utf8_is_valid(dst),
                              "copy_message cuts at character boundaries (%zu, %zu)", pre, post);
                }
        /* The library reads no environment: only the CLI's main() fills the test hooks. */
        setenv("SYSEXT_IDMAP_RUNTIME_DIR", "/tmp/x", 1);
        CHECK(streq(sx_runtime_dir(), "/run/sysext-idmap"), "the library ignores $SYSEXT_IDMAP_RUNTIME_DIR");
        unsetenv("SYSEXT_IDMAP_RUNTIME_DIR");
#if SYSEXT_IDMAP_TEST_HOOKS
        test_hooks.runtime_dir = "/tmp/x";
        CHECK(streq(sx_runtime_dir(), "/tmp/x"), "runtime dir from the test hook");
        test_hooks.runtime_dir = NULL;
#endif
        CHECK(streq(sx_runtime_dir(), "/run/sysext-idmap"), "default runtime dir");
}

static void sizes(const char *s, int r_expected, uint64_t expected) {
        uint64_t v = 0;
        int r = parse_size(s, &v);

        CHECK(r == r_expected && (r < 0 || v == expected), "parse_size(\"%s\") = %d, %" PRIu64, s, r, v);
}

/* Who may change what a path names: every directory from / and the file must be root's and not
 * group/other writable, without symlinks. Built in a scratch tree below /run (root's, 0755). */
static void test_root_controlled(void) {
        _cleanup_free_ char *why = NULL;
        char dir[] = "/run/test-util-XXXXXX", p[256];
        struct stat st = {};

        sizes("0", 0, 0);
        sizes("4096", 0, 4096);
        sizes("64K", 0, 64 * 1024);
        sizes("256M", 0, UINT64_C(256) << 20);
        sizes("2G", 0, UINT64_C(2) << 30);
        sizes("1T", 0, UINT64_C(1) << 40);
        sizes("", -EINVAL, 0);
        sizes("12Q", -EINVAL, 0);
        sizes("1KB", -EINVAL, 0);
        sizes("-1", -EINVAL, 0);
        sizes("99999999999999999999", -ERANGE, 0);
        sizes("20000000000000T", -ERANGE, 0);

        if (geteuid() != 0 || !mkdtemp(dir)) {
                SKIP("path_is_root_controlled: needs root and a writable /run");
                return;
        }
        snprintf(p, sizeof(p), "%s/img.raw", dir);
        CHECK(chmod(dir, 0755) == 0 && write_string_at(AT_FDCWD, p, "x", 0644) == 0 && stat(p, &st) == 0, "scratch tree");
        CHECK(path_is_root_controlled(p, &st, &why) == 1 && !why, "%s: root-controlled", p);
        CHECK(path_is_root_controlled(dir, NULL, &why) == 1, "%s: root-controlled directory", dir);
        chmod(p, 0664);
        CHECK(path_is_root_controlled(p, &st, &why) == 0 && why && strstr(why, "writable by group or others"),
              "group-writable image: %s", strna(why));
        why = mfree_str(why);
        chmod(p, 0644);
        chmod(dir, 01777);
        CHECK(path_is_root_controlled(p, &st, &why) == 0 && why && strstr(why, dir), "sticky world-writable directory: %s",
              strna(why));
        why = mfree_str(why);
        chmod(dir, 0755);
        CHECK(chown(p, 65534, 65534) == 0 && path_is_root_controlled(p, &st, &why) == 0 && why && strstr(why, "not owned by root"),
              "image owned by nobody: %s", strna(why));
        why = mfree_str(why);
        CHECK(chown(p, 0, 0) == 0, "chown back");
        char l[300];
        snprintf(l, sizeof(l), "%s/link.raw", dir);
        CHECK(symlink("img.raw", l) == 0 && path_is_root_controlled(l, &st, &why) == 0 && why && strstr(why, "symlink"),
              "a symlink: %s", strna(why));
        why = mfree_str(why);
        struct stat other = st;
        other.st_ino++;
        CHECK(path_is_root_controlled(p, &other, &why) == 0 && why && strstr(why, "changed"), "another inode: %s", strna(why));
        why = mfree_str(why);
        CHECK(path_is_root_controlled("/var/tmp", NULL, &why) == 0 && why, "/var/tmp (1777): %s", strna(why));
        why = mfree_str(why);
        CHECK(unlink(l) == 0 && unlink(p) == 0 && rmdir(dir) == 0, "scratch tree removed");
}

/* Messages carry the errno's text through %m and context through a prefix; the helpers decide on the
 * errno a message was recorded for, never on its text. */
static void test_error_helpers(void) {
        sx_clear_error();
        CHECK(sx_error(-ENOENT, "/x: cannot open: %m") == -ENOENT &&
              streq(strna(sx_last_error()), "/x: cannot open: No such file or directory"), "sx_error %%m: %s",
              strna(sx_last_error()));
        CHECK(sx_error_prefix(-ENOENT, "image %s", "a") == -ENOENT &&
              streq(strna(sx_last_error()), "image a: /x: cannot open: No such file or directory"),
              "sx_error_prefix keeps the callee's message: %s", strna(sx_last_error()));
        CHECK(sx_error_prefix(-EACCES, "image %s", "b") == -EACCES &&
              streq(strna(sx_last_error()), "image b: Permission denied"),
              "sx_error_prefix does not glue a message of another errno: %s", strna(sx_last_error()));
        CHECK(sx_error_fallback(-EACCES, "fallback") == -EACCES && startswith(strna(sx_last_error()), "image b"),
              "sx_error_fallback keeps a message recorded for the same errno: %s", strna(sx_last_error()));
        CHECK(sx_error_fallback(-ENOMEM, "c: %m") == -ENOMEM && streq(strna(sx_last_error()), "c: Cannot allocate memory"),
              "sx_error_fallback records when nothing was said about the errno: %s", strna(sx_last_error()));
        sx_clear_error();
        CHECK(!sx_last_error() && sx_error_prefix(-EIO, "d") == -EIO && streq(strna(sx_last_error()), "d: Input/output error"),
              "sx_error_prefix after sx_clear_error: %s", strna(sx_last_error()));
        sx_clear_error();
}

int main(void) {
        test_strv();
        test_strings();
        test_paths();
        test_numbers();
        test_files();
        test_errors();
        test_error_helpers();
        test_root_controlled();
        return test_result();
}
