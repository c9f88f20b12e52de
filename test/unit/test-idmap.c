/* SPDX-License-Identifier: LGPL-2.1-or-later */

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
        return test_result();
}
