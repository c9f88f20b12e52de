/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The two sd_id128 helpers we need that are functions in libsystemd rather than inline in
 * <systemd/sd-id128.h>: with them here, nothing but reload.c's D-Bus call needs libsystemd at run
 * time (and that one loads it with dlopen()). Same behaviour as systemd's. */

#include <systemd/sd-id128.h>

#define ID128_UUID_STRING_MAX SD_ID128_UUID_STRING_MAX

/* 32 hex digits, or the UUID form 8-4-4-4-12; either case. -EINVAL otherwise. */
int id128_from_string(const char *s, sd_id128_t *ret);

/* Lower-case UUID form into s; returns s. */
char *id128_to_uuid_string(sd_id128_t id, char s[static ID128_UUID_STRING_MAX]);
