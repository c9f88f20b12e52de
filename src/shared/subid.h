/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* /etc/subuid and /etc/subgid: the subordinate id ranges an ordinary user may map into its user
 * namespaces (the files newuidmap/newgidmap of shadow's uidmap read). Lines are NAME:START:COUNT or
 * UID:START:COUNT; empty lines and lines starting with '#' are skipped, as are malformed ones (a
 * missing field, a non-decimal number, COUNT 0, a range beyond the last valid id), like shadow. */

#include <stdint.h>
#include <sys/types.h>

#include "util.h"

typedef struct SubidRange {
        uint32_t start, count;
} SubidRange;

/* The ranges of text that belong to the user (name may be NULL: numeric lines only). */
int subid_parse(const char *text, const char *name, uid_t uid, SubidRange **ret, size_t *ret_n);

/* Load root + file ("etc/subuid", "etc/subgid"; root NULL = "/"). A file that does not exist gives
 * no ranges; one that someone other than root could change (the file or a directory above it not
 * root's, or writable by group or others) is ignored: no ranges, *ret_ignored (may be NULL) says
 * why. The user's name is looked up with getpwuid_r(). 0 or a negative errno. */
int subid_load(const char *root, const char *file, uid_t uid, SubidRange **ret, size_t *ret_n, char **ret_ignored);

/* The user whose range in root + file (as subid_load() reads it) holds id: 1 and *ret_owner, or 0
 * (none, or the file is missing or not root's alone). The first matching line wins. */
int subid_owner(const char *root, const char *file, uid_t id, uid_t *ret_owner);
