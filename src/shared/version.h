/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "util.h"

/* Version comparison as systemd's strverscmp_improved() / the UAPI Version Format Specification:
 * returns <0, 0, >0. NULL sorts before everything. */
int version_compare(const char *a, const char *b);
