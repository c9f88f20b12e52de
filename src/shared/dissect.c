/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Dissection of extension images: directory, bare filesystem image, or GPT disk image following the
 * Discoverable Partitions Specification (DPS). libblkid reads the partition table and the
 * superblocks; we only classify, select and sanity check what it reports, since the file may be
 * hostile and we run as root. */

#include <assert.h>
#include <blkid/blkid.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <systemd/sd-gpt.h>

#include "dissect.h"
#include "id128-util.h"
#include "mountapi.h"
#include "superblock.h"
#include "version.h"

#define SECTOR_SIZE 512U
/* DPS images have a handful of partitions; a table claiming more is refused rather than trusted. */
#define PARTITIONS_MAX 256

static const char * const partition_designator_table[_PARTITION_DESIGNATOR_MAX] = {
        [PARTITION_ROOT]            = "root",
        [PARTITION_USR]             = "usr",
        [PARTITION_ROOT_VERITY]     = "root-verity",
        [PARTITION_USR_VERITY]      = "usr-verity",
        [PARTITION_ROOT_VERITY_SIG] = "root-verity-sig",
        [PARTITION_USR_VERITY_SIG]  = "usr-verity-sig",
};

const char *partition_designator_to_string(PartitionDesignator d) {
        if (d < 0 || d >= _PARTITION_DESIGNATOR_MAX)
                return NULL;
        return partition_designator_table[d];
}

PartitionDesignator partition_designator_from_string(const char *s) {
        if (!s)
                return _PARTITION_DESIGNATOR_INVALID;
        for (int d = 0; d < _PARTITION_DESIGNATOR_MAX; d++)
                if (streq(partition_designator_table[d], s))
                        return (PartitionDesignator) d;
        return _PARTITION_DESIGNATOR_INVALID;
}

const char *dissect_kind_to_string(DissectKind k) {
        static const char * const table[_DISSECT_KIND_MAX] = {
                [DISSECT_DIRECTORY]  = "directory",
                [DISSECT_FILESYSTEM] = "filesystem",
                [DISSECT_GPT]        = "gpt",
        };
        return k >= 0 && k < _DISSECT_KIND_MAX ? table[k] : NULL;
}

/* ---- DPS type UUIDs, per architecture, named as systemd names architectures ---- */

typedef struct ArchTypes {
        const char *arch;
        sd_id128_t type[_PARTITION_DESIGNATOR_MAX];
} ArchTypes;

#define ARCH(name, A)                                                  \
        { name, {                                                      \
                [PARTITION_ROOT]            = SD_GPT_ROOT_##A,         \
                [PARTITION_USR]             = SD_GPT_USR_##A,          \
                [PARTITION_ROOT_VERITY]     = SD_GPT_ROOT_##A##_VERITY, \
                [PARTITION_USR_VERITY]      = SD_GPT_USR_##A##_VERITY, \
                [PARTITION_ROOT_VERITY_SIG] = SD_GPT_ROOT_##A##_VERITY_SIG, \
                [PARTITION_USR_VERITY_SIG]  = SD_GPT_USR_##A##_VERITY_SIG, \
        } }

static const ArchTypes arch_types[] = {
        ARCH("alpha", ALPHA),           ARCH("arc", ARC),
        ARCH("arm", ARM),               ARCH("arm64", ARM64),
        ARCH("ia64", IA64),             ARCH("loongarch64", LOONGARCH64),
        ARCH("mips", MIPS),             ARCH("mips64", MIPS64),
        ARCH("mips-le", MIPS_LE),       ARCH("mips64-le", MIPS64_LE),
        ARCH("parisc", PARISC),         ARCH("ppc", PPC),
        ARCH("ppc64", PPC64),           ARCH("ppc64-le", PPC64_LE),
        ARCH("riscv32", RISCV32),       ARCH("riscv64", RISCV64),
        ARCH("s390", S390),             ARCH("s390x", S390X),
        ARCH("tilegx", TILEGX),         ARCH("x86", X86),
        ARCH("x86-64", X86_64),
};

/* Map a type UUID to (architecture, designator). Returns false for anything not DPS root/usr. */
static bool classify_type(sd_id128_t type, const ArchTypes **ret_arch, PartitionDesignator *ret_d) {
        for (size_t i = 0; i < ELEMENTSOF(arch_types); i++)
                for (int d = 0; d < _PARTITION_DESIGNATOR_MAX; d++)
                        if (sd_id128_equal(arch_types[i].type[d], type)) {
                                *ret_arch = &arch_types[i];
                                *ret_d = (PartitionDesignator) d;
                                return true;
                        }
        return false;
}

/* 2 = native, 1 = secondary (e.g. x86 on x86-64), 0 = foreign: never used. */
static int arch_priority(const ArchTypes *a) {
#ifdef SD_GPT_ROOT_NATIVE
        if (sd_id128_equal(a->type[PARTITION_ROOT], SD_GPT_ROOT_NATIVE))
                return 2;
#endif
#ifdef SD_GPT_ROOT_SECONDARY
        if (sd_id128_equal(a->type[PARTITION_ROOT], SD_GPT_ROOT_SECONDARY))
                return 1;
#endif
        return 0;
}

const char *dissect_native_architecture(void) {
        for (size_t i = 0; i < ELEMENTSOF(arch_types); i++)
                if (arch_priority(&arch_types[i]) == 2)
                        return arch_types[i].arch;
        return "unknown";
}

static PartitionDesignator data_designator_of(PartitionDesignator d) {
        switch (d) {
        case PARTITION_ROOT_VERITY:
        case PARTITION_ROOT_VERITY_SIG:
                return PARTITION_ROOT;
        case PARTITION_USR_VERITY:
        case PARTITION_USR_VERITY_SIG:
                return PARTITION_USR;
        default:
                return d;
        }
}

/* ---- object lifetime ---- */

static void partition_done(DissectedPartition *p) {
        free(p->label);
        free(p->fstype);
        free(p->architecture);
        *p = (DissectedPartition) {};
}

DissectedImage *dissected_image_free(DissectedImage *m) {
        if (!m)
                return NULL;
        for (int d = 0; d < _PARTITION_DESIGNATOR_MAX; d++)
                partition_done(&m->partitions[d]);
        free(m->path);
        free(m->name);
        free(m->table_uuid);
        safe_close(m->fd);
        free(m);
        return NULL;
}

static DissectedImage *dissected_image_new(const char *path, const char *name) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;

        m = calloc(1, sizeof(*m));
        if (!m)
                return NULL;
        m->fd = -EBADF;
        m->path = strdup(strempty(path));
        m->name = name ? strdup(name) : NULL;
        if (!m->path || (name && !m->name))
                return NULL;
        return TAKE_PTR(m);
}

static const char *image_label(const char *path) {
        return isempty(path) ? "image" : path;
}

/* ---- libblkid helpers ---- */

DEFINE_TRIVIAL_CLEANUP_FUNC(blkid_probe, blkid_free_probe);

static const char * const supported_fstypes[] = { "squashfs", "erofs", "ext4", "btrfs", "xfs", NULL };

static bool fstype_supported(const char *fstype) {
        for (size_t i = 0; supported_fstypes[i]; i++)
                if (streq(fstype, supported_fstypes[i]))
                        return true;
        return false;
}

/* Probe for the file systems we mount first: the full set of probers (RAID signatures at the end
 * of the device and so on) costs reads that grow with the image. Only when none of ours is there,
 * probe again with all of them, to name what the image is. */
static int safeprobe_supported_first(blkid_probe pr) {
        int r;

        (void) blkid_probe_filter_superblocks_type(pr, BLKID_FLTR_ONLYIN, (char **) supported_fstypes);
        r = blkid_do_safeprobe(pr);
        if (r != 1)
                return r;
        blkid_reset_probe(pr);
        (void) blkid_probe_reset_superblocks_filter(pr);
        errno = 0;
        return blkid_do_safeprobe(pr);
}

static int probe_new(int fd, uint64_t offset, uint64_t size, blkid_probe *ret) {
        blkid_probe pr;

        errno = 0;
        pr = blkid_new_probe();
        if (!pr)
                return errno > 0 ? -errno : -ENOMEM;
        if (blkid_probe_set_device(pr, fd, (blkid_loff_t) offset, (blkid_loff_t) size) < 0) {
                blkid_free_probe(pr);
                return errno > 0 ? -errno : -EIO;
        }
        *ret = pr;
        return 0;
}

/* Probe the filesystem in [offset, offset+size) and check it is one we mount. */
static int probe_fstype(const char *path, int fd, uint64_t offset, uint64_t size, int partno, char **ret) {
        _cleanup_(blkid_free_probep) blkid_probe pr = NULL;
        const char *type = NULL;
        char what[32] = "image";
        int r;

        if (partno > 0)
                (void) snprintf(what, sizeof(what), "GPT partition %i", partno);
        r = probe_new(fd, offset, size, &pr);
        if (r < 0)
                return sx_error(r, "%s: cannot probe %s: %m", path, what);
        (void) blkid_probe_enable_partitions(pr, false);
        (void) blkid_probe_enable_superblocks(pr, true);
        (void) blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
        errno = 0;
        r = safeprobe_supported_first(pr);
        if (r == -2)
                return sx_error(-EBADMSG, "%s: %s carries several conflicting filesystem signatures", path, what);
        if (r < 0)
                return sx_error(errno > 0 ? -errno : -EIO, "%s: probing %s failed", path, what);
        if (r == 1 || blkid_probe_lookup_value(pr, "TYPE", &type, NULL) < 0 || isempty(type))
                return sx_error(-ENOMEDIUM, "%s: %s contains no recognizable filesystem", path, what);
        if (!fstype_supported(type))
                return sx_error(-EINVAL, "%s: %s has unsupported filesystem type \"%s\" (supported: squashfs, erofs, ext4, btrfs, xfs)",
                                path, what, type);
        char *t = strdup(type);
        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

/* Refuse a filesystem claiming more bytes than its image or partition holds: erofs would mount and
 * only fail later, with EIO, on files in the lost part. */
static int check_fs_size(const char *path, int fd, const DissectedPartition *p) {
        uint64_t need;
        int r;

        r = superblock_fs_size(path, p->partno, fd, p->offset, p->size, p->fstype, &need);
        if (r < 0)
                return r;
        if (need <= p->size)
                return 0;
        if (p->partno > 0)
                return sx_error(-EBADMSG, "%s: %s file system is truncated: it needs %" PRIu64 " bytes, GPT partition %i has %" PRIu64,
                                path, p->fstype, need, p->partno, p->size);
        return sx_error(-EBADMSG, "%s: %s file system is truncated: it needs %" PRIu64 " bytes, the image has %" PRIu64,
                        path, p->fstype, need, p->size);
}

/* ---- GPT ---- */

typedef struct Candidate {
        DissectedPartition p;
        PartitionDesignator designator;
        int priority;
} Candidate;

typedef struct Range {
        uint64_t start, end;
        int partno;
} Range;

static int range_cmp(const void *a, const void *b) {
        const Range *x = a, *y = b;

        return x->start < y->start ? -1 : x->start > y->start ? 1 : 0;
}

/* Any two partitions sharing a byte would let one filesystem be altered through another. */
static int check_overlaps(const char *path, Range *ranges, size_t n) {
        qsort(ranges, n, sizeof(Range), range_cmp);
        for (size_t i = 1; i < n; i++)
                if (ranges[i].start < ranges[i - 1].end)
                        return sx_error(-EBADMSG, "%s: GPT partitions %i and %i overlap", path,
                                        ranges[i - 1].partno, ranges[i].partno);
        return 0;
}

/* Position and size of one entry, in bytes, checked against the image (libblkid hands out signed
 * sector counts straight from the table). */
static int partition_range(const char *path, blkid_partition pp, uint64_t image_size, Range *ret) {
        blkid_loff_t start = blkid_partition_get_start(pp), size = blkid_partition_get_size(pp);
        int partno = blkid_partition_get_partno(pp);

        if (start <= 0 || size <= 0)
                return sx_error(-EBADMSG, "%s: GPT partition %i has an invalid start or size", path, partno);
        if ((uint64_t) start > UINT64_MAX / SECTOR_SIZE / 2 || (uint64_t) size > UINT64_MAX / SECTOR_SIZE / 2)
                return sx_error(-EBADMSG, "%s: GPT partition %i lies beyond the end of the image", path, partno);
        ret->start = (uint64_t) start * SECTOR_SIZE;
        ret->end = ret->start + (uint64_t) size * SECTOR_SIZE;
        ret->partno = partno;
        if (ret->end > image_size)
                return sx_error(-EBADMSG, "%s: GPT partition %i extends beyond the end of the image (%" PRIu64 " > %" PRIu64 " bytes)",
                                path, partno, ret->end, image_size);
        return 0;
}

static int candidate_fill(const char *path, blkid_partition pp, const Range *range, sd_id128_t type,
                          const ArchTypes *arch, Candidate *c) {
        const char *label = blkid_partition_get_name(pp), *uuid = blkid_partition_get_uuid(pp);
        uint64_t flags = (uint64_t) blkid_partition_get_flags(pp);

        /* Labels are compared as versions and shown to users: refuse terminal escapes and the like. */
        if (label && (string_has_cc(label) || !utf8_is_valid(label)))
                return sx_error(-EBADMSG, "%s: GPT partition %i has a label with invalid characters", path, range->partno);
        c->p = (DissectedPartition) {
                .found = true,
                .partno = range->partno,
                .type_uuid = type,
                .offset = range->start,
                .size = range->end - range->start,
                .gpt_flags = flags,
                .read_only = flags & SD_GPT_FLAG_READ_ONLY,
                .no_auto = flags & SD_GPT_FLAG_NO_AUTO,
                .growfs = flags & SD_GPT_FLAG_GROWFS,
        };
        if (!uuid || id128_from_string(uuid, &c->p.uuid) < 0)
                c->p.uuid = SD_ID128_NULL;
        c->p.label = isempty(label) ? NULL : strdup(label);
        c->p.architecture = strdup(arch->arch);
        if ((!isempty(label) && !c->p.label) || !c->p.architecture) {
                partition_done(&c->p);
                return -ENOMEM;
        }
        c->priority = arch_priority(arch);
        return 0;
}

/* Is a a better choice than b? Auto-usable beats no-auto, native beats secondary, then the higher
 * label version wins; on a tie the earlier entry stays. */
static bool candidate_better(const Candidate *a, const Candidate *b) {
        if (!b)
                return true;
        if (a->p.no_auto != b->p.no_auto)
                return !a->p.no_auto;
        if (a->priority != b->priority)
                return a->priority > b->priority;
        return version_compare(a->p.label, b->p.label) > 0;
}

static const Candidate *pick(const Candidate *c, size_t n, PartitionDesignator d, const char *arch) {
        const Candidate *best = NULL;

        for (size_t i = 0; i < n; i++) {
                if (c[i].designator != d || c[i].priority == 0)
                        continue;
                if (arch && !streq(c[i].p.architecture, arch))
                        continue;
                if (candidate_better(&c[i], best))
                        best = &c[i];
        }
        return best;
}

/* Move the chosen candidates into the image; a no-auto pick is recorded with found=false so that
 * nobody mounts it. */
static void select_partitions(DissectedImage *m, Candidate *c, size_t n) {
        static const PartitionDesignator order[] = {
                PARTITION_ROOT, PARTITION_USR, PARTITION_ROOT_VERITY, PARTITION_USR_VERITY,
                PARTITION_ROOT_VERITY_SIG, PARTITION_USR_VERITY_SIG,
        };

        for (size_t i = 0; i < ELEMENTSOF(order); i++) {
                PartitionDesignator d = order[i], data = data_designator_of(d);
                const char *arch = NULL;

                if (d != data) {
                        /* verity and signature belong to the data partition's architecture */
                        if (!m->partitions[data].found)
                                continue;
                        arch = m->partitions[data].architecture;
                }
                Candidate *best = (Candidate *) pick(c, n, d, arch);
                if (!best)
                        continue;
                m->partitions[d] = best->p;
                best->p = (DissectedPartition) {};
                if (m->partitions[d].no_auto)
                        m->partitions[d].found = false;
        }
}

static void candidates_free(Candidate *c, size_t n) {
        for (size_t i = 0; i < n; i++)
                partition_done(&c[i].p);
        free(c);
}

/* Walk the table: check every entry's range, collect the DPS root/usr(-verity,-sig) entries. */
static int collect_partitions(DissectedImage *m, blkid_partlist pl, Candidate **ret_c, size_t *ret_n) {
        int n = blkid_partlist_numof_partitions(pl), r;
        _cleanup_free_ Range *ranges = NULL;
        Candidate *c = NULL;
        size_t nc = 0;

        if (n < 0)
                return sx_error(-EBADMSG, "%s: cannot read GPT partition entries", m->path);
        if (n > PARTITIONS_MAX)
                return sx_error(-EBADMSG, "%s: GPT has %i partitions, refusing more than %i", m->path, n, PARTITIONS_MAX);
        ranges = calloc((size_t) n + 1, sizeof(Range));
        c = calloc((size_t) n + 1, sizeof(Candidate));
        if (!ranges || !c) {
                free(c);
                return -ENOMEM;
        }
        for (int i = 0; i < n; i++) {
                blkid_partition pp = blkid_partlist_get_partition(pl, i);
                const ArchTypes *arch;
                PartitionDesignator d;
                sd_id128_t type;
                const char *ts;

                r = pp ? partition_range(m->path, pp, m->size, &ranges[i])
                       : sx_error(-EBADMSG, "%s: cannot read GPT partition entry %i", m->path, i + 1);
                if (r < 0)
                        goto fail;
                ts = blkid_partition_get_type_string(pp);
                if (!ts || id128_from_string(ts, &type) < 0 || !classify_type(type, &arch, &d))
                        continue;
                r = candidate_fill(m->path, pp, &ranges[i], type, arch, &c[nc]);
                if (r < 0)
                        goto fail;
                c[nc++].designator = d;
        }
        r = check_overlaps(m->path, ranges, (size_t) n);
        if (r < 0)
                goto fail;
        *ret_c = c;
        *ret_n = nc;
        return 0;
fail:
        candidates_free(c, nc);
        return r;
}

static int dissect_gpt(DissectedImage *m, blkid_probe pr) {
        blkid_partlist pl;
        blkid_parttable pt;
        Candidate *c = NULL;
        size_t n = 0;
        int r;

        errno = 0;
        pl = blkid_probe_get_partitions(pr);
        if (!pl)
                return sx_error(-EBADMSG, "%s: cannot read GPT partition table", m->path);
        pt = blkid_partlist_get_table(pl);
        if (pt && blkid_parttable_get_id(pt)) {
                m->table_uuid = strdup(blkid_parttable_get_id(pt));
                if (!m->table_uuid)
                        return -ENOMEM;
        }
        r = collect_partitions(m, pl, &c, &n);
        if (r < 0)
                return r;
        select_partitions(m, c, n);
        candidates_free(c, n);

        if (!m->partitions[PARTITION_ROOT].found && !m->partitions[PARTITION_USR].found)
                return sx_error(-ENXIO, "%s: no root or usr partition for this architecture (%s)", m->path, dissect_native_architecture());
        for (int d = PARTITION_ROOT; d <= PARTITION_USR; d++) {
                DissectedPartition *p = &m->partitions[d];
                if (!p->found)
                        continue;
                r = probe_fstype(m->path, m->fd, p->offset, p->size, p->partno, &p->fstype);
                if (r < 0)
                        return r;
                r = check_fs_size(m->path, m->fd, p);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A bare filesystem image: shown as one root partition covering the whole file. */
static int dissect_filesystem(DissectedImage *m, const char *type) {
        DissectedPartition *p = &m->partitions[PARTITION_ROOT];

        if (!fstype_supported(type))
                return sx_error(-EINVAL, "%s: unsupported filesystem type \"%s\" (supported: squashfs, erofs, ext4, btrfs, xfs)",
                                m->path, type);
        /* A loop device only has whole sectors; a ragged tail would silently be cut off. */
        if (m->size % SECTOR_SIZE != 0)
                return sx_error(-EBADMSG, "%s: image size %" PRIu64 " is not a multiple of %u bytes", m->path, m->size, SECTOR_SIZE);
        *p = (DissectedPartition) { .found = true, .offset = 0, .size = m->size };
        p->fstype = strdup(type);
        if (!p->fstype)
                return -ENOMEM;
        return check_fs_size(m->path, m->fd, p);
}

/* First look at the whole file: partition table or filesystem, and which one. */
static int dissect_probe(DissectedImage *m) {
        _cleanup_(blkid_free_probep) blkid_probe pr = NULL;
        const char *pttype = NULL, *type = NULL;
        int r;

        r = probe_new(m->fd, 0, 0, &pr);
        if (r < 0)
                return sx_error(r, "%s: cannot probe image: %m", m->path);
        (void) blkid_probe_enable_partitions(pr, true);
        (void) blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
        (void) blkid_probe_enable_superblocks(pr, true);
        (void) blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
        errno = 0;
        r = safeprobe_supported_first(pr);
        if (r == -2)
                return sx_error(-EBADMSG, "%s: image carries several conflicting signatures (partition table and filesystem?)", m->path);
        if (r < 0)
                return sx_error(errno > 0 ? -errno : -EIO, "%s: probing image failed", m->path);
        if (r == 1)
                return sx_error(-ENOMEDIUM, "%s: no filesystem or partition table found", m->path);

        (void) blkid_probe_lookup_value(pr, "PTTYPE", &pttype, NULL);
        (void) blkid_probe_lookup_value(pr, "TYPE", &type, NULL);
        if (pttype && streq(pttype, "gpt")) {
                m->kind = DISSECT_GPT;
                return dissect_gpt(m, pr);
        }
        /* libblkid reports "PMBR" when a protective MBR points to a GPT it could not validate: bad
         * CRC, entries that do not fit, or a header pointing beyond the end of a truncated file. */
        if (pttype && streq(pttype, "PMBR"))
                return sx_error(-EBADMSG, "%s: GPT header or entries are corrupt, or the image is truncated", m->path);
        if (pttype)
                return sx_error(-EINVAL, "%s: partition table type \"%s\" is not supported, only GPT", m->path, pttype);
        if (isempty(type))
                return sx_error(-ENOMEDIUM, "%s: no filesystem or partition table found", m->path);
        m->kind = DISSECT_FILESYSTEM;
        return dissect_filesystem(m, type);
}

int dissect_image_fd(int fd, const char *path, const char *name, DissectedImage **ret) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        int r;

        assert(fd >= 0);
        assert(ret);
        m = dissected_image_new(image_label(path), name);
        if (!m)
                return -ENOMEM;
        /* Our own fd: the caller keeps theirs, and the mounts made later refer to this one. */
        m->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (m->fd < 0)
                return negative_errno();
        r = fd_get_size(m->fd, &m->size);
        if (r == -EBADFD)
                return sx_error(r, "%s: not a regular file or block device", m->path);
        if (r < 0)
                return sx_error(r, "%s: cannot determine size: %m", m->path);
        r = dissect_probe(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

static int dissect_directory(const Image *image, int path_fd, DissectedImage **ret) {
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;

        m = dissected_image_new(image->path, image->name);
        if (!m)
                return -ENOMEM;
        m->kind = DISSECT_DIRECTORY;
        m->fd = fcntl(path_fd, F_DUPFD_CLOEXEC, 3);
        if (m->fd < 0)
                return negative_errno();
        m->partitions[PARTITION_ROOT].found = true;
        *ret = TAKE_PTR(m);
        return 0;
}

int dissect_image(const Image *image, DissectedImage **ret) {
        _cleanup_close_ int path_fd = -EBADF, fd = -EBADF;
        char proc[STRLEN("/proc/self/fd/") + 12];
        struct stat st;

        assert(image);
        assert(ret);
        if (isempty(image->path))
                return -EINVAL;
        /* O_PATH first: opening a device node or FIFO for reading can have side effects. A path a
         * user controls is canonical already: any symlink in it now was swapped in, refuse it. */
        if (image->no_symlinks) {
                struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS };
                path_fd = sys_openat2(AT_FDCWD, image->path, &how, sizeof(how));
        } else
                path_fd = open(image->path, O_PATH | O_CLOEXEC);
        if (path_fd < 0)
                return sx_error(negative_errno(), "%s: cannot open image: %m", image->path);
        if (fstat(path_fd, &st) < 0)
                return sx_error(negative_errno(), "%s: cannot stat image: %m", image->path);
        if (S_ISDIR(st.st_mode))
                return dissect_directory(image, path_fd, ret);
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
                return sx_error(-EBADFD, "%s: not a directory, regular file or block device", image->path);
        /* Reopen the very inode we checked, not whatever the path points to now. */
        (void) snprintf(proc, sizeof(proc), "/proc/self/fd/%i", path_fd);
        fd = open(proc, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return sx_error(negative_errno(), "%s: cannot open image for reading: %m", image->path);
        return dissect_image_fd(fd, image->path, image->name, ret);
}

/* ---- mounting ---- */

void image_mounts_done(ImageMounts *m) {
        if (!m)
                return;
        m->root_fd = safe_close(m->root_fd);
        m->usr_fd = safe_close(m->usr_fd);
}

/* Record "path: what: <kernel messages or errno text>" and return r. */
static int mount_error(int r, int fs_fd, const char *path, const char *what) {
        _cleanup_free_ char *msgs = fs_context_messages(fs_fd);

        if (!msgs)
                return sx_error(r, "%s: %s: %m", path, what);
        return sx_error(r, "%s: %s: %s", path, what, msgs);
}

/* fsopen/fsconfig/fsmount a read-only detached mount of the block device (or, for erofs, the
 * file) at source. */
static int mount_block(const char *path, const char *fstype, const char *source, int *ret_mnt) {
        _cleanup_close_ int fs_fd = -EBADF;
        int mnt;

        fs_fd = sys_fsopen(fstype, FSOPEN_CLOEXEC);
        if (fs_fd < 0)
                return sx_error(negative_errno(), "%s: kernel cannot mount %s: %m", path, fstype);
        if (sys_fsconfig(fs_fd, FSCONFIG_SET_STRING, "source", source, 0) < 0)
                return mount_error(negative_errno(), fs_fd, path, "setting mount source failed");
        if (sys_fsconfig(fs_fd, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0)
                return mount_error(negative_errno(), fs_fd, path, "setting read-only failed");
        if (sys_fsconfig(fs_fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return mount_error(negative_errno(), fs_fd, path, "mounting filesystem failed");
        /* No MOUNT_ATTR_NOSUID: setuid binaries in system extensions must keep working. */
        mnt = sys_fsmount(fs_fd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV);
        if (mnt < 0)
                return mount_error(negative_errno(), fs_fd, path, "creating mount failed");
        *ret_mnt = mnt;
        return 0;
}

/* Plain read-only loop device over the partition's range. */
static int open_loop(const DissectedImage *m, const DissectedPartition *p, LoopDevice **ret) {
        int r;

        sx_clear_error();
        r = loop_device_make(m->fd, p->offset, p->size, ret);
        if (r >= 0)
                return r;
        return sx_error_prefix(r, "%s: cannot set up loop device", m->path);
}

/* A bare erofs image file needs no loop device where the kernel mounts erofs from a file (6.12+,
 * CONFIG_EROFS_FS_BACKED_BY_FILE): the source is then a path the kernel opens itself, our fd's
 * magic link, so it is the very file we probed. Only for images with nothing to verify: a verified
 * one is mounted from the verified block device (re-probed in mount_partition()), never from the
 * file, nor where the caller asked for a block device (block_device_only). 1 mounted; 0 not possible
 * here (a kernel without it, a GPT partition, or a file system the
 * kernel cannot read erofs from, such as tmpfs: -ENOTBLK), use a loop device. */
static int mount_file_backed(const DissectedImage *m, const DissectedPartition *p, int *ret_mnt) {
        char source[STRLEN("/proc/self/fd/") + 12];
        struct stat st;
        int r;

        if (m->block_device_only || m->kind != DISSECT_FILESYSTEM || !streq(p->fstype, "erofs") || p->offset != 0 || p->size != m->size ||
            fstat(m->fd, &st) < 0 || !S_ISREG(st.st_mode))
                return 0;
        (void) snprintf(source, sizeof(source), "/proc/self/fd/%i", m->fd);
        r = mount_block(m->path, p->fstype, source, ret_mnt);
        if (r != -ENOTBLK)
                return r < 0 ? r : 1;
        sx_clear_error();
        return 0;
}

static int mount_partition(const DissectedImage *m, PartitionDesignator d, DissectOpenPartition open_partition,
                           void *userdata, int *ret_mnt) {
        const DissectedPartition *p = &m->partitions[d];
        _cleanup_(loop_device_freep) LoopDevice *loop = NULL;
        _cleanup_close_ int block_fd = -EBADF;
        char source[STRLEN("/proc/self/fd/") + 12];
        struct stat st;
        int r = -EOPNOTSUPP;

        if (isempty(p->fstype) || p->size == 0)
                return sx_error(-EBADMSG, "%s: %s partition has no filesystem to mount", m->path,
                                partition_designator_to_string(d));
        if (open_partition)
                r = open_partition(m, d, userdata, &block_fd);
        if (r == -EOPNOTSUPP) {
                r = mount_file_backed(m, p, ret_mnt);
                if (r != 0)
                        return r < 0 ? r : 0;
                r = open_loop(m, p, &loop);
                if (r < 0)
                        return r;
                (void) snprintf(source, sizeof(source), "%s", loop->node);
        } else if (r < 0)
                return r;       /* the hook recorded its own message */
        else {
                if (fstat(block_fd, &st) < 0 || !S_ISBLK(st.st_mode))
                        return sx_error(-ENOTBLK, "%s: %s partition: trust hook did not return a block device", m->path,
                                        partition_designator_to_string(d));
                /* The type was probed on bytes that were not yet verified, and a writer of the
                 * image could have shown another file system then (a polyglot, one magic zeroed
                 * while we looked): probe again on the verified device, which is what the kernel
                 * will parse, and mount only if it is the same single type. */
                _cleanup_free_ char *verified = NULL;
                uint64_t size;
                r = fd_get_size(block_fd, &size);
                if (r >= 0)
                        r = probe_fstype(m->path, block_fd, 0, size, 0, &verified);
                if (r < 0)
                        return r;
                if (!streq(verified, p->fstype))
                        return sx_error(-EBADMSG, "%s: %s partition: probed as %s before verification but %s after; refusing it",
                                        m->path, partition_designator_to_string(d), p->fstype, verified);
                /* The kernel resolves the magic link to the very device we hold. */
                (void) snprintf(source, sizeof(source), "/proc/self/fd/%i", block_fd);
        }
        /* The loop fd is closed on return: from then on only the superblock holds the device, and
         * autoclear removes it with the last mount. */
        return mount_block(m->path, p->fstype, source, ret_mnt);
}

int dissected_image_mount(const DissectedImage *m, DissectOpenPartition open_partition, void *userdata,
                          ImageMounts *ret) {
        _cleanup_(image_mounts_done) ImageMounts mounts = IMAGE_MOUNTS_NULL;
        int r;

        assert(m);
        assert(ret);
        if (m->kind == DISSECT_DIRECTORY) {
                mounts.root_fd = sys_open_tree(m->fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
                if (mounts.root_fd < 0)
                        return sx_error(negative_errno(), "%s: cannot clone directory tree: %m", m->path);
        } else {
                if (m->partitions[PARTITION_ROOT].found) {
                        r = mount_partition(m, PARTITION_ROOT, open_partition, userdata, &mounts.root_fd);
                        if (r < 0)
                                return r;
                }
                if (m->partitions[PARTITION_USR].found) {
                        r = mount_partition(m, PARTITION_USR, open_partition, userdata, &mounts.usr_fd);
                        if (r < 0)
                                return r;
                }
                if (mounts.root_fd < 0 && mounts.usr_fd < 0)
                        return sx_error(-ENXIO, "%s: no root or usr partition to mount", m->path);
        }
        *ret = mounts;
        mounts = IMAGE_MOUNTS_NULL;
        return 0;
}

int image_mounts_open_hierarchy(const ImageMounts *m, const char *hierarchy, int *ret_fd) {
        const char *rel, *below_usr;
        int dir_fd, fd;

        assert(m);
        assert(ret_fd);
        assert(path_is_absolute(hierarchy));
        rel = hierarchy + strspn(hierarchy, "/");
        below_usr = startswith_ptr(rel, "usr");
        if (m->usr_fd >= 0 && below_usr && (*below_usr == 0 || *below_usr == '/')) {
                /* The usr partition's root is /usr itself. */
                dir_fd = m->usr_fd;
                rel = below_usr + strspn(below_usr, "/");
        } else
                dir_fd = m->root_fd;
        if (dir_fd < 0)
                return -ENOENT;
        fd = openat_beneath(dir_fd, isempty(rel) ? "." : rel, O_PATH | O_DIRECTORY, /* in_root= */ false);
        if (fd == -EXDEV)
                return sx_error(fd, "%s in image is a symlink pointing outside the image", hierarchy);
        if (fd == -ENOTDIR)
                return sx_error(fd, "%s in image is not a directory", hierarchy);
        if (fd < 0 && fd != -ENOENT)
                return sx_error(fd, "%s in image cannot be opened: %m", hierarchy);
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        return 0;
}
