/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Independent jobs on a few threads. Much of a merge is the kernel's work on independent images
 * (setting up a file system, looking up paths in it, tearing it down again, each teardown waiting
 * for an RCU grace period): with more than one CPU, several at once. */

#include <stddef.h>

#define PARALLEL_THREADS_MAX 4

/* Runs fn(i, userdata) for every i < n, on up to PARALLEL_THREADS_MAX threads, the calling one
 * included; returns when all have run. Sequential for n < 2, on one CPU, and while fault injection
 * is armed (its step numbers must name the same step in every run). A thread that cannot be
 * started leaves its share to the others. fn must be safe to run concurrently for distinct i, and
 * must not fork or change process-wide state (credentials, cwd, namespaces). */
void parallel_for(size_t n, void (*fn)(size_t i, void *userdata), void *userdata);
