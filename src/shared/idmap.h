/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The --idmap grammar and user namespaces that carry a mapping for idmapped mounts.
 *
 * An idmapped mount with user namespace U shows a file whose on-disk id is X as the id that U maps
 * its namespace-internal id X to. So a mapping entry "FROM TO COUNT" is written as the uid_map line
 * "FROM TO COUNT" of a fresh user namespace: on-disk FROM appears as TO. Ids not covered appear as
 * the overflow id (IDMAP_NOBODY_ID). */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define IDMAP_EXTENTS_MAX 340                   /* the kernel's limit for uid_map/gid_map lines */
#define IDMAP_ID_MAX UINT32_C(4294967294)       /* (uid_t) -1 is never a valid id */
#define IDMAP_NOBODY_ID UINT32_C(65534)         /* nobody, and the kernel's default overflow id */
/* systemd's foreign range: 65536 ids from 0x7FFE0000, which `foreign` maps to 0…65535. */
#define FOREIGN_UID_BASE UINT32_C(0x7FFE0000)
#define FOREIGN_UID_RANGE UINT32_C(0x10000)

typedef enum IdmapKind {
        IDMAP_IDENTITY,         /* no idmapping at all */
        IDMAP_MAP,              /* explicit extents (b:/u:/g:, foreign, user:NAME) */
        IDMAP_USERNS,           /* an existing user namespace: userns:PATH or pid:PID */
        IDMAP_AUTO,             /* "auto": decided per layer (idmap-auto.h), never mapped as such */
} IdmapKind;

typedef struct IdmapExtent {
        uint32_t from, to, count;
} IdmapExtent;

typedef struct Idmap {
        IdmapKind kind;
        char *spec;                     /* as given (idmap_from_extents(): u:…,g:…), recorded in merge metadata */
        IdmapExtent uid[IDMAP_EXTENTS_MAX], gid[IDMAP_EXTENTS_MAX];
        size_t n_uid, n_gid;
        char *userns_path;              /* IDMAP_USERNS: the namespace file */
        pid_t pid;                      /* IDMAP_USERNS via pid:PID, else 0 */
        int userns_fd;                  /* cached namespace fd, -EBADF until idmap_userns_fd() */
        bool untrusted;                 /* user:NAME: root ids stay unmapped by construction */
} Idmap;

Idmap *idmap_free(Idmap *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Idmap *, idmap_free);

/* Parse SPEC (NULL or "" = identity; "auto", alone, gives IDMAP_AUTO). Names user:NAME are resolved with getpwnam(). Errors: a
 * negative errno (-EINVAL, -ERANGE, -E2BIG, -EPERM, -ESRCH...) with a message naming --idmap and
 * quoting the offending entry. */
int idmap_parse(const char *spec, Idmap **ret);
/* Wrap an open user namespace fd (takes ownership); spec is what status shows, e.g. "pid:123". */
int idmap_from_userns_fd(int fd, const char *spec, Idmap **ret);
/* Build from uid_map-style extents (userns_read_maps(), tests); spec becomes the canonical u:…,g:… form. */
int idmap_from_extents(const IdmapExtent *uid, size_t n_uid, const IdmapExtent *gid, size_t n_gid, Idmap **ret);

/* An id, count or PID as newuidmap and the kernel's uid_map read them: decimal digits only (leading
 * zeros are decimal too, "010" is 10). A sign, whitespace, "0x" or any other character: -EINVAL;
 * above UINT32_MAX: -ERANGE. Records no message; callers name their option. */
int idmap_parse_number(const char *s, uint32_t *ret);

static inline bool idmap_is_identity(const Idmap *m) {
        return !m || m->kind == IDMAP_IDENTITY;
}

static inline bool idmap_is_auto(const Idmap *m) {
        return m && m->kind == IDMAP_AUTO;
}

/* Same kind and the same extents (IDMAP_MAP), or the same namespace (IDMAP_USERNS). */
bool idmap_equal(const Idmap *a, const Idmap *b);

/* A user namespace fd carrying the mapping, cached in m (do not close it). -EBADF for identity,
 * -EINVAL for auto (resolve it per layer first). For
 * IDMAP_MAP a new namespace is created by a short-lived child; for IDMAP_USERNS the given one is
 * opened and checked to be a user namespace other than the initial one. */
int idmap_userns_fd(Idmap *m);

/* Map an on-disk id through the extents (for display and tests); UINT32_MAX if unmapped. */
uint32_t idmap_map_uid(const Idmap *m, uint32_t on_disk);
uint32_t idmap_map_gid(const Idmap *m, uint32_t on_disk);

/* Create a user namespace with these maps; returns its fd. Lives as long as the fd. */
int userns_create(const IdmapExtent *uid, size_t n_uid, const IdmapExtent *gid, size_t n_gid, int *ret_fd);
/* Read the uid/gid maps of a user namespace fd (joins it in a short-lived child). */
int userns_read_maps(int userns_fd, Idmap **ret);
