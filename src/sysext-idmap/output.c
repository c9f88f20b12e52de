/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The CLI's output: list, dissect and status as aligned text tables or JSON. */

#include <json-c/json.h>
#include <time.h>

#include "id128-util.h"
#include "output.h"
#include "table.h"

static void json_print(json_object *o, JsonMode mode) {
        int flags = mode == JSON_PRETTY ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN;

        puts(json_object_to_json_string_ext(o, flags | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static json_object *json_string_or_null(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}


static json_object *verity_json(const Extension *e, PartitionDesignator d) {
        const VerityData *v = e->verity ? verity_settings_get(e->verity, d) : NULL;
        const VerityResult *res = &e->verity_ctx.result[d];
        json_object *o = json_object_new_object();
        _cleanup_free_ char *hash = v && v->root_hash ? verity_hexmem(v->root_hash, v->root_hash_size) : NULL;

        json_object_object_add(o, "protection", json_object_new_string(verity_protection_to_string(e->protection[d])));
        json_object_object_add(o, "rootHash", json_string_or_null(hash));
        json_object_object_add(o, "rootHashSource", json_string_or_null(v ? v->root_hash_source : NULL));
        json_object_object_add(o, "signatureSource", json_string_or_null(v ? v->signature_source : NULL));
        json_object_object_add(o, "signed", json_object_new_boolean(v && v->signed_by_trusted));
        json_object_object_add(o, "signerFingerprint", json_string_or_null(v && v->signed_by_trusted ? v->signer_fingerprint : NULL));
        json_object_object_add(o, "signerSubject", json_string_or_null(v && v->signed_by_trusted ? v->signer_subject : NULL));
        json_object_object_add(o, "checkedBy", json_object_new_string(verity_checked_by_to_string(res->checked_by)));
        return o;
}

/* "signed (kernel, 3f2a…)", "verity (userspace)", "unprotected" */
static char *trust_text(const Extension *e) {
        const VerityResult *v = extension_verity_result(e);
        const char *t = extension_trust_summary(e);
        char fp[20] = "";

        if (e->policy_refusal)
                return strjoin("refused by policy (", e->policy_refusal, ")");
        if (v->is_signed && v->signer_fingerprint)
                snprintf(fp, sizeof(fp), ", %.12s…", v->signer_fingerprint);
        if (v->checked_by == VERITY_CHECKED_NONE)
                return strdup(t);
        return strjoin(t, " (", verity_checked_by_to_string(v->checked_by), fp, ")");
}


/* ---- list ---- */

/* One rule for the text and the JSON: the version in the file name (NAME_VERSION.raw), else the
 * extension's own SYSEXT_VERSION_ID, else none. VERSION_ID is not the extension's version: it names
 * the host OS release the extension is built for. */
static const char *list_version(const ListEntry *e) {
        if (e->image->version)
                return e->image->version;
        if (e->ext && e->ext->release)
                return release_file_get(e->ext->release, "SYSEXT_VERSION_ID");
        return NULL;
}

static json_object *list_entry_json(const ListEntry *e) {
        json_object *o = json_object_new_object();
        const char *reason = e->error ?: (e->ext && !e->ext->compatible ? e->ext->reason : NULL);

        json_object_object_add(o, "name", json_object_new_string(e->image->name));
        json_object_object_add(o, "type", json_object_new_string(image_type_to_string(e->image->type)));
        json_object_object_add(o, "path", json_object_new_string(e->image->path));
        json_object_object_add(o, "version", json_string_or_null(list_version(e)));
        json_object_object_add(o, "masked", json_object_new_boolean(e->image->masked));
        json_object_object_add(o, "compatible", json_object_new_boolean(e->ext && e->ext->compatible));
        json_object_object_add(o, "reason", json_string_or_null(e->image->masked ? "masked" : reason));
        if (e->ext && e->ext->dissected)
                json_object_object_add(o, "kind", json_object_new_string(dissect_kind_to_string(e->ext->dissected->kind)));
        if (e->ext) {
                const VerityResult *v = extension_verity_result(e->ext);
                json_object_object_add(o, "verity", json_object_new_string(extension_trust_summary(e->ext)));
                json_object_object_add(o, "checkedBy", json_object_new_string(verity_checked_by_to_string(v->checked_by)));
                json_object_object_add(o, "signer", json_string_or_null(v->is_signed ? v->signer_fingerprint : NULL));
        }
        json_object_object_add(o, "mtime", json_object_new_uint64(e->image->mtime_usec));
        /* systemd-sysext's list --json: name, type, path (above) and time, µs since the epoch */
        json_object_object_add(o, "time", json_object_new_uint64(e->image->mtime_usec));
        /* what merge leaves out (with the reason above): broken or incompatible, not masked */
        json_object_object_add(o, "skipped", json_object_new_boolean(!e->image->masked && !(e->ext && e->ext->compatible)));
        return o;
}

static char *list_compat(const ListEntry *e) {
        if (e->image->masked)
                return strdup("masked");
        if (!e->ext)
                return strjoin("no (", e->error ?: "failed to open image", ")");
        if (!e->ext->compatible)
                return strjoin("no (", e->ext->reason, ")");
        return strdup("yes");
}

static int list_print_text(const ListEntry *entries, size_t n, bool legend) {
        static const char * const header[] = { "NAME", "TYPE", "PATH", "VERSION", "TRUST", "COMPATIBLE" };
        _cleanup_(table_done) Table t = { .header = header, .n_cols = ELEMENTSOF(header) };
        int r = 0;

        for (size_t i = 0; r >= 0 && i < n; i++)
                r = table_add_row(&t, (char *[]) {
                        strdup(entries[i].image->name),
                        strdup(image_type_to_string(entries[i].image->type)),
                        strdup(entries[i].image->path),
                        strdup(list_version(&entries[i]) ?: "-"),
                        entries[i].ext ? trust_text(entries[i].ext) : strdup("-"),
                        list_compat(&entries[i]),
                });
        if (r >= 0)
                table_print(&t, legend);
        return r;
}

int list_print(const ListEntry *entries, size_t n, const OutputMode *mode) {
        if (mode->json != JSON_OFF) {
                json_object *a = json_object_new_array();
                for (size_t i = 0; i < n; i++)
                        json_object_array_add(a, list_entry_json(&entries[i]));
                json_print(a, mode->json);
                json_object_put(a);
                return 0;
        }
        if (n == 0) {
                printf("No extensions found.\n");
                return 0;
        }
        return list_print_text(entries, n, mode->legend);
}

/* ---- dissect ---- */

static json_object *partition_json(PartitionDesignator d, const DissectedPartition *p) {
        json_object *o = json_object_new_object(), *flags = json_object_new_array();
        char uuid[SD_ID128_UUID_STRING_MAX];

        json_object_object_add(o, "designator", json_object_new_string(partition_designator_to_string(d)));
        json_object_object_add(o, "partno", p->partno > 0 ? json_object_new_int(p->partno) : NULL);
        json_object_object_add(o, "typeUuid",
                               sd_id128_is_null(p->type_uuid) ? NULL : json_object_new_string(id128_to_uuid_string(p->type_uuid, uuid)));
        json_object_object_add(o, "partitionUuid",
                               sd_id128_is_null(p->uuid) ? NULL : json_object_new_string(id128_to_uuid_string(p->uuid, uuid)));
        json_object_object_add(o, "fstype", json_string_or_null(p->fstype));
        json_object_object_add(o, "architecture", json_string_or_null(p->architecture));
        json_object_object_add(o, "label", json_string_or_null(p->label));
        json_object_object_add(o, "offset", json_object_new_uint64(p->offset));
        json_object_object_add(o, "size", json_object_new_uint64(p->size));
        if (p->read_only)
                json_object_array_add(flags, json_object_new_string("read-only"));
        if (p->no_auto)
                json_object_array_add(flags, json_object_new_string("no-auto"));
        if (p->growfs)
                json_object_array_add(flags, json_object_new_string("growfs"));
        json_object_object_add(o, "flags", flags);
        return o;
}

static json_object *dissect_json(const Extension *e, const ImagePolicy *policy) {
        const DissectedImage *m = e->dissected;
        json_object *o = json_object_new_object(), *parts = json_object_new_array(), *rel = NULL;

        json_object_object_add(o, "name", json_object_new_string(e->image->name));
        json_object_object_add(o, "path", json_object_new_string(e->image->path));
        json_object_object_add(o, "type", json_object_new_string(dissect_kind_to_string(m->kind)));
        json_object_object_add(o, "size", json_object_new_uint64(m->size));
        for (PartitionDesignator d = 0; d < _PARTITION_DESIGNATOR_MAX; d++)
                if (m->partitions[d].found)
                        json_object_array_add(parts, partition_json(d, &m->partitions[d]));
        json_object_object_add(o, "partitions", parts);
        if (e->release) {
                rel = json_object_new_object();
                for (char **p = e->release->pairs; p && p[0] && p[1]; p += 2)
                        json_object_object_add(rel, p[0], json_object_new_string(p[1]));
        }
        json_object_object_add(o, "extensionRelease", rel);
        json_object_object_add(o, "extensionReleasePath", json_string_or_null(e->release_path));
        json_object_object_add(o, "compatible", e->release ? json_object_new_boolean(e->compatible) : NULL);
        json_object_object_add(o, "reason", json_string_or_null(e->release && !e->compatible ? e->reason : NULL));
        json_object *v = json_object_new_object();
        for (PartitionDesignator d = PARTITION_ROOT; d <= PARTITION_USR; d++)
                if (m->partitions[d].found || e->protection[d] != VERITY_PROTECTION_ABSENT)
                        json_object_object_add(v, partition_designator_to_string(d), verity_json(e, d));
        json_object_object_add(o, "verity", v);
        _cleanup_free_ char *policy_text = NULL;
        if (image_policy_to_string(policy, true, &policy_text) >= 0)
                json_object_object_add(o, "imagePolicy", json_object_new_string(policy_text));
        json_object_object_add(o, "policyAllowed", json_object_new_boolean(!e->policy_refusal));
        json_object_object_add(o, "policyRefusal", json_string_or_null(e->policy_refusal));
        return o;
}

static int dissect_print_text(const Extension *e, bool legend) {
        const DissectedImage *m = e->dissected;
        static const char * const header[] = { "DESIGNATOR", "PARTNO", "TYPE-UUID", "PARTITION-UUID", "FSTYPE", "ARCH", "SIZE", "FLAGS", "LABEL" };
        _cleanup_(table_done) Table t = { .header = header, .n_cols = ELEMENTSOF(header) };
        char buf[FORMAT_BYTES_MAX];

        printf("      Name: %s\n      Path: %s\n      Type: %s\n      Size: %s\n", e->image->name, e->image->path,
               dissect_kind_to_string(m->kind), format_bytes(buf, sizeof(buf), m->size));
        if (e->release) {
                printf("Ext. Rel.: %s\n", strna(e->release_path));
                for (char **p = e->release->pairs; p && p[0] && p[1]; p += 2)
                        printf("           %s=%s\n", p[0], p[1]);
                printf("Compatible: %s%s%s\n", e->compatible ? "yes" : "no (", e->compatible ? "" : e->reason,
                       e->compatible ? "" : ")");
        } else if (e->policy_refusal)
                printf("Ext. Rel.: (not mounted: refused by the image policy)\n");
        else if (geteuid() != 0)
                printf("Ext. Rel.: (not read: requires root)\n");
        for (PartitionDesignator d = PARTITION_ROOT; d <= PARTITION_USR; d++) {
                const VerityData *v = e->verity ? verity_settings_get(e->verity, d) : NULL;
                if (!m->partitions[d].found)
                        continue;
                _cleanup_free_ char *hash = v && v->root_hash ? verity_hexmem(v->root_hash, v->root_hash_size) : NULL;
                printf("%9s: %s", partition_designator_to_string(d), verity_protection_to_string(e->protection[d]));
                if (hash)
                        printf(", root hash %s from %s", hash, strna(v->root_hash_source));
                if (v && v->signed_by_trusted)
                        printf(", signed by %s (%s)", strna(v->signer_subject), strna(v->signer_fingerprint));
                else if (v && v->signature)
                        printf(", signature from %s not by a trusted certificate", strna(v->signature_source));
                if (e->verity_ctx.result[d].checked_by != VERITY_CHECKED_NONE)
                        printf(", checked by %s", verity_checked_by_to_string(e->verity_ctx.result[d].checked_by));
                putchar('\n');
        }
        printf("   Policy: %s%s\n", e->policy_refusal ? "refused: " : "allowed", strempty(e->policy_refusal));
        putchar('\n');
        for (PartitionDesignator d = 0; d < _PARTITION_DESIGNATOR_MAX; d++) {
                const DissectedPartition *p = &m->partitions[d];
                char u1[SD_ID128_UUID_STRING_MAX], u2[SD_ID128_UUID_STRING_MAX];
                if (!p->found)
                        continue;
                char *partno = NULL;
                (void) asprintf_safe(&partno, "%d", p->partno);
                if (table_add_row(&t, (char *[]) {
                                strdup(partition_designator_to_string(d)),
                                partno,
                                strdup(sd_id128_is_null(p->type_uuid) ? "-" : id128_to_uuid_string(p->type_uuid, u1)),
                                strdup(sd_id128_is_null(p->uuid) ? "-" : id128_to_uuid_string(p->uuid, u2)),
                                strdup(p->fstype ?: "-"),
                                strdup(p->architecture ?: "-"),
                                strdup(format_bytes(buf, sizeof(buf), p->size)),
                                strjoin(p->read_only ? "ro " : "", p->no_auto ? "no-auto " : "", p->growfs ? "growfs" : ""),
                                strdup(p->label ?: "-"),
                        }) < 0)
                        return -ENOMEM;
        }
        table_print(&t, legend);
        return 0;
}

int dissect_print(const Extension *e, const ImagePolicy *policy, bool validate, const OutputMode *mode) {
        if (mode->json != JSON_OFF) {
                json_object *j = dissect_json(e, policy);
                json_print(j, mode->json);
                json_object_put(j);
                return 0;
        }
        if (validate) {
                printf("%s: %s, allowed by the image policy\n", e->image->path, extension_trust_summary(e));
                return 0;
        }
        return dissect_print_text(e, mode->legend);
}

/* ---- status ---- */

static char *format_timestamp(uint64_t usec) {
        char buf[64];
        time_t t = (time_t) (usec / 1000000ULL);
        struct tm tm;

        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, sizeof(buf), "%a %Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                return strdup("-");
        return strdup(buf);
}

static json_object *status_json(const HierarchyStatus *s) {
        json_object *o = json_object_new_object(), *a = json_object_new_array(), *layers = json_object_new_array();

        json_object_object_add(o, "hierarchy", json_object_new_string(s->hierarchy));
        json_object_object_add(o, "path", json_object_new_string(s->path));
        json_object_object_add(o, "merged", json_object_new_boolean(s->merged));
        STRV_FOREACH(e, s->extensions)
                json_object_array_add(a, json_object_new_string(*e));
        json_object_object_add(o, "extensions", a);
        json_object_object_add(o, "idmap", json_string_or_null(s->idmap ?: (s->merged ? "identity" : NULL)));
        json_object_object_add(o, "since", s->since_usec ? json_object_new_uint64(s->since_usec) : NULL);
        json_object_object_add(o, "device", json_string_or_null(s->device));
        json_object_object_add(o, "mergedBy", s->merged ? json_object_new_string(s->ours ? "sysext-idmap" : "systemd-sysext") : NULL);
        for (size_t i = 0; i < s->n_layers; i++) {
                json_object *l = json_object_new_object();
                json_object_object_add(l, "name", json_string_or_null(s->layers[i].name));
                json_object_object_add(l, "path", json_string_or_null(s->layers[i].path));
                json_object_object_add(l, "type", json_string_or_null(s->layers[i].type));
                json_object_object_add(l, "version", json_string_or_null(s->layers[i].version));
                json_object_object_add(l, "idmap", json_string_or_null(s->layers[i].idmap));
                json_object_object_add(l, "verity", json_string_or_null(s->layers[i].verity));
                json_object_object_add(l, "checkedBy", json_string_or_null(s->layers[i].checked_by));
                json_object_object_add(l, "rootHash", json_string_or_null(s->layers[i].root_hash));
                json_object_object_add(l, "signer", json_string_or_null(s->layers[i].signer));
                json_object_array_add(layers, l);
        }
        json_object_object_add(o, "layers", layers);
        json_object *skipped = json_object_new_array();
        for (size_t i = 0; i < s->n_skipped; i++) {
                json_object *k = json_object_new_object();
                json_object_object_add(k, "name", json_string_or_null(s->skipped[i].name));
                json_object_object_add(k, "path", json_string_or_null(s->skipped[i].path));
                json_object_object_add(k, "reason", json_string_or_null(s->skipped[i].reason));
                json_object_array_add(skipped, k);
        }
        json_object_object_add(o, "skipped", skipped);
        return o;
}

/* Below the table: the discovered images the merges left out, once each (every hierarchy of a
 * merge records the same ones). */
static void status_print_skipped(const HierarchyStatus *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (s[i].n_skipped == 0)
                        continue;
                for (size_t k = 0; k < s[i].n_skipped; k++)
                        printf("Skipped: %s (%s)\n", strna(s[i].skipped[k].name), strna(s[i].skipped[k].reason));
                return;
        }
}

int status_print(const HierarchyStatus *s, size_t n, const OutputMode *mode) {
        static const char * const header[] = { "HIERARCHY", "EXTENSIONS", "IDMAP", "SINCE" };
        _cleanup_(table_done) Table t = { .header = header, .n_cols = ELEMENTSOF(header) };
        int r = 0;

        if (mode->json != JSON_OFF) {
                json_object *a = json_object_new_array();
                for (size_t i = 0; i < n; i++)
                        json_object_array_add(a, status_json(&s[i]));
                json_print(a, mode->json);
                json_object_put(a);
                return 0;
        }
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = table_add_row(&t, (char *[]) {
                        strdup(s[i].hierarchy),
                        s[i].merged ? strv_join(s[i].extensions, ", ") : strdup("none"),
                        strdup(s[i].merged ? (s[i].idmap ?: "identity") : "-"),
                        s[i].merged ? format_timestamp(s[i].since_usec) : strdup("-"),
                });
        if (r >= 0) {
                table_print(&t, mode->legend);
                status_print_skipped(s, n);
        }
        return r;
}
