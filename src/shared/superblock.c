/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Filesystem sizes from superblocks. The kernel mounts some filesystems (erofs keeps its metadata at
 * the front) on a device shorter than the filesystem and fails only later, with EIO, on whatever
 * lies in the missing part; comparing the claimed size with what the image holds catches that before
 * anything is mounted. The bytes come from a file we do not trust: reads stay inside the range,
 * fields are range checked, products saturate instead of wrapping. */

#include <assert.h>
#include <endian.h>
#include <inttypes.h>

#include "superblock.h"

/* On-disk layouts, as the kernel's fs/erofs/erofs_fs.h, fs/ext4/ext4.h, fs/btrfs and fs/xfs read
 * them: where each superblock lies and the offsets of the fields we use within it. */
#define EROFS_SB_OFFSET                 1024
#define EROFS_SB_SIZE                   128
#define EROFS_MAGIC                     0xE0F5E1E2U
#define EROFS_OFF_BLKSZBITS             0x0C
#define EROFS_OFF_ROOT_NID_HI           0x0E    /* blocks_hi in the 48-bit layout */
#define EROFS_OFF_BLOCKS                0x24
#define EROFS_OFF_FEATURE_INCOMPAT      0x50
#define EROFS_OFF_ROOT_NID_8B           0x70
#define EROFS_FEATURE_INCOMPAT_48BIT    0x80U
#define EROFS_BLKSZBITS_MIN             9       /* 512 bytes */
#define EROFS_BLKSZBITS_MAX             16      /* 64 KiB */

#define SQUASHFS_SB_SIZE                96
#define SQUASHFS_MAGIC                  "hsqs"
#define SQUASHFS_OFF_BYTES_USED         40

#define EXT4_SB_OFFSET                  1024
#define EXT4_SB_SIZE                    0x154
#define EXT4_MAGIC                      0xEF53U
#define EXT4_OFF_BLOCKS_LO              0x04
#define EXT4_OFF_LOG_BLOCK_SIZE         0x18
#define EXT4_OFF_MAGIC                  0x38
#define EXT4_OFF_FEATURE_INCOMPAT       0x60
#define EXT4_OFF_BLOCKS_HI              0x150
#define EXT4_FEATURE_INCOMPAT_64BIT     0x80U
#define EXT4_BLOCK_SIZE_MIN             UINT64_C(1024)
#define EXT4_LOG_BLOCK_SIZE_MAX         6       /* 1 KiB << 6 = 64 KiB, the kernel's maximum */

#define BTRFS_SB_OFFSET                 (64 * 1024)
#define BTRFS_SB_SIZE                   0xD9
#define BTRFS_MAGIC                     "_BHRfS_M"
#define BTRFS_OFF_MAGIC                 0x40
#define BTRFS_OFF_TOTAL_BYTES           0x70
#define BTRFS_OFF_NUM_DEVICES           0x88
#define BTRFS_OFF_DEV_ITEM_TOTAL_BYTES  (0xC9 + 8)

#define XFS_SB_SIZE                     16
#define XFS_MAGIC                       "XFSB"
#define XFS_OFF_BLOCKSIZE               4
#define XFS_OFF_DBLOCKS                 8
#define XFS_BLOCK_SIZE_MIN              512
#define XFS_BLOCK_SIZE_MAX              65536

static uint16_t le16(const uint8_t *p) { uint16_t v; memcpy(&v, p, sizeof(v)); return le16toh(v); }
static uint32_t le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, sizeof(v)); return le32toh(v); }
static uint64_t le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, sizeof(v)); return le64toh(v); }
static uint32_t be32(const uint8_t *p) { uint32_t v; memcpy(&v, p, sizeof(v)); return be32toh(v); }
static uint64_t be64(const uint8_t *p) { uint64_t v; memcpy(&v, p, sizeof(v)); return be64toh(v); }

/* A hostile count times a block size: an impossible size is just "too big", never a wrapped small one. */
static uint64_t mul_sat(uint64_t a, uint64_t b) {
        uint64_t r;

        return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

typedef struct SbRead {
        const char *path;
        int partno;
        const char *fstype;
        int fd;
        uint64_t offset, limit;
} SbRead;

static int sb_error(const SbRead *s, int r, const char *reason) {
        if (s->partno > 0)
                return sx_error(r, "%s: GPT partition %i: %s superblock %s", s->path, s->partno, s->fstype, reason);
        return sx_error(r, "%s: %s superblock %s", s->path, s->fstype, reason);
}

/* n bytes at off within the filesystem's range, never beyond it. */
static int sb_read(const SbRead *s, uint64_t off, void *buf, size_t n) {
        ssize_t k;

        if (off > s->limit || n > s->limit - off)
                return sb_error(s, -EBADMSG, "lies beyond the end of the image");
        k = pread(s->fd, buf, n, (off_t) (s->offset + off));
        if (k < 0) {
                int r = negative_errno();
                return sx_error(r, "%s: cannot read %s superblock: %m", s->path, s->fstype);
        }
        if ((size_t) k != n)
                return sb_error(s, -EBADMSG, "lies beyond the end of the image");
        return 0;
}

static int erofs_size(const SbRead *s, uint64_t *ret) {
        uint8_t sb[EROFS_SB_SIZE];
        uint64_t blocks;
        int r = sb_read(s, EROFS_SB_OFFSET, sb, sizeof(sb));

        if (r < 0)
                return r;
        if (le32(sb) != EROFS_MAGIC)
                return sb_error(s, -EBADMSG, "has a bad magic number");
        if (sb[EROFS_OFF_BLKSZBITS] < EROFS_BLKSZBITS_MIN || sb[EROFS_OFF_BLKSZBITS] > EROFS_BLKSZBITS_MAX)
                return sb_error(s, -EBADMSG, "has an invalid block size");
        blocks = le32(sb + EROFS_OFF_BLOCKS);
        /* 48-bit layout: the kernel takes the high bits only when the 64-bit root nid is in use. */
        if ((le32(sb + EROFS_OFF_FEATURE_INCOMPAT) & EROFS_FEATURE_INCOMPAT_48BIT) && le64(sb + EROFS_OFF_ROOT_NID_8B) != 0)
                blocks |= (uint64_t) le16(sb + EROFS_OFF_ROOT_NID_HI) << 32;
        *ret = blocks << sb[EROFS_OFF_BLKSZBITS];      /* < 2^48 << 16: cannot overflow */
        return 0;
}

static int squashfs_size(const SbRead *s, uint64_t *ret) {
        uint8_t sb[SQUASHFS_SB_SIZE];
        int r = sb_read(s, 0, sb, sizeof(sb));

        if (r < 0)
                return r;
        if (memcmp(sb, SQUASHFS_MAGIC, STRLEN(SQUASHFS_MAGIC)) != 0)
                return sb_error(s, -EBADMSG, "has a bad magic number");
        /* bytes_used: what the filesystem needs; mksquashfs pads the file beyond it */
        *ret = le64(sb + SQUASHFS_OFF_BYTES_USED);
        return 0;
}

static int ext4_size(const SbRead *s, uint64_t *ret) {
        uint8_t sb[EXT4_SB_SIZE];
        uint64_t blocks;
        uint32_t log;
        int r = sb_read(s, EXT4_SB_OFFSET, sb, sizeof(sb));

        if (r < 0)
                return r;
        if (le16(sb + EXT4_OFF_MAGIC) != EXT4_MAGIC)
                return sb_error(s, -EBADMSG, "has a bad magic number");
        log = le32(sb + EXT4_OFF_LOG_BLOCK_SIZE);
        if (log > EXT4_LOG_BLOCK_SIZE_MAX)
                return sb_error(s, -EBADMSG, "has an invalid block size");
        blocks = le32(sb + EXT4_OFF_BLOCKS_LO);
        if (le32(sb + EXT4_OFF_FEATURE_INCOMPAT) & EXT4_FEATURE_INCOMPAT_64BIT)
                blocks |= (uint64_t) le32(sb + EXT4_OFF_BLOCKS_HI) << 32;
        *ret = mul_sat(blocks, EXT4_BLOCK_SIZE_MIN << log);
        return 0;
}

static int btrfs_size(const SbRead *s, uint64_t *ret) {
        uint8_t sb[BTRFS_SB_SIZE];
        int r = sb_read(s, BTRFS_SB_OFFSET, sb, sizeof(sb));

        if (r < 0)
                return r;
        if (memcmp(sb + BTRFS_OFF_MAGIC, BTRFS_MAGIC, STRLEN(BTRFS_MAGIC)) != 0)
                return sb_error(s, -EBADMSG, "has a bad magic number");
        /* total_bytes sums all devices; of a multi-device filesystem only this device's share
         * (dev_item.total_bytes) must be here. */
        *ret = le64(sb + BTRFS_OFF_NUM_DEVICES) == 1 ? le64(sb + BTRFS_OFF_TOTAL_BYTES)
                                                      : le64(sb + BTRFS_OFF_DEV_ITEM_TOTAL_BYTES);
        return 0;
}

static int xfs_size(const SbRead *s, uint64_t *ret) {
        uint8_t sb[XFS_SB_SIZE];
        uint32_t bs;
        int r = sb_read(s, 0, sb, sizeof(sb));

        if (r < 0)
                return r;
        if (memcmp(sb, XFS_MAGIC, STRLEN(XFS_MAGIC)) != 0)
                return sb_error(s, -EBADMSG, "has a bad magic number");
        bs = be32(sb + XFS_OFF_BLOCKSIZE);
        if (bs < XFS_BLOCK_SIZE_MIN || bs > XFS_BLOCK_SIZE_MAX || (bs & (bs - 1)) != 0)
                return sb_error(s, -EBADMSG, "has an invalid block size");
        *ret = mul_sat(be64(sb + XFS_OFF_DBLOCKS), bs);
        return 0;
}

int superblock_fs_size(const char *path, int partno, int fd, uint64_t offset, uint64_t limit, const char *fstype,
                       uint64_t *ret_size) {
        static const struct {
                const char *fstype;
                int (*size)(const SbRead *s, uint64_t *ret);
        } table[] = {
                { "erofs", erofs_size },
                { "squashfs", squashfs_size },
                { "ext4", ext4_size },
                { "btrfs", btrfs_size },
                { "xfs", xfs_size },
        };
        SbRead s = { .path = path, .partno = partno, .fstype = fstype, .fd = fd, .offset = offset, .limit = limit };

        assert(path);
        assert(fd >= 0);
        assert(fstype);
        assert(ret_size);
        if (offset > UINT64_MAX - limit || offset + limit > INT64_MAX)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(table[i].fstype, fstype))
                        return table[i].size(&s, ret_size);
        return -EOPNOTSUPP;
}
