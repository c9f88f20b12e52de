/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Benchmark driver: userspace verity check of DATA against HASH (veritysetup format output) through
 * the library's code path (loop devices + libcryptsetup). Prints the elapsed seconds on stdout.
 *   bench-verity DATA HASH ROOTHASH_HEX */

#include <time.h>

#include "verity.h"

int main(int argc, char *argv[]) {
        _cleanup_close_ int data_fd = -EBADF, hash_fd = -EBADF;
        uint8_t hash[64];
        size_t n = 0;
        struct stat ds, hs;
        uint64_t t0;
        int r;

        if (argc != 4) {
                fprintf(stderr, "usage: %s DATA HASH ROOTHASH\n", argv[0]);
                return 2;
        }
        for (const char *p = argv[3]; p[0] && p[1] && n < sizeof(hash); p += 2)
                if (sscanf(p, "%2hhx", &hash[n++]) != 1)
                        return 2;
        data_fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        hash_fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        if (data_fd < 0 || hash_fd < 0 || fstat(data_fd, &ds) < 0 || fstat(hash_fd, &hs) < 0) {
                perror("open");
                return 1;
        }
        t0 = now_usec(CLOCK_MONOTONIC);
        r = verity_check_userspace(argv[1], data_fd, 0, (uint64_t) ds.st_size, hash_fd, 0, (uint64_t) hs.st_size, hash, n);
        if (r < 0) {
                fprintf(stderr, "%s\n", strna(sx_last_error()));
                return 1;
        }
        printf("%.3f\n", (double) (now_usec(CLOCK_MONOTONIC) - t0) / 1e6);
        return 0;
}
