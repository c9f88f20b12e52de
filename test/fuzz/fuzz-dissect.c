/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Image dissection of hostile bytes: libblkid's GPT and superblock probing, our partition selection,
 * range and overlap checks, the superblock size readers, and (on success) the verity settings of the
 * image, which parse the signature partition. The input lives in a memfd; nothing is mounted, no loop
 * device is made. */

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dissect.h"
#include "superblock.h"
#include "verity.h"
#include "fuzz.h"

static int memfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        memfd = memfd_create("fuzz-dissect", MFD_CLOEXEC);
        if (memfd < 0) {
                perror("memfd_create");
                abort();
        }
        return 0;
}

static void load_input(const uint8_t *data, size_t size) {
        size_t done = 0;

        if (ftruncate(memfd, 0) < 0 || ftruncate(memfd, (off_t) size) < 0)
                abort();
        while (done < size) {
                ssize_t k = pwrite(memfd, data + done, size - done, (off_t) done);
                if (k <= 0)
                        abort();
                done += (size_t) k;
        }
}

static void check_partitions(const DissectedImage *m) {
        FUZZ_ASSERT(m->kind == DISSECT_GPT || m->kind == DISSECT_FILESYSTEM, "kind %d", (int) m->kind);
        FUZZ_ASSERT(m->partitions[PARTITION_ROOT].found || m->partitions[PARTITION_USR].found,
                    "dissect succeeded without a root or usr partition");
        for (int d = 0; d < _PARTITION_DESIGNATOR_MAX; d++) {
                const DissectedPartition *p = &m->partitions[d];

                if (!p->found)
                        continue;
                FUZZ_ASSERT(!p->no_auto, "designator %d: found but no-auto", d);
                FUZZ_ASSERT(p->size > 0 && p->offset <= m->size && p->size <= m->size - p->offset,
                            "designator %d: [%" PRIu64 ", +%" PRIu64 ") outside image of %" PRIu64 " bytes",
                            d, p->offset, p->size, m->size);
                if (d == PARTITION_ROOT || d == PARTITION_USR)
                        FUZZ_ASSERT(p->fstype, "designator %d: no fstype", d);
                if (p->label)
                        FUZZ_ASSERT(!string_has_cc(p->label) && utf8_is_valid(p->label), "bad label");
                if (m->kind == DISSECT_GPT && d != PARTITION_ROOT && d != PARTITION_USR) {
                        /* verity/sig partitions belong to the data partition's architecture */
                        PartitionDesignator data = (d == PARTITION_ROOT_VERITY || d == PARTITION_ROOT_VERITY_SIG)
                                                           ? PARTITION_ROOT : PARTITION_USR;
                        FUZZ_ASSERT(m->partitions[data].found && p->architecture && m->partitions[data].architecture &&
                                    streq(p->architecture, m->partitions[data].architecture),
                                    "designator %d: without its data partition or of another architecture", d);
                }
        }
        /* No two selected partitions share a byte. */
        for (int a = 0; a < _PARTITION_DESIGNATOR_MAX; a++)
                for (int b = a + 1; b < _PARTITION_DESIGNATOR_MAX; b++) {
                        const DissectedPartition *x = &m->partitions[a], *y = &m->partitions[b];
                        if (!x->found || !y->found)
                                continue;
                        FUZZ_ASSERT(x->offset + x->size <= y->offset || y->offset + y->size <= x->offset,
                                    "designators %d and %d overlap", a, b);
                }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char * const fstypes[] = { "erofs", "squashfs", "ext4", "btrfs", "xfs", "vfat" };
        _cleanup_(dissected_image_freep) DissectedImage *m = NULL;
        int r;

        if (size > 16 * 1024 * 1024)
                return -1;
        load_input(data, size);

        sx_clear_error();
        r = dissect_image_fd(memfd, "fuzz.raw", "fuzz", &m);
        fuzz_check_error_message();
        if (r >= 0) {
                _cleanup_(verity_settings_freep) VeritySettings *s = NULL;

                FUZZ_ASSERT(m, "success without an image");
                check_partitions(m);
                /* image_path NULL: no sidecars; the signature partition and xattrs of the memfd only. */
                sx_clear_error();
                r = verity_settings_load(m, NULL, false, &s);
                fuzz_check_error_message();
                if (r >= 0)
                        for (PartitionDesignator d = PARTITION_ROOT; d <= PARTITION_USR; d++) {
                                const VerityData *v = verity_settings_get(s, d);
                                (void) verity_protection(m, s, d);
                                FUZZ_ASSERT(!v->root_hash || (v->root_hash_size >= 16 && v->root_hash_size <= 64),
                                            "root hash of %zu bytes", v->root_hash_size);
                        }
        } else
                FUZZ_ASSERT(!m, "failure left an image behind");

        /* The superblock size readers directly, for every type, whatever libblkid thinks of the bytes:
         * the whole input, and a range that starts and ends inside it. */
        for (size_t i = 0; i < ELEMENTSOF(fstypes); i++) {
                uint64_t need = 0;

                sx_clear_error();
                r = superblock_fs_size("fuzz.raw", 0, memfd, 0, size, fstypes[i], &need);
                fuzz_check_error_message();
                FUZZ_ASSERT(r < 0 || r == 0, "superblock_fs_size returned %d", r);
                if (size >= 1024) {
                        sx_clear_error();
                        (void) superblock_fs_size("fuzz.raw", 2, memfd, 512, size - 1024, fstypes[i], &need);
                        fuzz_check_error_message();
                }
        }
        return 0;
}
