/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "id128-util.h"
#include "util.h"

#define ID128_BYTES 16U
#define ID128_PLAIN_CHARS 32U
#define ID128_UUID_CHARS 36U

/* The dashes of the UUID form come before these bytes. */
static bool uuid_dash_before(unsigned byte) {
        return byte == 4 || byte == 6 || byte == 8 || byte == 10;
}

int id128_from_string(const char *s, sd_id128_t *ret) {
        sd_id128_t t = {};
        size_t l;
        bool uuid;

        if (!s || !ret)
                return -EINVAL;
        l = strlen(s);
        if (l != ID128_PLAIN_CHARS && l != ID128_UUID_CHARS)
                return -EINVAL;
        uuid = l == ID128_UUID_CHARS;
        for (unsigned n = 0; n < ID128_BYTES; n++) {
                int a, b;

                if (uuid && uuid_dash_before(n) && *s++ != '-')
                        return -EINVAL;
                a = unhexchar(s[0]);
                b = a < 0 ? a : unhexchar(s[1]);
                if (b < 0)
                        return -EINVAL;
                t.bytes[n] = (uint8_t) (a << 4 | b);
                s += 2;
        }
        *ret = t;
        return 0;
}

char *id128_to_uuid_string(sd_id128_t id, char s[static ID128_UUID_STRING_MAX]) {
        (void) snprintf(s, ID128_UUID_STRING_MAX,
                        "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                        id.bytes[0], id.bytes[1], id.bytes[2], id.bytes[3], id.bytes[4], id.bytes[5],
                        id.bytes[6], id.bytes[7], id.bytes[8], id.bytes[9], id.bytes[10], id.bytes[11],
                        id.bytes[12], id.bytes[13], id.bytes[14], id.bytes[15]);
        return s;
}
