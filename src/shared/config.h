/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The configuration file systemd-sysext (v259+) reads, sysext.conf:
 *   /etc/systemd/sysext.conf, else /run/…, /usr/local/lib/…, /usr/lib/systemd/sysext.conf (the first
 *   found), then the drop-ins sysext.conf.d/ *.conf of those four directories in file name order (a
 *   name in /etc hides the same name in /run, /usr/local/lib and /usr/lib), later assignments winning;
 *   section [SysExt], keys Mutable= and ImagePolicy=; everything relative to --root.
 * libsystemd keeps its conf-parser private, so this is a small INI reader of its own. Every file must
 * be root-controlled (it decides whether /usr becomes writable and which images are trusted). */

#include "util.h"

#define CONFIG_FILE_MAX (64U * 1024U)

/* One "key=value" of section (NULL before the first section header) at line of file. Returns 0 or a
 * negative errno (with its message recorded) to stop the parse. */
typedef int (*ConfigAssignment)(const char *file, unsigned line, const char *section, const char *key,
                                const char *value, void *userdata);

/* The INI syntax of systemd's conf-parser: blank lines and lines starting with '#' or ';' are
 * comments, "[Section]" starts a section, "Key=Value" assigns (whitespace around key and value
 * dropped), a line ending in '\' continues on the next. A line that is none of those, a section
 * header with garbage, a key with control characters or whitespace, NUL bytes or invalid UTF-8
 * are errors naming file:line (-EBADMSG). */
int config_parse_text(const char *file, const char *text, size_t size, ConfigAssignment cb, void *userdata);

typedef struct SysextConfig {
        char *mutable_mode;     /* Mutable= as written, NULL if not set */
        char *mutable_where;    /* "file:line" of that assignment, for messages */
        char *image_policy;     /* ImagePolicy= */
        char *image_policy_where;
        char **warnings;        /* unknown sections and keys, "file:line: …", for the front end to show */
} SysextConfig;

/* Read name.conf and its name.conf.d/ drop-ins ("sysext", section "SysExt") beneath root (NULL or
 * "/": the host). A missing file is no error; an unreadable, malformed or not root-controlled one
 * is, naming it. */
int sysext_config_load(const char *root, const char *name, const char *section, SysextConfig *ret);
void sysext_config_done(SysextConfig *c);
