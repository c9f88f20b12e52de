/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "test-helpers.h"
#include "util.h"

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
        setenv("SYSEXT_IDMAP_RUNTIME_DIR", "/tmp/x", 1);
        CHECK(streq(sx_runtime_dir(), "/tmp/x"), "runtime dir from the environment");
        unsetenv("SYSEXT_IDMAP_RUNTIME_DIR");
        CHECK(streq(sx_runtime_dir(), "/run/sysext-idmap"), "default runtime dir");
}

int main(void) {
        test_strv();
        test_strings();
        test_paths();
        test_numbers();
        test_files();
        test_errors();
        return test_result();
}
