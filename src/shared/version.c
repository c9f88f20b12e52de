/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Version ordering per the UAPI Version Format Specification, i.e. the semantics of systemd's
 * strverscmp_improved(). The string is walked segment by segment; a segment is a run of ASCII digits
 * (compared numerically) or ASCII letters (compared with strcmp), optionally prefixed by one of the
 * separators '~' (sorts lowest, even below the end of the string), '-' (version/release split, sorts
 * below '^', '.' and a bare segment), '^' (patch suffix) or '.'. Everything else is ignored. */

#include "version.h"

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool is_alpha(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_version_char(char c) {
        return is_digit(c) || is_alpha(c) || strchr("~-^.", c);
}

static int sign(long v) {
        return (v > 0) - (v < 0);
}

static const char *skip_junk(const char *s) {
        while (*s && !is_version_char(*s))
                s++;
        return s;
}

/* If exactly one string starts with the separator c, that one is older. If both do, step over it. */
static int compare_prefix(const char **a, const char **b, char c) {
        bool ha = **a == c, hb = **b == c;

        if (!ha && !hb)
                return 0;
        if (ha != hb)
                return ha ? -1 : 1;     /* the one carrying the prefix is older */
        (*a)++;
        (*b)++;
        return 0;
}

static int compare_numeric(const char **a, const char **b) {
        const char *ea = *a, *eb = *b;
        size_t la, lb;
        int r;

        while (is_digit(*ea))
                ea++;
        while (is_digit(*eb))
                eb++;
        /* A numeric segment is newer than an alphabetic (or empty) one. */
        if ((ea == *a) != (eb == *b))
                return ea == *a ? -1 : 1;
        while (**a == '0')
                (*a)++;
        while (**b == '0')
                (*b)++;
        la = (size_t) (ea - *a);
        lb = (size_t) (eb - *b);
        if (la != lb)
                return la < lb ? -1 : 1;
        r = sign(strncmp(*a, *b, la));
        *a = ea;
        *b = eb;
        return r;
}

static int compare_alpha(const char **a, const char **b) {
        const char *ea = *a, *eb = *b;
        size_t la, lb;
        int r;

        while (is_alpha(*ea))
                ea++;
        while (is_alpha(*eb))
                eb++;
        la = (size_t) (ea - *a);
        lb = (size_t) (eb - *b);
        r = sign(strncmp(*a, *b, la < lb ? la : lb));
        if (r != 0)
                return r;
        if (la != lb)
                return la < lb ? -1 : 1;
        *a = ea;
        *b = eb;
        return 0;
}

int version_compare(const char *a, const char *b) {
        int r;

        if (!a || !b)
                return !a && !b ? 0 : (!a ? -1 : 1);

        for (;;) {
                a = skip_junk(a);
                b = skip_junk(b);

                /* '~' sorts before everything, including the end of the string: 1~rc1 < 1. */
                r = compare_prefix(&a, &b, '~');
                if (r != 0)
                        return r;

                /* Otherwise the string with more segments is newer. */
                if (*a == 0 || *b == 0)
                        return (*a != 0) - (*b != 0);

                /* Order of the remaining separators: '-' < '^' < '.' < none. */
                r = compare_prefix(&a, &b, '-');
                if (r != 0)
                        return r;
                r = compare_prefix(&a, &b, '^');
                if (r != 0)
                        return r;
                r = compare_prefix(&a, &b, '.');
                if (r != 0)
                        return r;

                if (is_digit(*a) || is_digit(*b))
                        r = compare_numeric(&a, &b);
                else
                        r = compare_alpha(&a, &b);
                if (r != 0)
                        return r;
        }
}
