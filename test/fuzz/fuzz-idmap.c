/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The --idmap grammar (also what the PAM module builds from user names). Parsing only: no user
 * namespace is ever created (idmap_userns_fd() is not called). */

#include "idmap.h"
#include "fuzz.h"

static bool extents_ok(const IdmapExtent *v, size_t n) {
        if (n > IDMAP_EXTENTS_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (v[i].count == 0 || (uint64_t) v[i].from + v[i].count > UINT32_MAX ||
                    (uint64_t) v[i].to + v[i].count > UINT32_MAX)
                        return false;
                for (size_t j = 0; j < i; j++) {
                        bool in = (uint64_t) v[i].from < (uint64_t) v[j].from + v[j].count &&
                                  (uint64_t) v[j].from < (uint64_t) v[i].from + v[i].count;
                        bool out = (uint64_t) v[i].to < (uint64_t) v[j].to + v[j].count &&
                                   (uint64_t) v[j].to < (uint64_t) v[i].to + v[i].count;
                        if (in || out)
                                return false;
                }
        }
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(idmap_freep) Idmap *m = NULL;
        _cleanup_free_ char *spec = NULL;
        int r;

        if (size > 64 * 1024)
                return -1;
        spec = fuzz_strndup(data, size);

        sx_clear_error();
        r = idmap_parse(spec, &m);
        fuzz_check_error_message();
        if (r < 0)
                return 0;

        FUZZ_ASSERT(m && m->spec, "success without a spec");
        FUZZ_ASSERT(m->userns_fd < 0, "parsing opened a namespace");
        FUZZ_ASSERT(fuzz_text_is_clean(m->spec), "spec with control characters");
        switch (m->kind) {
        case IDMAP_IDENTITY:
                FUZZ_ASSERT(m->n_uid == 0 && m->n_gid == 0, "identity with extents");
                break;
        case IDMAP_MAP:
                FUZZ_ASSERT(m->n_uid > 0 && m->n_gid > 0, "map without uid or gid extents");
                FUZZ_ASSERT(extents_ok(m->uid, m->n_uid) && extents_ok(m->gid, m->n_gid), "bad extents for '%s'", spec);
                /* numbers are decimal digits only: no sign, blank or 0x form gets through */
                if (!strstr(spec, "user:"))
                        FUZZ_ASSERT(strspn(spec, "bug:,0123456789foreign") == strlen(spec), "non-decimal number in '%s'", spec);
                /* user:NAME alone never maps anything to root (combined with explicit extents, root
                 * asked for whatever those say) */
                if (m->untrusted && startswith(spec, "user:") && !strchr(spec, ','))
                        for (size_t i = 0; i < m->n_uid; i++)
                                FUZZ_ASSERT(m->uid[i].to != 0, "untrusted map reaches uid 0");
                /* the mapping function agrees with the extents */
                for (size_t i = 0; i < m->n_uid; i++) {
                        FUZZ_ASSERT(idmap_map_uid(m, m->uid[i].from) == m->uid[i].to, "map_uid");
                        FUZZ_ASSERT(idmap_map_uid(m, m->uid[i].from + m->uid[i].count - 1) ==
                                    m->uid[i].to + m->uid[i].count - 1, "map_uid end");
                }
                for (size_t i = 0; i < m->n_gid; i++)
                        FUZZ_ASSERT(idmap_map_gid(m, m->gid[i].from) == m->gid[i].to, "map_gid");
                break;
        case IDMAP_AUTO:
                /* decided per layer later: only the word itself, alone, gets here */
                FUZZ_ASSERT(streq(spec, "auto") && streq(m->spec, "auto") && m->n_uid == 0 && m->n_gid == 0,
                            "auto from '%s'", spec);
                break;
        case IDMAP_USERNS:
                FUZZ_ASSERT(m->userns_path && m->userns_path[0] == '/', "userns without an absolute path");
                FUZZ_ASSERT(m->n_uid == 0 && m->n_gid == 0, "userns with extents");
                break;
        default:
                FUZZ_ASSERT(false, "kind %d", (int) m->kind);
        }
        return 0;
}
