/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Versioned directories (systemd v256 "vpick", systemd.v(7)), the layout systemd-sysupdate writes:
 * NAME.raw.v/ holds NAME_VERSION[_ARCH][+LEFT[-DONE]].raw files, NAME.v/ the same as .raw files or
 * as directories without suffix. The image is NAME; the pick is the best entry for this machine.
 * Pure string logic here: image.c opens, lists and stats. */

#include <stdbool.h>

#include "util.h"

#define VPICK_DIR_SUFFIX ".v"
#define VPICK_RAW_SUFFIX ".raw"
#define VPICK_NO_TRIES UINT_MAX

typedef struct VpickCandidate {
        char *version;                  /* the VERSION part, never empty */
        unsigned arch_rank;             /* 0 native, 1 secondary (x86 on x86-64), 2 no architecture given */
        unsigned tries_left, tries_done; /* VPICK_NO_TRIES: no "+LEFT[-DONE]" counter */
        bool dir;                       /* a directory variant (no suffix) */
} VpickCandidate;

void vpick_candidate_done(VpickCandidate *c);

/* What a .v directory's name asks for: "foo.raw.v" → "foo", files only; "foo.v" → "foo", files
 * (.raw) or directories. -EINVAL if the name does not end in .v or leaves no valid image name. */
int vpick_dir_pattern(const char *dirname, char **ret_basename, bool *ret_raw_only);

/* Parse one entry of a .v directory: is_dir says what the entry is. 1 and *ret filled: a candidate
 * for basename on this machine; 0: not one (another name, wrong type or suffix, an architecture that
 * is not this machine's, an invalid version). native: the machine's architecture as systemd names it
 * (native_architecture()). */
int vpick_parse(const char *filename, bool is_dir, const char *basename, bool raw_only, const char *native,
                VpickCandidate *ret);

/* >0 if a is the better pick, <0 if b is, as systemd orders them: an entry with tries left (or no
 * counter) before one at +0, newer version, native before secondary architecture, more tries left,
 * fewer tries done, then the file names. */
int vpick_compare(const VpickCandidate *a, const char *a_name, const VpickCandidate *b, const char *b_name);

/* The secondary architecture systemd accepts next to native (x86 for x86-64, arm for arm64, …) or NULL. */
const char *vpick_secondary_architecture(const char *native);
