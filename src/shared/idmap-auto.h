/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* --idmap=auto: every layer gets the mapping that makes it look as it was built, decided by one
 * stat of the layer's root directory, not by reading the image:
 *   root directory owned by uid 0                        identity
 *   owned by a uid of the foreign range (0x7FFE0000…)    foreign (on-disk base+N appears as N)
 *   owned by a regular user's uid U ≥ 1000 (an image     u:U:0:65536,g:G:0:65536 (G the root
 *   an unprivileged builder made: mkosi's directory      directory's gid): the builder's ids
 *   outputs, mksquashfs/mkfs.erofs run as a user)        appear as root's and those after it
 *   owned by a system user (1…999) or nobody             identity (nothing is guessed)
 * unless the administrator wrote NAME.idmap beside the image (NAME.raw → NAME.idmap, a directory
 * NAME → NAME.idmap): one --idmap specification (identity, foreign, auto, b|u|g:FROM:TO:COUNT
 * entries), honoured only if root alone can change it (path_is_root_controlled()). An image never
 * chooses its own mapping. Identical mappings share one user namespace (IdmapCache). */

#include "idmap.h"

#define IDMAP_AUTO_BUILDER_UID_MIN UINT32_C(1000)       /* the first regular user, as in login.defs */
#define IDMAP_AUTO_BUILDER_RANGE UINT32_C(0x10000)      /* the builder's ids: 65536 from its uid */
#define IDMAP_AUTO_OVERRIDE_SUFFIX ".idmap"
#define IDMAP_AUTO_OVERRIDE_MAX 4096                    /* largest override file read */

typedef enum IdmapAutoOwner {
        IDMAP_AUTO_OWNER_ROOT,          /* uid 0 */
        IDMAP_AUTO_OWNER_FOREIGN,       /* a uid of the foreign range */
        IDMAP_AUTO_OWNER_BUILDER,       /* a regular user's uid (≥ 1000, not nobody, not foreign) */
        IDMAP_AUTO_OWNER_OTHER,         /* a system user's uid, or nobody: left as it is */
} IdmapAutoOwner;

/* Which kind of owner a layer's root directory uid is. */
IdmapAutoOwner idmap_auto_classify(uint32_t uid);
const char *idmap_auto_owner_to_string(IdmapAutoOwner o);

/* The mapping for a layer whose root directory belongs to uid:gid (see the table above). */
int idmap_auto_for_owner(uint32_t uid, uint32_t gid, Idmap **ret);

/* The administrator's override beside image_path: 1 and *ret if there is one, 0 if not. An
 * override that someone other than root can change, that is not a regular file, or whose
 * specification is bad or names a user namespace (userns:, pid:) or user: is an error naming it. */
int idmap_auto_read_override(const char *image_path, Idmap **ret);

/* Distinct mappings, each with its user namespace made once. */
typedef struct IdmapCache {
        Idmap **v;
        size_t n;
} IdmapCache;

void idmap_cache_done(IdmapCache *c);
/* Takes m; *ret is m or an equal mapping already in the cache (owned by the cache). */
int idmap_cache_add(IdmapCache *c, Idmap *m, Idmap **ret);

/* The mapping of one layer under --idmap=auto: the override beside image_path, else decided by the
 * owner of layer_fd (the layer's detached mount, not yet idmapped). *ret is owned by cache. */
int idmap_auto_resolve(const char *image_path, int layer_fd, IdmapCache *cache, Idmap **ret);
