/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <time.h>

#include "dissect.h"
#include "extension.h"
#include "idmap.h"
#include "image.h"
#include "merge.h"
#include "run.h"
#include "test-hooks.h"
#include "test-hooks-env.h"

typedef enum JsonMode { JSON_OFF, JSON_SHORT, JSON_PRETTY } JsonMode;

static const char *arg_root = NULL;
static JsonMode arg_json = JSON_OFF;
static bool arg_force = false;
static bool arg_no_reload = false;
static bool arg_legend = true;
static Idmap *arg_idmap = NULL;
static pid_t arg_namespace_of = 0;
static ImagePolicy *arg_image_policy = NULL;
static VerityMode arg_verity = VERITY_MODE_AUTO;
static bool arg_validate = false;
static ImageArg *arg_images = NULL;
static size_t arg_n_images = 0;
static bool arg_discover = false;
static PrivateUsersSpec arg_private_users = { .mode = PRIVATE_USERS_NO };
static const char *arg_user = NULL;

/* One line, whatever bytes a file name or an image brought along. */
static void log_error_last(int r) {
        const char *m = sx_last_error();
        _cleanup_free_ char *e = cescape(m ?: strerror(r < 0 ? -r : r));

        fprintf(stderr, "%s\n", e ?: "out of memory");
}

static void print_notice(const char *m, void *userdata) {
        _cleanup_free_ char *e = cescape(m);

        fprintf(stderr, "%s\n", e ?: m);
}

static void json_print(json_object *o) {
        int flags = arg_json == JSON_PRETTY ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN;

        puts(json_object_to_json_string_ext(o, flags | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static json_object *json_string_or_null(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

/* A text table: a header and rows of owned strings, printed with aligned columns. */
typedef struct Table {
        const char * const *header;
        size_t n_cols, n_rows;
        char **cells;           /* n_rows × n_cols */
} Table;

static void table_done(Table *t) {
        for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
                free(t->cells[i]);
        free(t->cells);
        t->cells = NULL;
        t->n_rows = 0;
}

/* Takes over the n_cols strings of row; a NULL among them is a failed allocation. */
static int table_add_row(Table *t, char **row) {
        char **c = NULL;
        size_t i;

        for (i = 0; i < t->n_cols && row[i]; i++)
                ;
        if (i == t->n_cols)
                c = reallocarray(t->cells, (t->n_rows + 1) * t->n_cols, sizeof(char *));
        if (!c) {
                for (i = 0; i < t->n_cols; i++)
                        free(row[i]);
                return -ENOMEM;
        }
        memcpy(c + t->n_rows * t->n_cols, row, t->n_cols * sizeof(char *));
        t->cells = c;
        t->n_rows++;
        return 0;
}

/* Columns are counted in characters (code points), not bytes: cells carry "…". */
static size_t text_width(const char *s) {
        size_t n = 0;

        for (; *s; s++)
                n += ((unsigned char) *s & 0xC0) != 0x80;
        return n;
}

static void table_print(const Table *t) {
        size_t w[16] = {};

        assert(t->n_cols <= ELEMENTSOF(w));
        for (size_t c = 0; c < t->n_cols; c++) {
                w[c] = text_width(t->header[c]);
                for (size_t r = 0; r < t->n_rows; r++)
                        if (text_width(t->cells[r * t->n_cols + c]) > w[c])
                                w[c] = text_width(t->cells[r * t->n_cols + c]);
        }
        for (size_t r = arg_legend ? 0 : 1; r <= t->n_rows; r++)
                for (size_t c = 0; c < t->n_cols; c++) {
                        const char *cell = r == 0 ? t->header[c] : t->cells[(r - 1) * t->n_cols + c];

                        if (c + 1 == t->n_cols)
                                printf("%s\n", cell);
                        else
                                printf("%s%*s ", cell, (int) (w[c] - text_width(cell)), "");
                }
}

/* The environment is the caller's: read here, in the CLI, never in the library (test-hooks.h). */
static int cli_hierarchies(char ***ret) {
        return hierarchies_parse(secure_getenv("SYSTEMD_SYSEXT_HIERARCHIES"), "SYSTEMD_SYSEXT_HIERARCHIES", ret);
}

/* images: the verb's arguments (NULL = discover); the context borrows the strings. */
static int make_context(MergeContext *c, char **images) {
        ImageSource *sources = NULL;
        size_t n = strv_length(images);
        int r;

        r = cli_hierarchies(&c->hierarchies);
        if (r < 0)
                return r;
        if (n > 0) {
                sources = calloc(n, sizeof(ImageSource));
                if (!sources)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++)
                        sources[i] = (ImageSource) { .path = images[i] };
        }
        c->root = arg_root;
        c->idmap = arg_idmap;
        c->images = sources;
        c->n_images = n;
        c->force = arg_force;
        c->no_reload = arg_no_reload;
        c->namespace_of = arg_namespace_of;
        c->policy = arg_image_policy;
        c->verity_mode = arg_verity;
        c->notice = print_notice;
        return 0;
}

static void context_done(MergeContext *c) {
        strv_free(c->hierarchies);
        free((ImageSource *) c->images);
}

static ExtensionOptions extension_options(const HostInfo *host, bool mount) {
        return (ExtensionOptions) {
                .host = host,
                .force = arg_force,
                .mount = mount,
                .policy = arg_image_policy,
                .verity_mode = arg_verity,
                .verity_root = arg_root,
        };
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

typedef struct ListEntry {
        Image *image;
        Extension *ext;
        char *error;
} ListEntry;

static json_object *list_entry_json(const ListEntry *e) {
        json_object *o = json_object_new_object();
        const char *reason = e->error ?: (e->ext && !e->ext->compatible ? e->ext->reason : NULL);

        json_object_object_add(o, "name", json_object_new_string(e->image->name));
        json_object_object_add(o, "type", json_object_new_string(image_type_to_string(e->image->type)));
        json_object_object_add(o, "path", json_object_new_string(e->image->path));
        json_object_object_add(o, "version", json_string_or_null(e->image->version));
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
        return o;
}

static char *list_version(const ListEntry *e) {
        const char *v = e->image->version;

        if (!v && e->ext && e->ext->release)
                v = release_file_get(e->ext->release, "SYSEXT_VERSION_ID") ?: release_file_get(e->ext->release, "VERSION_ID");
        return strdup(v ?: "-");
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

static int verb_list(int argc, char **argv) {
        _cleanup_(host_info_done) HostInfo host = {};
        Image **images = NULL;
        ListEntry *entries = NULL;
        size_t n = 0;
        int r;

        r = host_info_load(arg_root, &host);
        if (r < 0)
                return r;
        r = image_discover(arg_root, &images, &n);
        if (r < 0)
                return r;
        entries = calloc(n + 1, sizeof(ListEntry));
        if (!entries) {
                image_array_free(images, n);
                return -ENOMEM;
        }
        ExtensionOptions o = extension_options(&host, true);
        for (size_t i = 0; i < n; i++) {
                entries[i].image = images[i];
                if (images[i]->masked)
                        continue;
                /* extension_open takes ownership; list keeps its own copy of the image */
                Image *copy = image_dup(images[i]);
                sx_clear_error();
                if (!copy || extension_open(copy, &o, &entries[i].ext) < 0)
                        entries[i].error = strdup(sx_last_error() ?: "failed to open image");
        }

        if (arg_json != JSON_OFF) {
                json_object *a = json_object_new_array();
                for (size_t i = 0; i < n; i++)
                        json_object_array_add(a, list_entry_json(&entries[i]));
                json_print(a);
                json_object_put(a);
        } else if (n == 0)
                printf("No extensions found.\n");
        else {
                static const char * const header[] = { "NAME", "TYPE", "PATH", "VERSION", "TRUST", "COMPATIBLE" };
                _cleanup_(table_done) Table t = { .header = header, .n_cols = ELEMENTSOF(header) };
                for (size_t i = 0; r >= 0 && i < n; i++)
                        r = table_add_row(&t, (char *[]) {
                                strdup(entries[i].image->name),
                                strdup(image_type_to_string(entries[i].image->type)),
                                strdup(entries[i].image->path),
                                list_version(&entries[i]),
                                entries[i].ext ? trust_text(entries[i].ext) : strdup("-"),
                                list_compat(&entries[i]),
                        });
                if (r >= 0)
                        table_print(&t);
        }
        for (size_t i = 0; i < n; i++) {
                extension_free(entries[i].ext);
                free(entries[i].error);
        }
        free(entries);
        image_array_free(images, n);
        return r;
}

/* ---- dissect ---- */

static json_object *partition_json(PartitionDesignator d, const DissectedPartition *p) {
        json_object *o = json_object_new_object(), *flags = json_object_new_array();
        char uuid[SD_ID128_UUID_STRING_MAX];

        json_object_object_add(o, "designator", json_object_new_string(partition_designator_to_string(d)));
        json_object_object_add(o, "partno", p->partno > 0 ? json_object_new_int(p->partno) : NULL);
        json_object_object_add(o, "typeUuid",
                               sd_id128_is_null(p->type_uuid) ? NULL : json_object_new_string(sd_id128_to_uuid_string(p->type_uuid, uuid)));
        json_object_object_add(o, "partitionUuid",
                               sd_id128_is_null(p->uuid) ? NULL : json_object_new_string(sd_id128_to_uuid_string(p->uuid, uuid)));
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

static json_object *dissect_json(const Extension *e) {
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
        _cleanup_free_ char *policy = NULL;
        if (image_policy_to_string(arg_image_policy, true, &policy) >= 0)
                json_object_object_add(o, "imagePolicy", json_object_new_string(policy));
        json_object_object_add(o, "policyAllowed", json_object_new_boolean(!e->policy_refusal));
        json_object_object_add(o, "policyRefusal", json_string_or_null(e->policy_refusal));
        return o;
}

static int dissect_print_text(const Extension *e) {
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
        else if (geteuid() != 0 || arg_validate)
                printf("Ext. Rel.: (not read: %s)\n", arg_validate ? "--validate does not mount" : "requires root");
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
                                strdup(sd_id128_is_null(p->type_uuid) ? "-" : sd_id128_to_uuid_string(p->type_uuid, u1)),
                                strdup(sd_id128_is_null(p->uuid) ? "-" : sd_id128_to_uuid_string(p->uuid, u2)),
                                strdup(p->fstype ?: "-"),
                                strdup(p->architecture ?: "-"),
                                strdup(format_bytes(buf, sizeof(buf), p->size)),
                                strjoin(p->read_only ? "ro " : "", p->no_auto ? "no-auto " : "", p->growfs ? "growfs" : ""),
                                strdup(p->label ?: "-"),
                        }) < 0)
                        return -ENOMEM;
        }
        table_print(&t);
        return 0;
}

static int verb_dissect(int argc, char **argv) {
        _cleanup_(host_info_done) HostInfo host = {};
        _cleanup_(extension_freep) Extension *e = NULL;
        Image *img = NULL;
        int r;

        r = image_from_path(argv[1], &img);
        if (r < 0)
                return r;
        /* Without a host release (odd --root) we can still show the image, just not judge it. */
        if (host_info_load(arg_root, &host) < 0) {
                image_free(img);
                return -ENOENT;
        }
        ExtensionOptions o = extension_options(&host, geteuid() == 0 && !arg_validate);
        o.report_policy = !arg_validate;
        r = extension_open(img, &o, &e);
        if (r < 0)
                return r;
        if (arg_validate && arg_json == JSON_OFF) {
                printf("%s: %s, allowed by the image policy\n", e->image->path, extension_trust_summary(e));
                return 0;
        }
        if (arg_json != JSON_OFF) {
                json_object *j = dissect_json(e);
                json_print(j);
                json_object_put(j);
                return 0;
        }
        return dissect_print_text(e);
}

/* ---- merge, unmerge, refresh, status ---- */

static int verb_mutate(int argc, char **argv) {
        _cleanup_(context_done) MergeContext c = {};
        char **images = argc > 1 ? argv + 1 : NULL;
        int r;

        if (geteuid() != 0)
                return sx_error(-EPERM, "%s requires root privileges.", argv[0]);
        if (streq(argv[0], "unmerge") && argc > 1)
                return sx_error(-EINVAL, "unmerge takes no arguments.");
        r = make_context(&c, images);
        if (r < 0)
                return r;
        if (streq(argv[0], "merge"))
                return merge_extensions(&c);
        if (streq(argv[0], "unmerge"))
                return unmerge_extensions(&c);
        return refresh_extensions(&c);
}

static int verb_run(int argc, char **argv) {
        _cleanup_strv_free_ char **hierarchies = NULL;
        int r, status = 0;

        if (geteuid() != 0)
                return sx_error(-EPERM, "run requires root privileges (it creates mount and user namespaces).");
        if (arg_root || arg_namespace_of)
                return sx_error(-EINVAL, "run: --root= and --namespace-of= do not apply; the command gets a namespace of its own.");
        r = cli_hierarchies(&hierarchies);
        if (r < 0)
                return r;
        RunOptions o = {
                .images = arg_images,
                .n_images = arg_n_images,
                .discover = arg_discover,
                .private_users = arg_private_users,
                .user = arg_user,
                .idmap = arg_idmap,
                .policy = arg_image_policy,
                .verity_mode = arg_verity,
                .force = arg_force,
                .hierarchies = hierarchies,
                .argv = argv + 1,
                .notice = print_notice,
        };
        r = run_command(&o, &status);
        if (r < 0 && status > 0) {
                /* The command could not be executed: say why, exit as a shell would (126/127). */
                log_error_last(r);
                return status;
        }
        if (r < 0)
                return r;
        return status;  /* the command's exit status, passed through by main() */
}

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
        return o;
}

static int verb_status(int argc, char **argv) {
        _cleanup_(context_done) MergeContext c = {};
        HierarchyStatus *s = NULL;
        size_t n = 0;
        int r;

        r = make_context(&c, NULL);
        if (r < 0)
                return r;
        r = status_hierarchies(&c, &s, &n);
        if (r < 0)
                return r;
        if (arg_json != JSON_OFF) {
                json_object *a = json_object_new_array();
                for (size_t i = 0; i < n; i++)
                        json_object_array_add(a, status_json(&s[i]));
                json_print(a);
                json_object_put(a);
        } else {
                static const char * const header[] = { "HIERARCHY", "EXTENSIONS", "IDMAP", "SINCE" };
                _cleanup_(table_done) Table t = { .header = header, .n_cols = ELEMENTSOF(header) };
                for (size_t i = 0; r >= 0 && i < n; i++)
                        r = table_add_row(&t, (char *[]) {
                                strdup(s[i].hierarchy),
                                s[i].merged ? strv_join(s[i].extensions, ", ") : strdup("none"),
                                strdup(s[i].merged ? (s[i].idmap ?: "identity") : "-"),
                                s[i].merged ? format_timestamp(s[i].since_usec) : strdup("-"),
                        });
                if (r >= 0)
                        table_print(&t);
        }
        hierarchy_status_free_many(s, n);
        return r;
}

/* ---- CLI ---- */

static void help(void) {
        printf("sysext-idmap [OPTIONS...] COMMAND ...\n\n"
               "Merge system extension images into /usr/ and /opt/, each image an idmapped layer.\n\n"
               "Commands:\n"
               "  status                 Show current merge status (default)\n"
               "  list                   List discovered extension images\n"
               "  dissect IMAGE          Show partitions and extension-release of an image\n"
               "  merge [IMAGE...]       Merge extensions into /usr/ and /opt/\n"
               "  unmerge                Unmerge extensions from /usr/ and /opt/\n"
               "  refresh [IMAGE...]     Atomically replace the merge with the current extensions\n"
               "  run [OPTIONS] -- CMD...\n"
               "                         Run a command in a mount namespace of its own whose /usr/\n"
               "                         and /opt/ carry the extensions, idmapped into its user namespace\n\n"
               "Options:\n"
               "  -h --help              Show this help\n"
               "     --version           Show package version\n"
               "     --root=PATH         Operate relative to root path\n"
               "     --json=pretty|short|off\n"
               "                         Generate JSON output\n"
               "     --force             Ignore version incompatibilities\n"
               "     --no-reload         Do not reload the service manager\n"
               "     --no-pager          Accepted for systemd-sysext compatibility (never pages)\n"
               "     --no-legend         Do not show the table headers\n"
               "     --idmap=SPEC        Map ownership of every layer: identity, b|u|g:FROM:TO:COUNT,\n"
               "                         userns:PATH, pid:PID, foreign, user:NAME\n"
               "     --image-policy=POLICY\n"
               "                         Which partitions of an image may be used, and how protected\n"
               "     --verity=auto|kernel|userspace|off\n"
               "                         How verity data is checked (auto: kernel, else userspace)\n"
               "     --validate          dissect: check the image against the policy, do not mount\n"
               "     --namespace-of=PID  merge/unmerge/refresh/status in that process's mount\n"
               "                         namespace, idmapped into its user namespace\n"
               "     --debug             Show debug messages\n\n"
               "Options for run:\n"
               "     --image=[-]PATH[:PARTITION:OPTIONS]\n"
               "                         An extension image (repeatable), as ExtensionImages=\n"
               "     --discover          Also use the discovered extensions\n"
               "     --private-users=no|pick|INSIDE:OUTSIDE:COUNT|userns:PATH\n"
               "                         User namespace of the command; layers are idmapped into it\n"
               "     --user=NAME         Run as NAME, layers mapped user:NAME (nosuid,nodev)\n\n"
               "See the sysext-idmap(1) man page for details.\n");
}

enum {
        ARG_VERSION = 0x100,
        ARG_ROOT,
        ARG_JSON,
        ARG_FORCE,
        ARG_NO_RELOAD,
        ARG_NO_PAGER,
        ARG_NO_LEGEND,
        ARG_IDMAP,
        ARG_DEBUG,
        ARG_NAMESPACE_OF,
        ARG_IMAGE_POLICY,
        ARG_VERITY,
        ARG_VALIDATE,
        ARG_IMAGE,
        ARG_DISCOVER,
        ARG_PRIVATE_USERS,
        ARG_USER,
};

static int parse_argv(int argc, char **argv) {
        static const struct option options[] = {
                { "help",      no_argument,       NULL, 'h'           },
                { "version",   no_argument,       NULL, ARG_VERSION   },
                { "root",      required_argument, NULL, ARG_ROOT      },
                { "json",      required_argument, NULL, ARG_JSON      },
                { "force",     no_argument,       NULL, ARG_FORCE     },
                { "no-reload", no_argument,       NULL, ARG_NO_RELOAD },
                { "no-pager",  no_argument,       NULL, ARG_NO_PAGER  },
                { "no-legend", no_argument,       NULL, ARG_NO_LEGEND },
                { "idmap",     required_argument, NULL, ARG_IDMAP     },
                { "debug",     no_argument,       NULL, ARG_DEBUG     },
                { "namespace-of", required_argument, NULL, ARG_NAMESPACE_OF },
                { "image-policy", required_argument, NULL, ARG_IMAGE_POLICY },
                { "verity",    required_argument, NULL, ARG_VERITY    },
                { "validate",  no_argument,       NULL, ARG_VALIDATE  },
                { "image",     required_argument, NULL, ARG_IMAGE     },
                { "discover",  no_argument,       NULL, ARG_DISCOVER  },
                { "private-users", required_argument, NULL, ARG_PRIVATE_USERS },
                { "user",      required_argument, NULL, ARG_USER      },
                {}
        };
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("sysext-idmap %s\n%ccryptsetup %copenssl %ctest-hooks\n", PROJECT_VERSION,
                               HAVE_LIBCRYPTSETUP ? '+' : '-', HAVE_OPENSSL ? '+' : '-',
                               SYSEXT_IDMAP_TEST_HOOKS ? '+' : '-');
                        return 0;
                case ARG_ROOT:
                        if (!path_is_absolute(optarg) && !startswith(optarg, "."))
                                return sx_error(-EINVAL, "--root=: '%s' is not a path", optarg);
                        arg_root = optarg;
                        break;
                case ARG_JSON:
                        if (streq(optarg, "pretty"))
                                arg_json = JSON_PRETTY;
                        else if (streq(optarg, "short"))
                                arg_json = JSON_SHORT;
                        else if (streq(optarg, "off"))
                                arg_json = JSON_OFF;
                        else
                                return sx_error(-EINVAL, "--json=: unknown mode '%s' (pretty, short, off)", optarg);
                        break;
                case ARG_FORCE:
                        arg_force = true;
                        break;
                case ARG_NO_RELOAD:
                        arg_no_reload = true;
                        break;
                case ARG_NO_PAGER:
                        /* Accepted as systemd-sysext does; the output never goes through a pager. */
                        break;
                case ARG_NO_LEGEND:
                        arg_legend = false;
                        break;
                case ARG_IDMAP: {
                        Idmap *m = NULL;
                        int r = idmap_parse(optarg, &m);
                        if (r < 0)
                                return r;
                        idmap_free(arg_idmap);
                        arg_idmap = m;
                        break;
                }
                case ARG_DEBUG:
                        sx_debug_enabled = true;
                        break;
                case ARG_IMAGE_POLICY: {
                        ImagePolicy *p = NULL;
                        int r = image_policy_from_string(optarg, &p);
                        if (r < 0)
                                return r;
                        image_policy_free(arg_image_policy);
                        arg_image_policy = p;
                        break;
                }
                case ARG_VERITY:
                        arg_verity = verity_mode_from_string(optarg);
                        if (arg_verity < 0)
                                return sx_error(-EINVAL, "--verity=: unknown mode '%s' (auto, kernel, userspace, off)", optarg);
                        break;
                case ARG_VALIDATE:
                        arg_validate = true;
                        break;
                case ARG_IMAGE: {
                        ImageArg *a = reallocarray(arg_images, arg_n_images + 1, sizeof(ImageArg));
                        if (!a)
                                return -ENOMEM;
                        arg_images = a;
                        int r = image_arg_parse(optarg, &arg_images[arg_n_images]);
                        if (r < 0)
                                return r;
                        arg_n_images++;
                        break;
                }
                case ARG_DISCOVER:
                        arg_discover = true;
                        break;
                case ARG_PRIVATE_USERS: {
                        int r;
                        private_users_done(&arg_private_users);
                        r = private_users_parse(optarg, &arg_private_users);
                        if (r < 0)
                                return r;
                        break;
                }
                case ARG_USER:
                        arg_user = optarg;
                        break;
                case ARG_NAMESPACE_OF: {
                        uint32_t pid;
                        if (safe_atou32(optarg, &pid) < 0 || pid == 0 || pid > INT32_MAX)
                                return sx_error(-EINVAL, "--namespace-of=: '%s' is not a valid PID", optarg);
                        arg_namespace_of = (pid_t) pid;
                        break;
                }
                case '?':
                        if (optopt)
                                return sx_error(-EINVAL, "Unknown option '-%c'. Try --help.", optopt);
                        return sx_error(-EINVAL, "Unknown option '%s'. Try --help.", argv[optind - 1]);
                default:
                        return sx_error(-EINVAL, "Option '%s' needs an argument.", argv[optind - 1]);
                }
        return 1;
}

typedef struct Verb {
        const char *name;
        int min_args, max_args;         /* including the verb itself; -1 = unlimited */
        int (*run)(int argc, char **argv);
} Verb;

static const Verb verbs[] = {
        { "status",  1,  1, verb_status  },
        { "list",    1,  1, verb_list    },
        { "dissect", 2,  2, verb_dissect },
        { "merge",   1, -1, verb_mutate  },
        { "unmerge", 1,  1, verb_mutate  },
        { "refresh", 1, -1, verb_mutate  },
        { "run",     2, -1, verb_run     },
};

static int dispatch_verb(int argc, char **argv) {
        char *default_argv[] = { (char *) "status", NULL };

        if (argc == 0) {
                argc = 1;
                argv = default_argv;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                if (!streq(verbs[i].name, argv[0]))
                        continue;
                if (argc < verbs[i].min_args)
                        return sx_error(-EINVAL, "%s: missing argument. Try --help.", argv[0]);
                if (verbs[i].max_args >= 0 && argc > verbs[i].max_args)
                        return sx_error(-E2BIG, "%s: too many arguments. Try --help.", argv[0]);
                return verbs[i].run(argc, argv);
        }
        return sx_error(-EINVAL, "Unknown command '%s'. Try --help.", argv[0]);
}

int main(int argc, char **argv) {
        const char *d = secure_getenv("SYSEXT_IDMAP_DEBUG");
        int r;

#if SYSEXT_IDMAP_TEST_HOOKS
        test_hooks_from_environment();
#endif
        if (d && (streq(d, "1") || streq(d, "yes") || streq(d, "true")))
                sx_debug_enabled = true;
        r = parse_argv(argc, argv);
        if (r <= 0) {
                if (r < 0)
                        log_error_last(r);
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }
        sx_clear_error();
        r = dispatch_verb(argc - optind, argv + optind);
        arg_idmap = idmap_free(arg_idmap);
        arg_image_policy = image_policy_free(arg_image_policy);
        for (size_t i = 0; i < arg_n_images; i++)
                image_arg_done(&arg_images[i]);
        free(arg_images);
        private_users_done(&arg_private_users);
        if (r < 0) {
                log_error_last(r);
                return EXIT_FAILURE;
        }
        return r > 255 ? 255 : r;       /* run: the command's status; every other verb: 0 */
}
