/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Dissection and loop devices, on images built at test time with the real tools (mksquashfs,
 * mkfs.erofs, mkfs.ext4, sfdisk, systemd-repart). Hostile GPTs are made by patching a good one and
 * fixing up the CRCs. Mount tests need root and /dev/loop-control and run in a private mount
 * namespace; every loop device must be gone afterwards. */

#include <ctype.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

#include "dissect.h"
#include "id128-util.h"
#include "loop.h"
#include "test-helpers.h"
#include "version.h"

static bool can_mount;

/* ---- helpers ---- */

DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, pclose);

static Image image_for(const char *path, ImageType type) {
        return (Image) { .name = (char *) "test", .path = (char *) path, .type = type };
}

static int dissect_path(const char *path, DissectedImage **ret) {
        struct stat st;
        Image img;

        img = image_for(path, stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? IMAGE_DIRECTORY : IMAGE_RAW);
        sx_clear_error();
        return dissect_image(&img, ret);
}


/* ---- hostile GPTs: patch a good table and fix up both CRCs so libblkid accepts it ---- */

static uint32_t crc32_le(const uint8_t *p, size_t n) {
        uint32_t c = 0xFFFFFFFFU;

        for (size_t i = 0; i < n; i++) {
                c ^= p[i];
                for (int k = 0; k < 8; k++)
                        c = (c >> 1) ^ (0xEDB88320U & (0U - (c & 1U)));
        }
        return ~c;
}

static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Patch the header at lba and its entry array: entry (0-based) gets new first/last LBA (<0 = keep),
 * num_entries a new count (<0 = keep). Returns the header's alternate LBA, or negative errno. */
static int64_t gpt_patch_one(int fd, uint64_t lba, int entry, int64_t first_lba, int64_t last_lba, int64_t num_entries) {
        uint8_t h[512], e[128 * 128];
        uint64_t entries_lba, alternate;

        if (pread(fd, h, sizeof(h), (off_t) (lba * 512)) != (ssize_t) sizeof(h) || memcmp(h, "EFI PART", 8) != 0 ||
            get32(h + 80) != 128 || get32(h + 84) != 128)
                return -EINVAL;
        memcpy(&entries_lba, h + 72, 8);
        memcpy(&alternate, h + 32, 8);
        if (pread(fd, e, sizeof(e), (off_t) (entries_lba * 512)) != (ssize_t) sizeof(e))
                return -EIO;
        if (entry >= 0) {
                if (first_lba >= 0)
                        put64(e + entry * 128 + 32, (uint64_t) first_lba);
                if (last_lba >= 0)
                        put64(e + entry * 128 + 40, (uint64_t) last_lba);
                put32(h + 88, crc32_le(e, sizeof(e)));
        }
        if (num_entries >= 0)
                put32(h + 80, (uint32_t) num_entries);
        put32(h + 16, 0);
        put32(h + 16, crc32_le(h, get32(h + 12)));
        if (pwrite(fd, e, sizeof(e), (off_t) (entries_lba * 512)) != (ssize_t) sizeof(e) ||
            pwrite(fd, h, sizeof(h), (off_t) (lba * 512)) != (ssize_t) sizeof(h))
                return -EIO;
        return (int64_t) alternate;
}

/* Both primary and backup: libblkid rightly falls back to the backup when only one is bad. */
static int gpt_patch(const char *path, int entry, int64_t first_lba, int64_t last_lba, int64_t num_entries) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
        int64_t alternate;

        if (fd < 0)
                return -errno;
        alternate = gpt_patch_one(fd, 1, entry, first_lba, last_lba, num_entries);
        if (alternate < 0)
                return (int) alternate;
        return gpt_patch_one(fd, (uint64_t) alternate, entry, first_lba, last_lba, num_entries) < 0 ? -EIO : 0;
}

/* ---- building images ---- */

#define T_USR_X86_64        "8484680c-9521-48c6-9c11-b0720656f69e"
#define T_USR_X86_64_VERITY "77ff5f63-e7b6-4633-acf4-1565b864c0e6"
#define T_ROOT_X86_64       "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
#define T_ROOT_X86          "44479540-f297-41b2-9af7-d131d5f0458a"
#define T_ROOT_ARM64        "b921b045-1df0-41c3-af44-4c6f280d3fae"
#define T_LINUX_DATA        "0fc63daf-8483-4772-8e79-3d69d8477de4"

static bool have_squashfs_tools;

static int build_trees(void) {
        return run("mkdir -p src/usr/lib/extension-release.d src/usr/bin && echo hello >src/usr/lib/hello && "
                   "echo ID=_any >src/usr/lib/extension-release.d/extension-release.test && "
                   "mkdir -p evil/opt && ln -s /etc evil/usr && ln -s ../../.. evil/opt/up && mkdir -p evil/srv && "
                   "ln -s ../.. evil/var");
}

/* A GPT image of size_mib MiB from an sfdisk script; "@usr" in a partition line means: write the usr
 * squashfs into it. Partitions are 4 MiB (8192 sectors) slots starting at 1 MiB. */
static int make_gpt(const char *name, int size_mib, const char *script) {
        int r = run("rm -f %s && truncate -s %dM %s && printf '%%b' 'label: gpt\\n%s' | sfdisk -q %s",
                    name, size_mib, name, script, name);
        if (r != 0)
                return -EIO;
        return 0;
}

/* Write file into the n-th (1-based) 4 MiB slot of image. */
static int fill_slot(const char *image, int slot, const char *file) {
        return run("dd if=%s of=%s bs=512 seek=%d conv=notrunc", file, image, 2048 + (slot - 1) * 8192) == 0 ? 0 : -EIO;
}

/* sfdisk lines for the 4 MiB slots */
#define S1 "start=2048, size=8192, "
#define S2 "start=10240, size=8192, "
#define S3 "start=18432, size=8192, "
#define S4 "start=26624, size=8192, "

/* ---- tests: kinds and selection (no root needed) ---- */

static void test_names(void) {
        CHECK(streq(partition_designator_to_string(PARTITION_USR_VERITY_SIG), "usr-verity-sig"), "designator to string");
        CHECK(partition_designator_from_string("root-verity") == PARTITION_ROOT_VERITY, "designator from string");
        CHECK(partition_designator_from_string("home") < 0, "unknown designator refused");
        CHECK(partition_designator_to_string(_PARTITION_DESIGNATOR_MAX) == NULL, "out-of-range designator");
        CHECK(streq(dissect_kind_to_string(DISSECT_GPT), "gpt") && streq(dissect_kind_to_string(DISSECT_DIRECTORY), "directory") &&
              streq(dissect_kind_to_string(DISSECT_FILESYSTEM), "filesystem"), "kind names");
}

static void test_directory(void) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        int r = dissect_path(T("src"), &m);

        CHECK(r == 0 && m->kind == DISSECT_DIRECTORY && m->partitions[PARTITION_ROOT].found &&
              !m->partitions[PARTITION_ROOT].fstype && m->fd >= 0, "directory dissected as kind directory");
}

static void test_bare_fs(const char *tool, const char *cmd, const char *file, const char *fstype) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        int r;

        if (!have(tool)) {
                SKIP("%s image: %s not installed", fstype, tool);
                return;
        }
        if (run("%s", cmd) != 0) {
                CHECK(false, "building %s image with %s", fstype, tool);
                return;
        }
        r = dissect_path(T(file), &m);
        CHECK(r == 0 && m->kind == DISSECT_FILESYSTEM, "%s: kind filesystem (r=%d)", file, r);
        if (r < 0)
                return;
        const DissectedPartition *p = &m->partitions[PARTITION_ROOT];
        CHECK(p->found && p->offset == 0 && p->size == m->size && p->fstype && streq(p->fstype, fstype) &&
              !m->partitions[PARTITION_USR].found, "%s: single root partition, fstype %s", file, strna(p->fstype));
}

static void check_bad(const char *file, int want, const char *what) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        int r = dissect_path(T(file), &m);

        CHECK(r < 0 && (want == 0 || r == want) && !m && error_names(T(file)),
              "%s refused (r=%d, want %d): %s", what, r, want, strna(sx_last_error()));
}

static const DissectedPartition *dissect_gpt_ok(const char *file, PartitionDesignator d, DissectedImage **ret) {
        int r = dissect_path(T(file), ret);

        CHECK(r == 0 && (*ret)->kind == DISSECT_GPT, "%s: kind gpt (r=%d)", file, r);
        return r == 0 ? &(*ret)->partitions[d] : NULL;
}

static void test_gpt_selection(void) {
        _cleanup_(dissected_image_freep) DissectedImage *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL, *f = NULL;
        const DissectedPartition *p;

#ifndef __x86_64__
        SKIP("GPT selection tests use x86-64 type UUIDs");
        return;
#endif
        /* usr + usr-verity, as a sysext DDI has them */
        if (make_gpt("usr.raw", 40, S1 "type=" T_USR_X86_64 ", name=\"usr\", attrs=\"GUID:60\"\\n"
                     S2 "type=" T_USR_X86_64_VERITY ", name=\"usr-verity\"\\n") < 0 ||
            fill_slot("usr.raw", 1, "usr.sq") < 0)
                { CHECK(false, "building usr.raw"); return; }
        p = dissect_gpt_ok("usr.raw", PARTITION_USR, &a);
        if (p) {
                CHECK(p->found && p->partno == 1 && p->offset == 1048576 && p->size == 8192 * 512 &&
                      streq(strempty(p->fstype), "squashfs") && streq(strempty(p->architecture), "x86-64") &&
                      streq(strempty(p->label), "usr") && p->read_only && !p->no_auto,
                      "usr.raw: usr partition 1, 1 MiB, squashfs, x86-64, read-only flag");
                p = &a->partitions[PARTITION_USR_VERITY];
                CHECK(p->found && p->partno == 2 && p->offset == 10240 * 512 && !p->fstype, "usr.raw: usr-verity partition 2");
                CHECK(!a->partitions[PARTITION_ROOT].found && a->table_uuid, "usr.raw: no root, table uuid %s", strna(a->table_uuid));
        }

        /* native beats secondary even with a "newer" label */
        if (make_gpt("arch.raw", 40, S1 "type=" T_ROOT_X86 ", name=\"root_9\"\\n" S2 "type=" T_ROOT_X86_64 ", name=\"root_1\"\\n"
                     S3 "type=" T_ROOT_ARM64 ", name=\"root_10\"\\n") < 0 ||
            fill_slot("arch.raw", 1, "usr.sq") < 0 || fill_slot("arch.raw", 2, "usr.sq") < 0 || fill_slot("arch.raw", 3, "usr.sq") < 0)
                { CHECK(false, "building arch.raw"); return; }
        p = dissect_gpt_ok("arch.raw", PARTITION_ROOT, &b);
        if (p)
                CHECK(p->found && p->partno == 2 && streq(strempty(p->architecture), "x86-64"), "native root preferred over secondary (got %d)", p->partno);

        /* secondary alone is used; foreign (arm64) never */
        if (make_gpt("sec.raw", 40, S1 "type=" T_ROOT_ARM64 "\\n" S2 "type=" T_ROOT_X86 "\\n") < 0 || fill_slot("sec.raw", 2, "usr.sq") < 0)
                { CHECK(false, "building sec.raw"); return; }
        p = dissect_gpt_ok("sec.raw", PARTITION_ROOT, &c);
        if (p)
                CHECK(p->found && p->partno == 2 && streq(strempty(p->architecture), "x86"), "secondary root used when alone");

        /* highest label version wins */
        if (make_gpt("ver.raw", 40, S1 "type=" T_USR_X86_64 ", name=\"usr_1.2\"\\n" S2 "type=" T_USR_X86_64 ", name=\"usr_1.10\"\\n"
                     S3 "type=" T_USR_X86_64 ", name=\"usr_1.9\"\\n") < 0 ||
            fill_slot("ver.raw", 2, "usr.sq") < 0)
                { CHECK(false, "building ver.raw"); return; }
        p = dissect_gpt_ok("ver.raw", PARTITION_USR, &d);
        if (p)
                CHECK(p->found && p->partno == 2 && streq(strempty(p->label), "usr_1.10"), "highest label version wins (got %s)", strna(p->label));

        /* no-auto: the newer partition carries the flag and is passed over */
        if (make_gpt("noauto.raw", 40, S1 "type=" T_USR_X86_64 ", name=\"usr_2\", attrs=\"GUID:63\"\\n"
                     S2 "type=" T_USR_X86_64 ", name=\"usr_1\"\\n") < 0 ||
            fill_slot("noauto.raw", 2, "usr.sq") < 0)
                { CHECK(false, "building noauto.raw"); return; }
        p = dissect_gpt_ok("noauto.raw", PARTITION_USR, &e);
        if (p)
                CHECK(p->found && p->partno == 2 && !p->no_auto, "no-auto partition skipped (got %d)", p->partno);

        /* no-auto usr next to a usable root: recorded, not selected */
        if (make_gpt("noauto2.raw", 40, S1 "type=" T_ROOT_X86_64 "\\n" S2 "type=" T_USR_X86_64 ", attrs=\"GUID:63\"\\n") < 0 ||
            fill_slot("noauto2.raw", 1, "usr.sq") < 0)
                { CHECK(false, "building noauto2.raw"); return; }
        p = dissect_gpt_ok("noauto2.raw", PARTITION_USR, &f);
        if (p)
                CHECK(!p->found && p->no_auto && p->partno == 2 && f->partitions[PARTITION_ROOT].found, "no-auto usr recorded but not selected");

        /* only no-auto / only foreign: nothing usable */
        if (make_gpt("noauto3.raw", 40, S1 "type=" T_USR_X86_64 ", attrs=\"GUID:63\"\\n") == 0 && fill_slot("noauto3.raw", 1, "usr.sq") == 0)
                check_bad("noauto3.raw", -ENXIO, "GPT with only a no-auto usr partition");
        if (make_gpt("foreign.raw", 40, S1 "type=" T_ROOT_ARM64 "\\n" S2 "type=" T_LINUX_DATA "\\n") == 0)
                check_bad("foreign.raw", -ENXIO, "GPT with no partition for this architecture");
}

static void test_bad_inputs(void) {
        check_bad("missing.raw", -ENOENT, "missing file");
        if (run("truncate -s 0 empty.raw && head -c 1048576 /dev/urandom >garbage.raw && head -c 700 /dev/zero >short.raw") != 0)
                { CHECK(false, "building garbage files"); return; }
        check_bad("empty.raw", 0, "empty file");
        check_bad("garbage.raw", -ENOMEDIUM, "random bytes");
        check_bad("short.raw", -ENOMEDIUM, "700 zero bytes");
        if (run("mkfifo fifo") == 0)
                check_bad("fifo", -EBADFD, "FIFO");
        if (run("cp usr.raw trunc.raw && truncate -s 3M trunc.raw") == 0)
                check_bad("trunc.raw", -EBADMSG, "GPT image truncated below what its header claims");
        if (run("truncate -s 8M mbr.raw && printf 'label: dos\\nstart=2048, size=4096, type=83\\n' | sfdisk -q mbr.raw") == 0)
                check_bad("mbr.raw", -EINVAL, "MBR-only table");
        if (have("mkfs.ext2") && run("mkfs.ext2 -q -F -d src ext2.raw 4M") == 0)
                check_bad("ext2.raw", -EINVAL, "unsupported filesystem (ext2)");
        if (run("head -c 4095 usr.sq >ragged.sq") == 0)
                check_bad("ragged.sq", 0, "bare filesystem image with a partial last sector");

#ifdef __x86_64__
        /* hostile tables, CRCs fixed up so that only our checks stand in the way */
        if (run("cp usr.raw overlap.raw") == 0 && gpt_patch(T("overlap.raw"), 1, 4096, -1, -1) == 0)
                check_bad("overlap.raw", -EBADMSG, "overlapping partitions");
        if (run("cp usr.raw nousrfs.raw && dd if=/dev/zero of=nousrfs.raw bs=512 seek=2048 count=16 conv=notrunc") == 0)
                check_bad("nousrfs.raw", -ENOMEDIUM, "usr partition without a filesystem");
        if (run("cp usr.raw beyond.raw") == 0 && gpt_patch(T("beyond.raw"), 0, -1, 10000000, -1) == 0)
                check_bad("beyond.raw", 0, "partition extending beyond the end of the image");
        if (run("cp usr.raw many.raw") == 0 && gpt_patch(T("many.raw"), -1, -1, -1, 1000000) == 0)
                check_bad("many.raw", -EBADMSG, "table claiming 10^6 entries (more than the file holds)");
        if (run("cp usr.raw huge.raw") == 0 && gpt_patch(T("huge.raw"), -1, -1, -1, 0xFFFFFFFF) == 0)
                check_bad("huge.raw", -EBADMSG, "table claiming 2^32-1 entries");
        if (run("cp usr.raw zero.raw") == 0 && gpt_patch(T("zero.raw"), 0, 0, 0, -1) == 0)
                check_bad("zero.raw", 0, "partition at LBA 0");
#endif
}

/* ---- truncated and padded filesystems: the size the superblock claims against what is there ---- */

static int patch_bytes(const char *file, uint64_t offset, const void *bytes, size_t n) {
        _cleanup_close_ int fd = open(T(file), O_RDWR | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        return pwrite(fd, bytes, n, (off_t) offset) == (ssize_t) n ? 0 : -EIO;
}

static void check_fs_ok(const char *file, const char *fstype, const char *what) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        int r = dissect_path(T(file), &m);

        CHECK(r == 0 && m->kind == DISSECT_FILESYSTEM && streq(strempty(m->partitions[PARTITION_ROOT].fstype), fstype),
              "%s %s accepted (r=%d)", fstype, what, r);
}

static void check_truncated(const char *file, const char *fstype, const char *what) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        char needle[64];
        int r = dissect_path(T(file), &m);

        (void) snprintf(needle, sizeof(needle), "%s file system is truncated: it needs ", fstype);
        CHECK(r == -EBADMSG && !m && error_names(T(file)) && strstr(strempty(sx_last_error()), needle) &&
              loops_in_tmpdir() == 0,
              "%s %s refused (r=%d): %s", fstype, what, r, strna(sx_last_error()));
}

/* A GPT with one usr partition of part_bytes at 1 MiB, holding the first part_bytes of file. */
static int make_gpt_holding(const char *name, const char *file, uint64_t part_bytes) {
        char script[128];

        (void) snprintf(script, sizeof(script), "start=2048, size=%" PRIu64 ", type=" T_USR_X86_64 "\\n", part_bytes / 512);
        if (make_gpt(name, (int) (part_bytes >> 20) + 3, script) < 0)
                return -EIO;
        return run("dd if=%s of=%s bs=512 seek=2048 count=%" PRIu64 " conv=notrunc,sparse", file, name, part_bytes / 512) == 0 ? 0 : -EIO;
}

/* mkfs: a shell command writing the image to "$f". */
static void test_fs_size(const char *tool, const char *mkfs, const char *fstype) {
        _cleanup_free_ char *good = NULL, *half = NULL, *pad = NULL, *gpt_ok = NULL, *gpt_short = NULL;
        struct stat st;

        if (!have(tool))
                { SKIP("truncated %s images: %s not installed", fstype, tool); return; }
        if (asprintf_safe(&good, "big-%s.raw", fstype) < 0 || asprintf_safe(&half, "big-%s-half.raw", fstype) < 0 ||
            asprintf_safe(&pad, "big-%s-pad.raw", fstype) < 0 || asprintf_safe(&gpt_ok, "big-%s-gpt.raw", fstype) < 0 ||
            asprintf_safe(&gpt_short, "big-%s-gpt-short.raw", fstype) < 0)
                abort();
        if (run("f=%s && %s", good, mkfs) != 0 || stat(T(good), &st) < 0)
                { CHECK(false, "building %s with %s", good, tool); return; }
        uint64_t size = (uint64_t) st.st_size, cut = size / 2 / 4096 * 4096;

        check_fs_ok(good, fstype, "image");
        /* cut in half: with 512 KiB of random data in it, real content is lost */
        if (run("cp --sparse=always %s %s && truncate -s %" PRIu64 " %s", good, half, cut, half) == 0)
                check_truncated(half, fstype, "image cut in half");
        /* zeros appended: more room than the filesystem needs is fine */
        if (run("cp --sparse=always %s %s && truncate -s +1M %s", good, pad, pad) == 0)
                check_fs_ok(pad, fstype, "image with 1 MiB of zeros appended");
#ifdef __x86_64__
        if (make_gpt_holding(gpt_ok, good, (size + 4095) / 4096 * 4096) == 0) {
                _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
                int r = dissect_path(T(gpt_ok), &m);
                CHECK(r == 0 && streq(strempty(m->partitions[PARTITION_USR].fstype), fstype),
                      "%s in a GPT usr partition that holds all of it accepted (r=%d)", fstype, r);
        } else
                CHECK(false, "building %s", gpt_ok);
        if (make_gpt_holding(gpt_short, good, cut) == 0) {
                _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
                int r = dissect_path(T(gpt_short), &m);
                CHECK(r == -EBADMSG && !m && error_names(T(gpt_short)) &&
                      strstr(strempty(sx_last_error()), "file system is truncated") &&
                      strstr(strempty(sx_last_error()), "GPT partition 1 has") && loops_in_tmpdir() == 0,
                      "%s bigger than its GPT usr partition refused (r=%d): %s", fstype, r, strna(sx_last_error()));
        } else
                CHECK(false, "building %s", gpt_short);
#endif
}

/* Hostile superblock fields: no wrap-around, no shift by a silly amount. */
static void test_fs_size_hostile(void) {
        static const uint8_t ones[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
        uint8_t b;

        if (access(T("big-squashfs.raw"), F_OK) == 0 && run("cp big-squashfs.raw sq-huge.raw") == 0 &&
            patch_bytes("sq-huge.raw", 40, ones, 8) == 0)
                check_truncated("sq-huge.raw", "squashfs", "claiming 2^64-1 bytes");
        b = 40;
        if (access(T("big-erofs.raw"), F_OK) == 0 && run("cp big-erofs.raw erofs-bs.raw") == 0 &&
            patch_bytes("erofs-bs.raw", 1024 + 0x0C, &b, 1) == 0)
                check_bad("erofs-bs.raw", 0, "erofs with block size 2^40");
        b = 7;
        if (access(T("big-ext4.raw"), F_OK) == 0 && run("cp big-ext4.raw ext4-bs.raw") == 0 &&
            patch_bytes("ext4-bs.raw", 1024 + 0x18, &b, 1) == 0)
                check_bad("ext4-bs.raw", 0, "ext4 with block size 128 KiB");
        if (access(T("big-ext4.raw"), F_OK) == 0 && run("cp big-ext4.raw ext4-64.raw") == 0) {
                uint8_t incompat[4], hi[4] = { 0xff, 0xff, 0xff, 0xff };
                _cleanup_close_ int fd = open(T("ext4-64.raw"), O_RDONLY | O_CLOEXEC);
                if (fd >= 0 && pread(fd, incompat, 4, 1024 + 0x60) == 4) {
                        incompat[0] |= 0x80;
                        if (patch_bytes("ext4-64.raw", 1024 + 0x60, incompat, 4) == 0 &&
                            patch_bytes("ext4-64.raw", 1024 + 0x150, hi, 4) == 0)
                                check_bad("ext4-64.raw", 0, "ext4 claiming 2^32 * 2^32 blocks");
                }
        }
}

static void test_fs_sizes(void) {
        if (run("rm -rf big && cp -a src big && head -c 512K /dev/urandom >big/usr/lib/payload") != 0)
                { CHECK(false, "building big tree"); return; }
        test_fs_size("mkfs.erofs", "mkfs.erofs \"$f\" big", "erofs");
        test_fs_size("mksquashfs", "mksquashfs big \"$f\" -noappend -quiet", "squashfs");
        test_fs_size("mkfs.ext4", "mkfs.ext4 -q -F -d big \"$f\" 4M", "ext4");
        test_fs_size("mkfs.btrfs", "mkfs.btrfs -q -r big \"$f\"", "btrfs");
        /* no content: mkfs.xfs 6.1 cannot copy a directory in; 300 MiB is its minimum */
        test_fs_size("mkfs.xfs", "truncate -s 300M \"$f\" && mkfs.xfs -q \"$f\"", "xfs");
        test_fs_size_hostile();
}

/* ---- tests that mount (root) ---- */

/* Read usr/lib/hello (or lib/hello for a usr partition) through the detached mount. */
static bool read_hello(const ImageMounts *mounts) {
        _cleanup_close_ int usr = -EBADF;
        _cleanup_free_ char *c = NULL;

        if (image_mounts_open_hierarchy(mounts, "/usr", &usr) < 0)
                return false;
        return read_full_file_at(usr, "lib/hello", 4096, &c, NULL) >= 0 && streq(c, "hello\n");
}

static void test_loop_device(void) {
        _cleanup_(loop_device_freep) LoopDevice *d = NULL;
        _cleanup_close_ int fd = open(T("usr.raw"), O_RDONLY | O_CLOEXEC);
        LoopDevice *bad = NULL;
        uint64_t size = 0;
        int r;

        r = loop_device_make(fd, 10240 * 512, 8192 * 512, &d);
        CHECK(r == 0 && d->fd >= 0 && d->node && d->offset == 10240 * 512, "loop device over partition 2 (%s)", d ? d->node : "-");
        if (r < 0)
                return;
        CHECK(ioctl(d->fd, BLKGETSIZE64, &size) == 0 && size == 8192 * 512, "loop device size %" PRIu64, size);
        CHECK(write(d->fd, "x", 1) < 0, "loop device is not writable");
        CHECK(loops_in_tmpdir() == 1, "loop device visible while open");
        d = loop_device_free(d);
        CHECK(loops_in_tmpdir() == 0, "autoclear: loop device gone after close");

        r = loop_device_make(fd, 39 * 1024 * 1024, 4 * 1024 * 1024, &bad);
        CHECK(r < 0 && !bad && loops_in_tmpdir() == 0, "range beyond end of file refused (r=%d)", r);
}

static void test_mount_image(const char *file, bool want_root, bool want_usr) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        ImageMounts mounts = IMAGE_MOUNTS_NULL;
        int r;

        if (access(T(file), F_OK) < 0)
                { SKIP("mounting %s: not built", file); return; }
        r = dissect_path(T(file), &m);
        if (r < 0)
                { CHECK(false, "dissecting %s: %s", file, strna(sx_last_error())); return; }
        r = dissected_image_mount(m, NULL, NULL, &mounts);
        CHECK(r == 0 && (mounts.root_fd >= 0) == want_root && (mounts.usr_fd >= 0) == want_usr,
              "%s: mounted detached (root %d, usr %d)", file, mounts.root_fd, mounts.usr_fd);
        CHECK(r == 0 && read_hello(&mounts), "%s: /usr/lib/hello readable through the detached mount", file);
        m = dissected_image_free(m);    /* the mount must not depend on the image fd we hold */
        image_mounts_done(&mounts);
        CHECK(mounts.root_fd < 0 && mounts.usr_fd < 0 && loops_in_tmpdir() == 0, "%s: loop device gone after unmount", file);
}

static void test_hierarchies(void) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        ImageMounts mounts = IMAGE_MOUNTS_NULL;
        int fd = -EBADF, r;

        if (dissect_path(T("evil"), &m) < 0 || dissected_image_mount(m, NULL, NULL, &mounts) < 0)
                { CHECK(false, "mounting evil directory: %s", strna(sx_last_error())); return; }
        sx_clear_error();
        r = image_mounts_open_hierarchy(&mounts, "/usr", &fd);
        CHECK(r == -EXDEV && fd < 0 && sx_last_error() && strstr(sx_last_error(), "/usr in image is a symlink pointing outside"),
              "absolute symlink /usr refused: %s", strna(sx_last_error()));
        r = image_mounts_open_hierarchy(&mounts, "/var", &fd);
        CHECK(r == -EXDEV, "relative ../.. symlink /var refused (r=%d)", r);
        r = image_mounts_open_hierarchy(&mounts, "/opt/up", &fd);
        CHECK(r == -EXDEV, "nested ../../.. symlink refused (r=%d)", r);
        r = image_mounts_open_hierarchy(&mounts, "/etc", &fd);
        CHECK(r == -ENOENT, "absent hierarchy gives -ENOENT (r=%d)", r);
        r = image_mounts_open_hierarchy(&mounts, "/opt", &fd);
        CHECK(r == 0 && fd >= 0, "/opt opened");
        fd = safe_close(fd);
        image_mounts_done(&mounts);
}

/* Trust hook stand-ins. */
static int hook_plain(const DissectedImage *m, PartitionDesignator d, void *userdata, int *ret_fd) {
        (*(int *) userdata)++;
        return -EOPNOTSUPP;
}

static int hook_own_loop(const DissectedImage *m, PartitionDesignator d, void *userdata, int *ret_fd) {
        LoopDevice *l = NULL;
        int r;

        (*(int *) userdata)++;
        r = loop_device_make(m->fd, m->partitions[d].offset, m->partitions[d].size, &l);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(l->fd);
        loop_device_free(l);
        return 0;
}

static int hook_fail(const DissectedImage *m, PartitionDesignator d, void *userdata, int *ret_fd) {
        return sx_error(-EKEYREJECTED, "%s: signature rejected", m->path);
}

static void test_mount_hooks_and_failures(void) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        ImageMounts mounts = IMAGE_MOUNTS_NULL;
        int calls = 0, r;

        if (dissect_path(T("usr.raw"), &m) < 0)
                { CHECK(false, "dissect usr.raw"); return; }
        r = dissected_image_mount(m, hook_plain, &calls, &mounts);
        CHECK(r == 0 && calls == 1 && read_hello(&mounts), "hook returning -EOPNOTSUPP falls back to a plain loop device");
        image_mounts_done(&mounts);
        calls = 0;
        r = dissected_image_mount(m, hook_own_loop, &calls, &mounts);
        CHECK(r == 0 && calls == 1 && read_hello(&mounts), "hook's block device is mounted");
        image_mounts_done(&mounts);
        CHECK(loops_in_tmpdir() == 0, "hook's loop device gone after unmount");

        r = dissected_image_mount(m, hook_fail, NULL, &mounts);
        CHECK(r == -EKEYREJECTED && mounts.usr_fd < 0 && strstr(strempty(sx_last_error()), "signature rejected"),
              "hook failure propagated, ret untouched");

        /* wrong fstype: the kernel refuses, its message is reported, the loop device goes away */
        free(m->partitions[PARTITION_USR].fstype);
        m->partitions[PARTITION_USR].fstype = strdup("ext4");
        sx_clear_error();
        r = dissected_image_mount(m, NULL, NULL, &mounts);
        CHECK(r < 0 && mounts.usr_fd < 0 && error_names(T("usr.raw")), "mount with wrong fstype fails: %s", strna(sx_last_error()));
        CHECK(loops_in_tmpdir() == 0, "no loop device left after failed mount");
}

static void test_repart(void) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        _cleanup_(pclosep) FILE *f = NULL;
        char line[1024];
        int checked = 0;

        if (!have("systemd-repart") || !have("openssl"))
                { SKIP("repart DDI: systemd-repart or openssl missing"); return; }
        if (run("mkdir -p defs && "
                "printf '[Partition]\\nType=usr\\nFormat=squashfs\\nCopyFiles=%s/src/usr:/\\nVerity=data\\nVerityMatchKey=usr\\n' >defs/10-usr.conf && "
                "printf '[Partition]\\nType=usr-verity\\nVerity=hash\\nVerityMatchKey=usr\\n' >defs/20-usr-verity.conf && "
                "printf '[Partition]\\nType=usr-verity-sig\\nVerity=signature\\nVerityMatchKey=usr\\n' >defs/30-usr-verity-sig.conf && "
                "openssl req -new -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1 -subj /CN=test && "
                "systemd-repart --empty=create --size=auto --dry-run=no --definitions=defs --private-key=key.pem "
                "--certificate=cert.pem ddi.raw", tmpdir) != 0)
                { CHECK(false, "building repart DDI"); return; }
        if (dissect_path(T("ddi.raw"), &m) < 0)
                { CHECK(false, "dissect repart DDI: %s", strna(sx_last_error())); return; }
        CHECK(m->kind == DISSECT_GPT && m->partitions[PARTITION_USR].found && !m->partitions[PARTITION_ROOT].found &&
              streq(strempty(m->partitions[PARTITION_USR].fstype), "squashfs"), "repart DDI: gpt with squashfs usr");

        /* compare with what sfdisk reads from the same table */
        _cleanup_free_ char *cmd = NULL;
        if (asprintf_safe(&cmd, "sfdisk -d '%s' 2>/dev/null", T("ddi.raw")) < 0)
                abort();
        f = popen(cmd, "r");
        while (f && fgets(line, sizeof(line), f)) {
                unsigned long long start, size;
                char type[64], uuid[64];
                sd_id128_t t, u;

                if (sscanf(strchr(line, ':') ? strchr(line, ':') + 1 : "", " start= %llu, size= %llu, type=%63[^,], uuid=%63[^,]",
                           &start, &size, type, uuid) != 4 ||
                    id128_from_string(type, &t) < 0 || id128_from_string(uuid, &u) < 0)
                        continue;
                for (int d = 0; d < _PARTITION_DESIGNATOR_MAX; d++) {
                        const DissectedPartition *p = &m->partitions[d];
                        if (!p->found || !sd_id128_equal(p->type_uuid, t))
                                continue;
                        CHECK(sd_id128_equal(p->uuid, u) && p->offset == start * 512 && p->size == size * 512 &&
                              streq(strempty(p->architecture), dissect_native_architecture()),
                              "repart DDI: %s at %llu+%llu, uuid %s", partition_designator_to_string(d), start, size, uuid);
                        checked++;
                }
        }
        CHECK(checked == 3 && m->partitions[PARTITION_USR_VERITY].found && m->partitions[PARTITION_USR_VERITY_SIG].found,
              "repart DDI: usr, usr-verity, usr-verity-sig found (%d matched sfdisk)", checked);
        m = dissected_image_free(m);
        test_mount_image("ddi.raw", false, true);
}

/* ---- main ---- */

int main(void) {
        test_setup_output();
        if (geteuid() != 0)
                SKIP("mount and loop tests: not root");
        else if (access("/dev/loop-control", W_OK) < 0)
                SKIP("mount and loop tests: no /dev/loop-control");
        else
                can_mount = mount_tests_possible();

        if (tmpdir_create("/var/tmp/test-dissect-XXXXXX") < 0) {
                fprintf(stderr, "mkdtemp: %m\n");
                return 1;
        }

        int fds_at_start = count_fds();

        test_names();
        if (build_trees() != 0) {
                CHECK(false, "building source trees");
                return 1;
        }
        test_directory();
        test_bare_fs("mksquashfs", "mksquashfs src sq.raw -noappend -quiet", "sq.raw", "squashfs");
        test_bare_fs("mkfs.erofs", "mkfs.erofs erofs.raw src", "erofs.raw", "erofs");
        test_bare_fs("mkfs.ext4", "mkfs.ext4 -q -F -d src ext4.raw 8M", "ext4.raw", "ext4");
        have_squashfs_tools = have("mksquashfs") && have("sfdisk") &&
                              run("mksquashfs src/usr usr.sq -noappend -quiet") == 0;
        if (have_squashfs_tools) {
                test_gpt_selection();
                test_bad_inputs();
        } else
                SKIP("GPT tests: mksquashfs or sfdisk missing");
        test_fs_sizes();

        if (can_mount) {
                test_mount_image("src", true, false);
                test_mount_image("sq.raw", true, false);
                test_mount_image("erofs.raw", true, false);
                test_mount_image("ext4.raw", true, false);
                test_mount_image("big-erofs-pad.raw", true, false);
                test_mount_image("big-squashfs-pad.raw", true, false);
                if (have_squashfs_tools) {
                        test_loop_device();
                        test_mount_image("usr.raw", false, true);
                        test_hierarchies();
                        test_mount_hooks_and_failures();
                }
                test_repart();
                CHECK(loops_in_tmpdir() == 0, "no loop device of ours left at the end");
        }

        CHECK(count_fds() == fds_at_start, "no fd leaked (%d open at start, %d at end)", fds_at_start, count_fds());
        return test_result();
}
