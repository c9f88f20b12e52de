/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Image naming, image_from_path() and image_discover() on temporary trees (no root needed). */

#include <inttypes.h>

#include "extension-release.h"
#include "image.h"
#include "test-helpers.h"
#include "vpick.h"

static char *root;

static void check_parse(const char *fn, bool is_dir, const char *name, const char *version) {
        _cleanup_free_ char *n = NULL, *v = NULL;
        int r = image_name_parse(fn, is_dir, &n, &v);

        if (!name)
                CHECK(r == -EINVAL && !n && !v, "parse \"%s\"%s: refused (r=%d)", fn, is_dir ? " (dir)" : "", r);
        else
                CHECK(r == 0 && n && streq(n, name) && ((!v && !version) || (v && version && streq(v, version))),
                      "parse \"%s\"%s: name=%s version=%s", fn, is_dir ? " (dir)" : "", strna(n), strna(v));
}

static void test_names(void) {
        char longname[300];

        check_parse("foo.raw", false, "foo", NULL);
        check_parse("foo.sysext.raw", false, "foo", NULL);
        check_parse("foo_1.2.raw", false, "foo", "1.2");
        check_parse("foo_1.2.sysext.raw", false, "foo", "1.2");
        check_parse("foo_1_2.raw", false, "foo", "1_2");
        check_parse("foo_.raw", false, "foo", NULL);
        check_parse("foo", true, "foo", NULL);
        check_parse("foo_7", true, "foo", "7");
        check_parse("foo.raw", true, "foo.raw", NULL);
        check_parse("foo", false, NULL, NULL);
        check_parse("foo.img", false, NULL, NULL);
        check_parse(".raw", false, NULL, NULL);
        check_parse("_1.raw", false, NULL, NULL);
        check_parse(".hidden.raw", false, NULL, NULL);
        check_parse(".hidden", true, NULL, NULL);
        check_parse("a\tb.raw", false, NULL, NULL);
        check_parse("a\x7f.raw", false, NULL, NULL);
        check_parse("\xff\xfe.raw", false, NULL, NULL);
        check_parse("ok_\x01.raw", false, NULL, NULL);
        check_parse("a/b.raw", false, NULL, NULL);
        check_parse("..", true, NULL, NULL);
        check_parse("", true, NULL, NULL);
        check_parse("grüße.raw", false, "grüße", NULL);
        memset(longname, 'a', 252);
        strcpy(longname + 252, ".raw");                 /* 256 characters */
        check_parse(longname, false, NULL, NULL);
        longname[251] = 0;
        strcat(longname, ".raw");                       /* 255 characters: the limit */
        check_parse(longname, true, longname, NULL);
        CHECK(image_name_is_valid("foo") && !image_name_is_valid(NULL) && !image_name_is_valid("a b\n"),
              "image_name_is_valid");
        CHECK(streq(image_type_to_string(IMAGE_DIRECTORY), "directory") && streq(image_type_to_string(IMAGE_RAW), "raw") &&
              streq(image_type_to_string(IMAGE_BLOCK), "block") && !image_type_to_string(_IMAGE_TYPE_INVALID),
              "image_type_to_string");
}

static char *at(const char *rel) {
        return strjoin(root, "/", rel);
}

static void mkfile(const char *rel, const char *content) {
        _cleanup_free_ char *p = at(rel), *d = strdup(p);

        *strrchr(d, '/') = 0;
        (void) mkdir_p(d, 0755);
        if (write_string_at(AT_FDCWD, p, content, 0644) < 0)
                printf("warning: cannot write %s\n", p);
}

static void mkdirat_root(const char *rel, bool populate) {
        _cleanup_free_ char *p = at(rel), *f = strjoin(p, "/usr/lib/x");

        (void) mkdir_p(p, 0755);
        if (populate)
                mkfile(strchr(f + strlen(root) + 1, '/') ? f + strlen(root) + 1 : f, "x");
}

static void mklink(const char *target, const char *rel) {
        _cleanup_free_ char *p = at(rel);

        if (symlink(target, p) < 0)
                printf("warning: symlink %s: %s\n", p, strerror(errno));
}

static const Image *find(Image **l, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (streq(l[i]->name, name))
                        return l[i];
        return NULL;
}

static bool path_is(const Image *i, const char *rel) {
        _cleanup_free_ char *real_root = realpath(root, NULL), *p = strjoin(strempty(real_root), "/", rel);

        return i && real_root && streq(i->path, p);
}

static void build_tree(void) {
        /* /var/lib/extensions: the main place */
        mkfile("var/lib/extensions/foo.raw", "foo-in-var");
        mkdirat_root("var/lib/extensions/bar", true);
        mkfile("var/lib/extensions/baz_1.2.raw", "12");
        mkfile("var/lib/extensions/baz_1.10.raw", "110");
        mkfile("var/lib/extensions/baz_1.9.sysext.raw", "19");
        mkfile("var/lib/extensions/baz_1.10~rc1.raw", "110rc1");
        mkfile("var/lib/extensions/qux.img", "ignored suffix");
        mkfile("var/lib/extensions/.hidden.raw", "hidden");
        mkdirat_root("var/lib/extensions/.hiddendir", true);
        mkfile("store2/bad\x01name.raw", "control char");
        mkfile("var/lib/extensions/emptyone.raw", "masked by /etc");
        mkfile("var/lib/extensions/plain.sysext.raw", "plain");
        mkdirat_root("var/lib/extensions/dir_2", true);
        mkdirat_root("var/lib/extensions/dir_10", true);
        mkdirat_root("var/lib/extensions/dirmask", false);      /* empty directory masks */
        {
                _cleanup_free_ char *fifo = at("store2/fifo.raw");
                (void) mkfifo(fifo, 0644);
        }
        /* /run/extensions: wins over /var/lib */
        mkfile("run/extensions/bar.raw", "bar-in-run");
        mkfile("run/extensions/foo_9.raw", "masked by etc anyway");
        /* /etc/extensions: masks and symlinks */
        mkdirat_root("etc/extensions", false);
        mklink("/dev/null", "etc/extensions/foo");
        mkdirat_root("etc/extensions/emptyone", false);
        mkfile("store/link_3.raw", "linked");
        mklink("/store/link_3.raw", "etc/extensions/link_3.raw");
        mklink("../../store/link_3.raw", "etc/extensions/rel.raw");
        /* A symlink that would leave the root if resolved on the host. */
        {
                _cleanup_free_ char *outside = strjoin(tmpdir, "/outside.raw"), *t = strjoin("/../../../../../../..", outside);
                (void) write_string_at(AT_FDCWD, outside, "outside", 0644);
                mklink(t, "etc/extensions/escape.raw");
                mklink("/../outside2.raw", "etc/extensions/escape2.raw");
                mkfile("outside2.raw", "inside the root after all");
                mklink("/no/such/file.raw", "etc/extensions/dangling.raw");
        }

}

static void test_discover(void) {
        Image **l = NULL;
        size_t n = 0;
        const Image *i;
        int r;

        r = image_discover(root, &l, &n);
        CHECK(r == 0, "image_discover (r=%d, %zu images)", r, n);
        for (size_t k = 0; k < n; k++)
                printf("    %-10s %-8s %-9s masked=%d size=%" PRIu64 " %s\n", l[k]->name, strna(l[k]->version),
                       image_type_to_string(l[k]->type), l[k]->masked, l[k]->size, l[k]->path);

        for (size_t k = 1; k < n; k++)
                CHECK(strcmp(l[k - 1]->name, l[k]->name) < 0, "sorted: %s < %s", l[k - 1]->name, l[k]->name);

        i = find(l, n, "foo");
        CHECK(i && i->masked && strstr(i->path, "/etc/extensions/foo"), "foo: masked by /etc/extensions/foo -> /dev/null");
        i = find(l, n, "emptyone");
        CHECK(i && i->masked, "emptyone: masked by an empty directory in /etc");
        i = find(l, n, "dirmask");
        CHECK(i && i->masked, "dirmask: an empty directory masks its own name");
        i = find(l, n, "bar");
        CHECK(i && !i->masked && i->type == IMAGE_RAW && path_is(i, "run/extensions/bar.raw") && i->size == 10,
              "bar: /run wins over /var/lib");
        i = find(l, n, "baz");
        CHECK(i && streq(strempty(i->version), "1.10") && path_is(i, "var/lib/extensions/baz_1.10.raw") && i->size == 3 &&
              i->mtime_usec > 0,
              "baz: highest version 1.10 wins over 1.9, 1.2, 1.10~rc1");
        i = find(l, n, "dir");
        CHECK(i && i->type == IMAGE_DIRECTORY && streq(strempty(i->version), "10"), "dir: directory, version 10 beats 2");
        i = find(l, n, "plain");
        CHECK(i && !i->version && i->type == IMAGE_RAW, "plain: .sysext.raw suffix");
        i = find(l, n, "link");
        CHECK(i && streq(strempty(i->version), "3") && path_is(i, "store/link_3.raw"),
              "link: absolute symlink resolved inside the root (%s)", i ? i->path : "-");
        i = find(l, n, "rel");
        CHECK(i && path_is(i, "store/link_3.raw"), "rel: relative symlink resolved");
        i = find(l, n, "escape2");
        CHECK(i && path_is(i, "outside2.raw"), "escape2: /../outside2.raw stays inside the root");
        CHECK(!find(l, n, "escape"), "escape: symlink to a host file outside the root is not followed out");
        CHECK(!find(l, n, "dangling"), "dangling symlink ignored");
        CHECK(!find(l, n, "qux") && !find(l, n, ".hidden") && !find(l, n, ".hiddendir"),
              "other suffixes and hidden entries ignored");
        for (size_t k = 0; k < n; k++)
                CHECK(image_name_is_valid(l[k]->name) && strneq(l[k]->name, "bad", 3) == 0 && l[k]->path[0] == '/',
                      "valid name and absolute path: %s", l[k]->name);
        CHECK(n == 10, "10 names discovered (got %zu)", n);
        image_array_free(l, n);

        /* Entries that claim to be images but cannot be are errors naming the entry, not silently
         * skipped: a name with control characters, invalid UTF-8; a FIFO called *.raw is a raw
         * image that dissection refuses (a merge skips it with a notice). */
        {
                static const char * const bad[] = { "bad\x01name.raw", "bad\xffname.raw", "fifo.raw", "ctl\ndir" };
                for (size_t b = 0; b < ELEMENTSOF(bad); b++) {
                        _cleanup_free_ char *broot = NULL, *dir = NULL, *e = NULL;
                        if (asprintf_safe(&broot, "%s/badroot%zu", tmpdir, b) < 0)
                                continue;
                        dir = strjoin(broot, "/var/lib/extensions");
                        e = strjoin(dir, "/", bad[b]);
                        (void) mkdir_p(dir, 0755);
                        if (b == 2)
                                (void) mkfifo(e, 0644);
                        else if (b == 3)
                                (void) mkdir(e, 0755), free(dir), dir = strjoin(e, "/x"), (void) mkdir(dir, 0755);
                        else
                                (void) close(open(e, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
                        l = (Image **) 0x1;
                        sx_clear_error();
                        r = image_discover(broot, &l, &n);
                        if (b == 2) {   /* a broken discovered image: dissection refuses it, merge skips it */
                                CHECK(r >= 0 && n == 1 && streq(l[0]->name, "fifo") && l[0]->type == IMAGE_RAW,
                                      "a FIFO called fifo.raw is discovered as the raw image fifo (r=%d, n=%zu)", r, n);
                                if (r >= 0)
                                        image_array_free(l, n);
                                continue;
                        }
                        CHECK(r < 0 && l == (Image **) 0x1 && strstr(strempty(sx_last_error()), "var/lib/extensions/"),
                              "bad entry %zu fails discovery, naming it: \"%s\"", b, strna(sx_last_error()));
                }
        }

        /* Missing search directories are fine; a missing root is not. */
        {
                _cleanup_free_ char *empty = strjoin(tmpdir, "/emptyroot"), *missing = strjoin(tmpdir, "/missing");
                (void) mkdir(empty, 0755);
                l = NULL;
                r = image_discover(empty, &l, &n);
                CHECK(r == 0 && n == 0, "empty root: no images (r=%d)", r);
                image_array_free(l, n);
                l = (Image **) 0x1;
                r = image_discover(missing, &l, &n);
                CHECK(r == -ENOENT && l == (Image **) 0x1, "missing root: -ENOENT, out params untouched");
        }
}

static void test_from_path(void) {
        _cleanup_(image_freep) Image *i = NULL;
        _cleanup_free_ char *p = NULL;
        int r;

        p = at("var/lib/extensions/baz_1.10.raw");
        r = image_from_path(p, &i);
        CHECK(r == 0 && streq(i->name, "baz") && streq(strempty(i->version), "1.10") && i->type == IMAGE_RAW && i->size == 3,
              "from_path: raw file with version");
        i = image_free(i);
        free(p);
        p = at("var/lib/extensions/bar/");
        r = image_from_path(p, &i);
        CHECK(r == 0 && streq(i->name, "bar") && i->type == IMAGE_DIRECTORY && i->path[strlen(i->path) - 1] != '/',
              "from_path: directory with trailing slash");
        i = image_free(i);
        free(p);
        p = at("etc/extensions/rel.raw");
        r = image_from_path(p, &i);
        CHECK(r == 0 && streq(i->name, "rel") && strstr(i->path, "store/link_3.raw"),
              "from_path: name from the symlink, path resolved (%s)", r == 0 ? i->path : "-");
        i = image_free(i);
        free(p);
        p = at("store2/bad\x01name.raw");
        sx_clear_error();
        r = image_from_path(p, &i);
        CHECK(r == -EINVAL && !i && strstr(strempty(sx_last_error()), ": invalid image name"),
              "from_path: control character refused: \"%s\"", strna(sx_last_error()));
        free(p);
        p = at("var/lib/extensions/qux.img");
        r = image_from_path(p, &i);
        CHECK(r < 0 && !i, "from_path: regular file without .raw refused: \"%s\"", strna(sx_last_error()));
        free(p);
        p = at("store2/fifo.raw");
        r = image_from_path(p, &i);
        CHECK(r == -EMEDIUMTYPE && !i, "from_path: FIFO refused: \"%s\"", strna(sx_last_error()));
        free(p);
        p = at("nonexistent.raw");
        r = image_from_path(p, &i);
        CHECK(r == -ENOENT && !i, "from_path: missing file: \"%s\"", strna(sx_last_error()));
        r = image_from_path("/dev/null", &i);
        CHECK(r == -EMEDIUMTYPE && !i, "from_path: character device refused");
}

/* Who may change an image found in a system directory (what the PAM module and the broker trust). */
/* ---- .v directories (vpick) ---- */

/* Expect vpick_parse(fn) to give version (NULL: no candidate) with rank, tries left and done. */
static void check_vpick(const char *fn, bool is_dir, bool raw_only, const char *version, unsigned rank, unsigned left,
                        unsigned done) {
        VpickCandidate c = {};
        int r = vpick_parse(fn, is_dir, "v", raw_only, "x86-64", &c);

        if (!version)
                CHECK(r == 0 && !c.version, "vpick \"%s\"%s: not a candidate (r=%d)", fn, is_dir ? " (dir)" : "", r);
        else
                CHECK(r == 1 && c.version && streq(c.version, version) && c.arch_rank == rank && c.tries_left == left &&
                      c.tries_done == done, "vpick \"%s\"%s: version=%s rank=%u tries=%u-%u", fn, is_dir ? " (dir)" : "",
                      strna(c.version), c.arch_rank, c.tries_left, c.tries_done);
        vpick_candidate_done(&c);
}

/* The better of two entry names (both must parse). */
static const char *vpick_better(const char *a, const char *b) {
        VpickCandidate x = {}, y = {};
        const char *best = NULL;
        bool a_dir = !endswith(a, ".raw"), b_dir = !endswith(b, ".raw");

        if (vpick_parse(a, a_dir, "v", false, "x86-64", &x) == 1 && vpick_parse(b, b_dir, "v", false, "x86-64", &y) == 1)
                best = vpick_compare(&x, a, &y, b) > 0 ? a : b;
        vpick_candidate_done(&x);
        vpick_candidate_done(&y);
        return best;
}

static void check_pattern(const char *dirname, const char *base, bool raw_only) {
        _cleanup_free_ char *b = NULL;
        bool ro = false;
        int r = vpick_dir_pattern(dirname, &b, &ro);

        if (!base)
                CHECK(r == -EINVAL && !b, "vpick pattern \"%s\": refused (r=%d)", dirname, r);
        else
                CHECK(r == 0 && b && streq(b, base) && ro == raw_only, "vpick pattern \"%s\": %s%s", dirname, strna(b),
                      ro ? " (.raw only)" : "");
}

static void test_vpick(void) {
        const unsigned N = VPICK_NO_TRIES;

        check_pattern("foo.v", "foo", false);
        check_pattern("foo.raw.v", "foo", true);
        check_pattern("foo", NULL, false);
        check_pattern(".v", NULL, false);
        check_pattern(".raw.v", NULL, false);
        check_pattern("a_b.v", NULL, false);
        check_pattern("a\x01.v", NULL, false);

        check_vpick("v_1.0", true, false, "1.0", 2, N, N);
        check_vpick("v_1.0.raw", false, false, "1.0", 2, N, N);
        check_vpick("v_1.0.raw", false, true, "1.0", 2, N, N);
        check_vpick("v_2.5_x86-64", true, false, "2.5", 0, N, N);
        check_vpick("v_2.5_x86.raw", false, false, "2.5", 1, N, N);
        check_vpick("v_2.5_arm64", true, false, NULL, 0, 0, 0);         /* another architecture */
        check_vpick("v_2.5_s390x.raw", false, false, NULL, 0, 0, 0);
        check_vpick("v_3.0+0", true, false, "3.0", 2, 0, 0);
        check_vpick("v_3.0+3-1.raw", false, false, "3.0", 2, 3, 1);
        check_vpick("v_3.0_x86-64+2.raw", false, false, "3.0", 0, 2, 0);
        check_vpick("v_3.0_arm64+2.raw", false, false, NULL, 0, 0, 0);
        check_vpick("v_1_foo.raw", false, false, "1", 2, N, N);         /* "_foo" is no architecture: cut off, as systemd */
        check_vpick("v_1.0~rc1^2.raw", false, false, "1.0~rc1^2", 2, N, N);
        /* not candidates: another name, no version, wrong type for the suffix, bad characters */
        check_vpick("w_1.0.raw", false, false, NULL, 0, 0, 0);
        check_vpick("vv_1.0.raw", false, false, NULL, 0, 0, 0);
        check_vpick("v.raw", false, false, NULL, 0, 0, 0);
        check_vpick("v_.raw", false, false, NULL, 0, 0, 0);
        check_vpick("v_+1.raw", false, false, NULL, 0, 0, 0);
        check_vpick("v__x86-64.raw", false, false, NULL, 0, 0, 0);
        check_vpick("v_1.0.raw", true, false, NULL, 0, 0, 0);           /* a directory called .raw */
        check_vpick("v_1.0", false, false, NULL, 0, 0, 0);              /* a file without .raw */
        check_vpick("v_1.0", true, true, NULL, 0, 0, 0);                /* NAME.raw.v/ holds files only */
        check_vpick("v_1.0.raw.partial", false, false, NULL, 0, 0, 0);
        check_vpick("v_1 2.raw", false, false, NULL, 0, 0, 0);
        check_vpick("v_1+x.raw", false, false, NULL, 0, 0, 0);
        check_vpick("v_1+1-x.raw", false, false, NULL, 0, 0, 0);
        check_vpick("v_1\x01.raw", false, false, NULL, 0, 0, 0);
        check_vpick("v_1+99999999999.raw", false, false, NULL, 0, 0, 0);

        /* the order: tries left before +0, then version, architecture, tries left, tries done */
        CHECK(streq(strna(vpick_better("v_3.0+0", "v_1.0")), "v_1.0"), "vpick: +0 sorts after an older version");
        CHECK(streq(strna(vpick_better("v_3.0+1", "v_1.0")), "v_3.0+1"), "vpick: +1 is a try left");
        CHECK(streq(strna(vpick_better("v_10", "v_9")), "v_10"), "vpick: versions compare as versions");
        CHECK(streq(strna(vpick_better("v_2.0~rc1", "v_2.0")), "v_2.0"), "vpick: ~ sorts before the release");
        CHECK(streq(strna(vpick_better("v_2.0_x86.raw", "v_2.0_x86-64.raw")), "v_2.0_x86-64.raw"), "vpick: native before secondary");
        CHECK(streq(strna(vpick_better("v_2.0.raw", "v_2.0_x86.raw")), "v_2.0_x86.raw"), "vpick: secondary before none given");
        CHECK(streq(strna(vpick_better("v_2.0_x86", "v_1.0_x86-64")), "v_2.0_x86"), "vpick: version before architecture");
        CHECK(streq(strna(vpick_better("v_2.0+1", "v_2.0+2")), "v_2.0+2"), "vpick: more tries left");
        CHECK(streq(strna(vpick_better("v_2.0", "v_2.0+5")), "v_2.0"), "vpick: no counter before a counter");
        CHECK(streq(strna(vpick_better("v_2.0+1-3", "v_2.0+1-1")), "v_2.0+1-1"), "vpick: fewer tries done");
        CHECK(streq(strna(vpick_better("v_2.0.raw", "v_2.0")), "v_2.0.raw"), "vpick: then the file name");
        CHECK(streq(strna(vpick_secondary_architecture("x86-64")), "x86") &&
              streq(strna(vpick_secondary_architecture("arm64")), "arm") && !vpick_secondary_architecture("riscv64") &&
              !vpick_secondary_architecture(NULL), "vpick: secondary architectures as systemd's architecture.h");
}

static void build_vpick_tree(void) {
        const char *foreign = streq(strna(native_architecture()), "alpha") ? "ia64" : "alpha";
        char fn[64];

        mkdirat_root("var/lib/extensions/v.v/v_1.0", true);
        mkdirat_root("var/lib/extensions/v.v/v_2.0", true);
        mkdirat_root("var/lib/extensions/v.v/v_3.0+0", true);
        snprintf(fn, sizeof(fn), "var/lib/extensions/v.v/v_9_%s", foreign);
        mkdirat_root(fn, true);
        mkfile("var/lib/extensions/v.v/v_8", "a file without .raw");
        mkfile("var/lib/extensions/r.raw.v/r_1.raw", "1");
        mkfile("var/lib/extensions/r.raw.v/r_2.raw", "2");
        mkfile("var/lib/extensions/r.raw.v/r_3+0-3.raw", "3, no tries left");
        mkdirat_root("var/lib/extensions/r.raw.v/r_4", true);           /* .raw.v: files only */
        mkfile("var/lib/extensions/r.raw.v/.r_5.raw", "hidden");
        mkfile("var/lib/extensions/z.raw.v/z_1+0.raw", "the only one");
        mkdirat_root("var/lib/extensions/m.v/m_2", true);
        mkfile("var/lib/extensions/m.v/m_1.raw", "older");
        mkdirat_root("var/lib/extensions/e.v", false);                  /* nothing in it */
        mkfile("var/lib/extensions/f.v", "not a directory");
        mkfile("store/s.raw", "linked");
        mkdirat_root("var/lib/extensions/s.raw.v", false);
        mklink("/store/s.raw", "var/lib/extensions/s.raw.v/s_1.raw"); /* resolved inside the root */
        mkfile("var/lib/extensions/b.v/b_5.raw", "5");
        mkfile("var/lib/extensions/b_3.raw", "3");                      /* same dir, older */
        mkfile("var/lib/extensions/a.v/a_7.raw", "shadowed");
        mkfile("run/extensions/a.raw", "earlier search dir");

}

/* A search tree of .v directories, discovered as systemd-sysupdate's layout. */
static void test_vpick_discover(void) {
        _cleanup_free_ char *saved = root;
        Image **l = NULL;
        size_t n = 0;
        const Image *i;
        int r;

        root = strjoin(tmpdir, "/vroot");
        if (mkdir(root, 0755) == 0)
                build_vpick_tree();
        r = image_discover(root, &l, &n);
        CHECK(r == 0, "vpick discovery (r=%d, %zu images)", r, n);
        i = find(l, n, "v");
        CHECK(i && streq(strna(i->version), "2.0") && i->type == IMAGE_DIRECTORY && path_is(i, "var/lib/extensions/v.v/v_2.0"),
              "v.v/: v_2.0 (not the foreign architecture, +0 last): %s", i ? i->path : "missing");
        i = find(l, n, "r");
        CHECK(i && streq(strna(i->version), "2") && i->type == IMAGE_RAW && i->size == 1 &&
              path_is(i, "var/lib/extensions/r.raw.v/r_2.raw"), "r.raw.v/: r_2.raw: %s", i ? i->path : "missing");
        i = find(l, n, "z");
        CHECK(i && path_is(i, "var/lib/extensions/z.raw.v/z_1+0.raw"), "a lone +0 entry is used: %s", i ? i->path : "missing");
        i = find(l, n, "m");
        CHECK(i && i->type == IMAGE_DIRECTORY && streq(strna(i->version), "2"), "m.v/: directories and .raw files, m_2 wins");
        CHECK(!find(l, n, "e") && !find(l, n, "f") && !find(l, n, "e.v") && !find(l, n, "f.v"),
              "an empty .v directory and a .v file are no images");
        i = find(l, n, "s");
        CHECK(i && path_is(i, "store/s.raw"), "a symlink in a .v directory resolves inside the root: %s", i ? i->path : "missing");
        i = find(l, n, "b");
        CHECK(i && streq(strna(i->version), "5"), "b.v/b_5 beats b_3.raw in the same directory");
        i = find(l, n, "a");
        CHECK(i && path_is(i, "run/extensions/a.raw"), "an earlier search directory wins over a .v directory");
        image_array_free(l, n);
        {
                _cleanup_free_ char *p = at("var/lib/extensions/r.raw.v/"), *e = at("var/lib/extensions/e.v");
                Image *img = NULL;

                r = image_from_path(p, &img);
                CHECK(r == 0 && img && streq(img->name, "r") && streq(strna(img->version), "2") &&
                      path_is(img, "var/lib/extensions/r.raw.v/r_2.raw"), "image_from_path(r.raw.v/): r_2.raw (r=%d)", r);
                img = image_free(img);
                sx_clear_error();
                r = image_from_path(e, &img);
                CHECK(r == -ENOENT && !img && strstr(strna(sx_last_error()), "without a version for this machine"),
                      "image_from_path(e.v): no version: %s", strna(sx_last_error()));
        }
        free(root);
        root = TAKE_PTR(saved);
}

/* A version in a .v directory of the system dir: trusted if that directory is root's too. */
static void test_root_controlled_vpick(const char *sysdir) {
        _cleanup_free_ char *vdir = strjoin(sysdir, "/a.v"), *file = strjoin(sysdir, "/a.v/a_1.raw"), *deep = NULL;
        _cleanup_free_ char *why = NULL;
        Image img = { .path = file };
        int r;

        if (!vdir || !file || mkdir(vdir, 0755) < 0 || close(open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) != 0)
                return;
        r = image_is_root_controlled(&img, sysdir, &why);
        CHECK(r == 1, "a version in a root-owned .v directory of the system dir is trusted (%s)", strna(why));
        free(why), why = NULL;
        (void) chmod(vdir, 0777);
        r = image_is_root_controlled(&img, sysdir, &why);
        CHECK(r == 0 && why, "… not if others may write the .v directory: %s", strna(why));
        (void) chmod(vdir, 0755);
        free(why), why = NULL;
        deep = strjoin(sysdir, "/a.v/x.v/a_1.raw");
        img.path = deep;
        r = image_is_root_controlled(&img, sysdir, &why);
        CHECK(r == 0 && why, "… nor two levels down: %s", strna(why));
        (void) unlink(file);
        (void) rmdir(vdir);
}

static void test_root_controlled(void) {
        _cleanup_free_ char *why = NULL, *file = NULL, *outside = at("var/lib/extensions");
        char sysdir[] = "/run/test-image-trust.XXXXXX";
        Image img = {};
        int r;

        img.path = at("var/lib/extensions/a.raw");
        r = image_is_root_controlled(&img, outside, &why);
        CHECK(r == 0 && why && strstr(why, "writable by group or others"), "an image below /var/tmp is not trusted: %s",
              strna(why));
        free(img.path);
        if (geteuid() != 0 || !mkdtemp(sysdir)) {
                SKIP("root-controlled system directory: needs root and /run");
                return;
        }
        file = strjoin(sysdir, "/a.raw");
        if (file && close(open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) == 0) {
                img.path = file;
                free(why), why = NULL;
                r = image_is_root_controlled(&img, sysdir, &why);
                CHECK(r == 1, "an image only root can change is trusted (%s)", strna(why));
                free(why), why = NULL;
                img.path = outside;     /* where a symlink in sysdir would resolve to */
                r = image_is_root_controlled(&img, sysdir, &why);
                CHECK(r == 0 && why && strstr(why, "reached through a symlink"), "an entry resolving elsewhere is not: %s",
                      strna(why));
                (void) unlink(file);
        }
        test_root_controlled_vpick(sysdir);
        (void) rmdir(sysdir);
}

int main(void) {
        test_names();
        test_vpick();
        if (tmpdir_create("/var/tmp/test-image.XXXXXX") < 0) {
                SKIP("cannot create %s: %m", tmpdir);
                return test_result();
        }
        root = strjoin(tmpdir, "/root");
        (void) mkdir(root, 0755);
        build_tree();
        for (int run = 0; run < 2; run++) {
                openat_beneath_use_fallback = run == 1;
                printf("--- path resolution: %s\n", run == 0 ? "openat2()" : "userspace fallback");
                test_discover();
                test_vpick_discover();
        }
        test_from_path();
        test_root_controlled();
        free(root);
        return test_result();
}
