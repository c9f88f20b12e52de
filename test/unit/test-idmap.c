/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <sys/mount.h>

#include "idmap-auto.h"
#include "idmap.h"
#include "overlay.h"
#include "test-helpers.h"

static void test_parse_ok(void) {
        static const struct {
                const char *spec;
                IdmapKind kind;
                uint32_t disk_uid, want_uid;
        } ok[] = {
                { NULL,                       IDMAP_IDENTITY, 1000, 1000 },
                { "",                         IDMAP_IDENTITY, 5, 5 },
                { "identity",                 IDMAP_IDENTITY, 0, 0 },
                { "b:1000:0:1",               IDMAP_MAP, 1000, 0 },
                { "b:1000:0:1",               IDMAP_MAP, 0, UINT32_MAX },
                { "u:0:100000:65536,g:0:100000:65536", IDMAP_MAP, 7, 100007 },
                { "b:0:10:10,b:20:30:5",      IDMAP_MAP, 22, 32 },
                { "foreign",                  IDMAP_MAP, FOREIGN_UID_BASE + 5, 5 },
                { "foreign",                  IDMAP_MAP, 0, UINT32_MAX },
                /* Decimal as newuidmap reads it, leading zeros included: never octal. */
                { "b:010:0:1",                IDMAP_MAP, 10, 0 },
                { "b:010:0:1",                IDMAP_MAP, 8, UINT32_MAX },
                { "b:0:0010:1",               IDMAP_MAP, 0, 10 },
                { "b:4294967294:0:1",         IDMAP_MAP, IDMAP_ID_MAX, 0 },
                { "userns:/proc/1/ns/user",   IDMAP_USERNS, 0, 0 },
                { "pid:1",                    IDMAP_USERNS, 0, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                _cleanup_(idmap_freep) Idmap *m = NULL;
                int r = idmap_parse(ok[i].spec, &m);

                CHECK(r == 0 && m && m->kind == ok[i].kind, "parse '%s' → kind %d", strna(ok[i].spec), m ? (int) m->kind : -1);
                if (r == 0 && ok[i].kind != IDMAP_USERNS)
                        CHECK(idmap_map_uid(m, ok[i].disk_uid) == ok[i].want_uid && idmap_map_gid(m, ok[i].disk_uid) == ok[i].want_uid,
                              "'%s': on-disk %u appears as %u", strna(ok[i].spec), ok[i].disk_uid, ok[i].want_uid);
        }
}

static void test_parse_bad(void) {
        static const char * const bad[] = {
                "b:1:2", "x:1:2:3", "u:0:0:0", "b:a:0:1", "b:0:0:-1", "b:4294967295:0:2", "b:0:4294967295:1",
                "b::0:1", "b:0:0:1:", "userns:", "userns:relative", "pid:", "pid:abc", "pid:0", "user:",
                "user:no-such-user-here", "user:root", "identity,b:0:0:1", "userns:/x,b:0:0:1", "b:0:10:10,b:5:100:10",
                "b:0:10:10,b:100:15:1", "u:0:0:1", "g:0:0:1", "b:0:0:1,,", ",b:0:0:1", "b:0:0:1,,b:5:5:1", "b:0:0:1\n", "foreign,foreign", "user:daemon,u:1:0:10,g:1:0:10", "b:5:5:1,user:daemon",
                /* Not decimal digits, or too big: an error, never another base or a wrapped value. */
                "b:0x10:0:1", "b:0:0X1:1", "b:+1:0:1", "b: 1:0:1", "b:1 :0:1", "b:-0:0:1", "b:1e3:0:1",
                "b:4294967296:0:1", "b:0:0:4294967296", "b:0:0:18446744073709551617", "pid:+1", "pid:0x1",
                "pid: 1", "pid:2147483648",
                /* auto decides per layer: alone only */
                "auto,b:0:0:1", "b:0:0:1,auto", "auto,auto", "user:daemon,auto", "Auto",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                Idmap *m = (Idmap *) 0x1;
                int r;

                sx_clear_error();
                r = idmap_parse(bad[i], &m);
                _cleanup_free_ char *e = cescape(bad[i]);
                CHECK(r < 0 && m == (Idmap *) 0x1 && startswith(strempty(sx_last_error()), "--idmap"),
                      "refuse '%s': %s", strna(e), strna(sx_last_error()));
        }

        /* Invalid UTF-8 is refused up front, not quoted into the message (found by fuzz-idmap). */
        Idmap *m = NULL;
        sx_clear_error();
        CHECK(idmap_parse("b:0:0:1,\x85", &m) == -EINVAL && !m && utf8_is_valid(strempty(sx_last_error())),
              "refuse invalid UTF-8 with a clean message: %s", strna(sx_last_error()));
}

static void test_number(void) {
        static const struct {
                const char *s;
                int r;
                uint32_t v;
        } t[] = {
                { "0", 0, 0 }, { "010", 0, 10 }, { "4294967295", 0, UINT32_MAX }, { "00000000000000000001", 0, 1 },
                { "", -EINVAL, 0 }, { "0x10", -EINVAL, 0 }, { "+1", -EINVAL, 0 }, { "-1", -EINVAL, 0 },
                { " 1", -EINVAL, 0 }, { "1\n", -EINVAL, 0 }, { "4294967296", -ERANGE, 0 },
                { "99999999999999999999999", -ERANGE, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                uint32_t v = 7;
                int r = idmap_parse_number(t[i].s, &v);
                _cleanup_free_ char *e = cescape(t[i].s);

                CHECK(r == t[i].r && v == (r == 0 ? t[i].v : 7), "idmap_parse_number('%s') = %d, %u", strna(e), r, v);
        }

        /* The message names the option and the word. */
        Idmap *m = NULL;
        sx_clear_error();
        CHECK(idmap_parse("b:0x10:0:1", &m) == -EINVAL && strstr(strempty(sx_last_error()), "--idmap") &&
              strstr(strempty(sx_last_error()), "'0x10' is not a decimal number"),
              "hex refused by name: %s", strna(sx_last_error()));
        sx_clear_error();
        CHECK(idmap_parse("b:4294967296:0:1", &m) == -ERANGE && strstr(strempty(sx_last_error()), "'4294967296' is out of range"),
              "out of range refused by name: %s", strna(sx_last_error()));
}

static void test_user(void) {
        _cleanup_(idmap_freep) Idmap *m = NULL;

        CHECK(idmap_parse("user:daemon", &m) == 0 && m->untrusted && idmap_map_uid(m, IDMAP_NOBODY_ID) == 1 &&
              idmap_map_uid(m, 0) == UINT32_MAX && idmap_map_gid(m, IDMAP_NOBODY_ID) == 1,
              "user:daemon: on-disk nobody appears as daemon, root stays unmapped");
}

static void test_from_extents(void) {
        _cleanup_(idmap_freep) Idmap *m = NULL;
        IdmapExtent u[] = { { 0, 100000, 65536 } }, g[] = { { 0, 200000, 10 } };

        CHECK(idmap_from_extents(u, 1, g, 1, &m) == 0 && streq(m->spec, "u:0:100000:65536,g:0:200000:10"),
              "idmap_from_extents canonical spec: %s", m ? m->spec : "-");
}

/* Root only: a real namespace, and a detached tmpfs idmapped through it. */
/* Root only: a namespace with the kernel's maximum of extents reads back whole. Written short (the
 * kernel takes less than a page per write), /proc prints each line 33 bytes wide: 11220 bytes,
 * which outgrew the old 8 KiB buffer. */
static void test_read_full_maps(void) {
        _cleanup_(idmap_freep) Idmap *back = NULL;
        _cleanup_free_ IdmapExtent *v = calloc(IDMAP_EXTENTS_MAX, sizeof(IdmapExtent));
        _cleanup_close_ int userns = -EBADF;

        if (geteuid() != 0 || !v) {
                printf("skip: full maps need root\n");
                return;
        }
        for (size_t i = 0; i < IDMAP_EXTENTS_MAX; i++)
                v[i] = (IdmapExtent) { (uint32_t) i, (uint32_t) (400 + i), 1 };
        CHECK(userns_create(v, IDMAP_EXTENTS_MAX, v, IDMAP_EXTENTS_MAX, &userns) == 0, "userns with %d extents: %s",
              IDMAP_EXTENTS_MAX, strna(sx_last_error()));
        CHECK(userns >= 0 && userns_read_maps(userns, &back) == 0 && back->n_uid == IDMAP_EXTENTS_MAX &&
              back->n_gid == IDMAP_EXTENTS_MAX && idmap_map_uid(back, 339) == 739,
              "all %d extents read back (%zu)", IDMAP_EXTENTS_MAX, back ? back->n_uid : 0);
}

static void test_kernel(void) {
        _cleanup_(idmap_freep) Idmap *m = NULL, *back = NULL;
        _cleanup_close_ int fs = -EBADF, mnt = -EBADF, clone = -EBADF;
        struct stat st;
        int userns;

        if (geteuid() != 0) {
                printf("skip: kernel checks need root\n");
                return;
        }
        CHECK(idmap_parse("b:1000:0:1,b:0:5000:1", &m) == 0, "parse b:1000:0:1,b:0:5000:1");
        userns = idmap_userns_fd(m);
        CHECK(userns >= 0 && idmap_userns_fd(m) == userns, "userns created once and cached");
        CHECK(userns_read_maps(userns, &back) == 0 && back && back->n_uid == 2 && idmap_map_uid(back, 1000) == 0 &&
              idmap_map_gid(back, 0) == 5000, "maps read back from the namespace: %s", back ? back->spec : "-");

        fs = sys_fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fs < 0 && errno == ENOSYS) {
                /* valgrind 3.19 does not know the new mount API */
                SKIP("detached tmpfs: fsopen() is not available here");
                return;
        }
        if (fs < 0 || sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
            (mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, 0)) < 0) {
                CHECK(false, "detached tmpfs: %s", strerror(errno));
                return;
        }
        CHECK(write_string_at(mnt, "f", "x", 0644) == 0 && fchownat(mnt, "f", 1000, 1000, 0) == 0 &&
              write_string_at(mnt, "g", "y", 0644) == 0 && fchownat(mnt, "g", 42, 42, 0) == 0, "files owned by 1000 and 42");
        clone = sys_open_tree(mnt, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        CHECK(clone >= 0, "clone of the detached tmpfs");
        CHECK(mount_make_idmapped(clone, userns, 0, "tmpfs-test", "tmpfs") == 0, "idmap the clone: %s", strna(sx_last_error()));
        CHECK(fstatat(clone, "f", &st, 0) == 0 && st.st_uid == 0 && st.st_gid == 0, "on-disk 1000 appears as 0 (%u)", st.st_uid);
        CHECK(fstatat(clone, "g", &st, 0) == 0 && st.st_uid == 65534, "unmapped 42 appears as overflow 65534 (%u)", st.st_uid);
        CHECK(fstatat(mnt, "f", &st, 0) == 0 && st.st_uid == 1000, "the original mount is unchanged (%u)", st.st_uid);
        CHECK(openat(clone, "new", O_CREAT | O_WRONLY | O_CLOEXEC, 0644) < 0 && errno == EROFS, "the layer is read-only");
        CHECK(mount_make_idmapped(clone, userns, 0, "again", "tmpfs") < 0, "a mount cannot be idmapped twice");
}

static void test_auto_parse(void) {
        _cleanup_(idmap_freep) Idmap *m = NULL;

        CHECK(idmap_parse("auto", &m) == 0 && idmap_is_auto(m) && !idmap_is_identity(m) && streq(m->spec, "auto"),
              "parse 'auto' → IDMAP_AUTO, spec 'auto'");
        CHECK(m && idmap_userns_fd(m) == -EINVAL, "auto has no user namespace of its own");
        CHECK(m && idmap_map_uid(m, 0) == UINT32_MAX, "auto maps nothing by itself");
}

/* The per-layer decision: uid:gid of the layer's root directory → what on-disk ids appear as. */
static void test_auto_decide(void) {
        static const struct {
                uint32_t uid, gid;
                IdmapAutoOwner owner;
                const char *spec;
                uint32_t disk_uid, want_uid, disk_gid, want_gid;
        } t[] = {
                { 0, 0, IDMAP_AUTO_OWNER_ROOT, "identity", 1000, 1000, 5, 5 },
                { FOREIGN_UID_BASE, FOREIGN_UID_BASE, IDMAP_AUTO_OWNER_FOREIGN, "foreign", FOREIGN_UID_BASE + 7, 7, FOREIGN_UID_BASE, 0 },
                { FOREIGN_UID_BASE + 0xFFFF, FOREIGN_UID_BASE, IDMAP_AUTO_OWNER_FOREIGN, "foreign", 0, UINT32_MAX, 0, UINT32_MAX },
                { FOREIGN_UID_BASE + 0x10000, 0, IDMAP_AUTO_OWNER_BUILDER, "u:2147418112:0:65536,g:0:0:65536", FOREIGN_UID_BASE + 0x10000, 0, 0, 0 },
                { 1000, 1000, IDMAP_AUTO_OWNER_BUILDER, "u:1000:0:65536,g:1000:0:65536", 1000, 0, 1000, 0 },
                { 1000, 1000, IDMAP_AUTO_OWNER_BUILDER, "u:1000:0:65536,g:1000:0:65536", 1001, 1, 66535, 65535 },
                { 1000, 1000, IDMAP_AUTO_OWNER_BUILDER, "u:1000:0:65536,g:1000:0:65536", 0, UINT32_MAX, 999, UINT32_MAX },
                /* a user's primary group below 1000 ("users") is the builder's gid all the same */
                { 1000, 100, IDMAP_AUTO_OWNER_BUILDER, "u:1000:0:65536,g:100:0:65536", 1000, 0, 100, 0 },
                /* the range stops where the foreign range begins, and where ids end */
                { FOREIGN_UID_BASE - 10, 1000, IDMAP_AUTO_OWNER_BUILDER, "u:2147352566:0:10,g:1000:0:65536", FOREIGN_UID_BASE - 1, 9, 1000, 0 },
                { IDMAP_ID_MAX, 1000, IDMAP_AUTO_OWNER_BUILDER, "u:4294967294:0:1,g:1000:0:65536", IDMAP_ID_MAX, 0, 1000, 0 },
                /* system users and nobody: nothing is guessed */
                { 1, 1, IDMAP_AUTO_OWNER_OTHER, "identity", 1, 1, 1, 1 },
                { 999, 999, IDMAP_AUTO_OWNER_OTHER, "identity", 999, 999, 999, 999 },
                { IDMAP_NOBODY_ID, IDMAP_NOBODY_ID, IDMAP_AUTO_OWNER_OTHER, "identity", 65534, 65534, 65534, 65534 },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_(idmap_freep) Idmap *m = NULL;

                CHECK(idmap_auto_classify(t[i].uid) == t[i].owner, "owner uid %u is %s", t[i].uid,
                      strna(idmap_auto_owner_to_string(t[i].owner)));
                CHECK(idmap_auto_for_owner(t[i].uid, t[i].gid, &m) == 0 && streq(m->spec, t[i].spec),
                      "owner %u:%u → %s (%s)", t[i].uid, t[i].gid, t[i].spec, m ? m->spec : "-");
                CHECK(m && idmap_map_uid(m, t[i].disk_uid) == t[i].want_uid && idmap_map_gid(m, t[i].disk_gid) == t[i].want_gid,
                      "owner %u:%u: on-disk %u:%u appears as %u:%u", t[i].uid, t[i].gid, t[i].disk_uid, t[i].disk_gid,
                      t[i].want_uid, t[i].want_gid);
        }
}

static void test_auto_cache(void) {
        IdmapCache c = {};
        Idmap *a = NULL, *b = NULL, *f = NULL, *m = NULL;

        CHECK(idmap_auto_for_owner(1000, 1000, &m) == 0 && idmap_cache_add(&c, m, &a) == 0 && a == m, "first mapping cached");
        CHECK(idmap_auto_for_owner(1000, 1000, &m) == 0 && idmap_cache_add(&c, m, &b) == 0 && b == a && c.n == 1,
              "an equal mapping is the cached one");
        CHECK(idmap_parse("foreign", &m) == 0 && idmap_cache_add(&c, m, &f) == 0 && f != a && c.n == 2, "another one is added");
        CHECK(idmap_parse("b:2147352576:0:65536", &m) == 0 && idmap_cache_add(&c, m, &b) == 0 && b == f && c.n == 2,
              "the same extents written differently are the same mapping");
        idmap_cache_done(&c);
        CHECK(c.n == 0 && !c.v, "cache released");
}

static int write_file(const char *path, const char *text, mode_t mode) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

        if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t) strlen(text) || fchmod(fd, mode) < 0)
                return -errno;
        return 0;
}

/* override PATH TEXT: result of idmap_auto_read_override() for an image whose override holds TEXT. */
static int override(const char *image, const char *suffix_path, const char *text, mode_t mode, Idmap **m) {
        if (text && write_file(suffix_path, text, mode) < 0)
                return -999;
        sx_clear_error();
        return idmap_auto_read_override(image, m);
}

/* Root only: the override beside an image (NAME.raw → NAME.idmap), root-controlled or refused. */
static void test_auto_override(void) {
        char ctl[] = "/run/test-idmap-auto-XXXXXX";
        _cleanup_free_ char *img = NULL, *ovr = NULL, *dimg = NULL, *dovr = NULL;
        Idmap *m = NULL;

        if (geteuid() != 0) {
                printf("skip: overrides need a root-controlled directory (root)\n");
                return;
        }
        /* A directory only root controls: a fresh 0755 tmpfs on /run (private mount namespace). */
        if (mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") < 0 || !mkdtemp(ctl) || chmod(ctl, 0755) < 0) {
                printf("skip: cannot make a root-controlled directory: %m\n");
                return;
        }
        img = strjoin(ctl, "/foo.raw"), ovr = strjoin(ctl, "/foo.idmap");
        dimg = strjoin(ctl, "/bar"), dovr = strjoin(ctl, "/bar.idmap");
        CHECK(img && ovr && dimg && dovr, "paths");
        CHECK(override(img, ovr, NULL, 0, &m) == 0 && !m, "no override: 0");
        CHECK(override(img, ovr, "b:1000:0:1\n", 0644, &m) == 1 && m && streq(m->spec, "b:1000:0:1"),
              "NAME.raw → NAME.idmap, trailing newline ignored: %s", m ? m->spec : "-");
        m = idmap_free(m);
        CHECK(override(dimg, dovr, "foreign", 0644, &m) == 1 && m && streq(m->spec, "foreign"), "directory NAME → NAME.idmap");
        m = idmap_free(m);
        CHECK(override(dimg, dovr, "auto", 0644, &m) == 1 && idmap_is_auto(m), "auto in an override: decide by owner");
        m = idmap_free(m);
        CHECK(override(img, ovr, "b:1000:0:1", 0664, &m) == -EPERM && !m && error_names(ovr) &&
              strstr(strempty(sx_last_error()), "writable by group or others"), "group-writable refused: %s", strna(sx_last_error()));
        CHECK(override(img, ovr, "b:1000:0:1", 0644, &m) == 1 && chown(ovr, 1000, 0) == 0, "(owner → uid 1000)");
        m = idmap_free(m);
        CHECK(override(img, ovr, NULL, 0, &m) == -EPERM && error_names(ovr), "not root's refused: %s", strna(sx_last_error()));
        CHECK(unlink(ovr) == 0, "(removed)");
        static const char * const bad[] = { "b:1:2", "", "\n", "userns:/proc/1/ns/user", "pid:1", "user:daemon", "b:0:0:1\nb:1:1:1" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *e = cescape(bad[i]);
                CHECK(override(img, ovr, bad[i], 0644, &m) == -EINVAL && !m && error_names(ovr),
                      "override '%s' refused naming the file: %s", strna(e), strna(sx_last_error()));
        }
        CHECK(unlink(ovr) == 0 && symlink("/etc/hostname", ovr) == 0 && override(img, ovr, NULL, 0, &m) == -ELOOP && error_names(ovr),
              "a symlink is not followed: %s", strna(sx_last_error()));
        CHECK(unlink(ovr) == 0 && mkdir(ovr, 0755) == 0 && override(img, ovr, NULL, 0, &m) < 0 && error_names(ovr),
              "a directory is refused: %s", strna(sx_last_error()));

        /* resolve: no override → the owner of the layer's root; identical mappings share an entry. */
        IdmapCache c = {};
        Idmap *a = NULL, *b = NULL;
        _cleanup_close_ int fd = -EBADF;
        CHECK(mkdir(dimg, 0755) == 0 && chown(dimg, 1000, 1000) == 0 && unlink(dovr) == 0 &&
              (fd = open(dimg, O_PATH | O_DIRECTORY | O_CLOEXEC)) >= 0, "(uid-1000 directory)");
        CHECK(idmap_auto_resolve(dimg, fd, &c, &a) == 0 && a && streq(a->spec, "u:1000:0:65536,g:1000:0:65536"),
              "resolve by owner: %s", a ? a->spec : "-");
        CHECK(idmap_auto_resolve(dimg, fd, &c, &b) == 0 && b == a && c.n == 1, "resolved twice: one cache entry");
        CHECK(write_file(dovr, "identity", 0644) == 0 && idmap_auto_resolve(dimg, fd, &c, &b) == 0 && idmap_is_identity(b) && c.n == 2,
              "the override wins over the owner");
        idmap_cache_done(&c);
        (void) umount2("/run", MNT_DETACH);
}

int main(void) {
        if (geteuid() == 0 && enter_private_mount_namespace() < 0) {
                printf("cannot enter a private mount namespace: %m\n");
                return 1;
        }
        test_parse_ok();
        test_parse_bad();
        test_number();
        test_user();
        test_from_extents();
        test_kernel();
        test_read_full_maps();
        test_auto_parse();
        test_auto_decide();
        test_auto_cache();
        test_auto_override();
        return test_result();
}
