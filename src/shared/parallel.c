/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <pthread.h>
#include <unistd.h>

#include "parallel.h"
#include "test-hooks.h"

typedef struct Work {
        size_t n;
        size_t next;            /* the next i to take, atomically */
        void (*fn)(size_t i, void *userdata);
        void *userdata;
} Work;

static void *work_run(void *p) {
        Work *w = p;

        for (;;) {
                size_t i = __atomic_fetch_add(&w->next, 1, __ATOMIC_RELAXED);

                if (i >= w->n)
                        return NULL;
                w->fn(i, w->userdata);
        }
}

void parallel_for(size_t n, void (*fn)(size_t i, void *userdata), void *userdata) {
        Work w = { .n = n, .fn = fn, .userdata = userdata };
        pthread_t threads[PARALLEL_THREADS_MAX - 1];
        size_t n_threads = 0, want = 0;
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);

        if (n >= 2 && cpus > 1 && !test_hooks_faults_armed()) {
                want = (cpus < PARALLEL_THREADS_MAX ? (size_t) cpus : PARALLEL_THREADS_MAX) - 1;
                if (want > n - 1)
                        want = n - 1;
        }
        for (size_t i = 0; i < want; i++) {
                if (pthread_create(&threads[n_threads], NULL, work_run, &w) != 0)
                        break;
                n_threads++;
        }
        (void) work_run(&w);
        for (size_t i = 0; i < n_threads; i++)
                (void) pthread_join(threads[i], NULL);
}
