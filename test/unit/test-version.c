/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* version_compare(): the examples of the UAPI Version Format Specification and of systemd's
 * strverscmp_improved() documentation, checked in both directions. */

#include "test-helpers.h"
#include "version.h"

static void check(const char *a, const char *b, int expected) {
        int r = version_compare(a, b), rr = version_compare(b, a);
        int s = (r > 0) - (r < 0), ss = (rr > 0) - (rr < 0);

        CHECK(s == expected && ss == -expected, "version_compare(\"%s\", \"%s\") = %d (expected %d, reverse %d)",
              strna(a), strna(b), s, expected, ss);
}

#define LT(a, b) check(a, b, -1)
#define EQ(a, b) check(a, b, 0)
#define GT(a, b) check(a, b, 1)

int main(void) {
        /* Examples from the specification. */
        EQ("11", "11");
        EQ("systemd-123", "systemd-123");
        LT("bar-123", "foo-123");
        GT("123a", "123");
        GT("123.a", "123");
        LT("123.a", "123.b");
        GT("123a", "123.a");
        EQ("11α", "11β");
        LT("A", "a");
        LT("", "0");
        GT("0.", "0");
        GT("0.0", "0");
        GT("0", "~");
        GT("", "~");
        EQ("1_", "1");
        EQ("_1", "1");
        LT("1_", "1.2");
        GT("1_2_3", "1.3.3");
        EQ("1+", "1");
        EQ("+1", "1");
        LT("1+", "1.2");
        GT("1+2+3", "1.3.3");

        /* The ordered list from strverscmp_improved()'s documentation: each one is older than the next. */
        static const char * const ordered[] = {
                "122.1", "123~rc1-1", "123", "123-a", "123-a.1", "123-1", "123-1.1", "123^post1",
                "123.a-1", "123.1-1", "123a-1", "124-1",
        };
        for (size_t i = 0; i < ELEMENTSOF(ordered); i++)
                for (size_t j = 0; j < ELEMENTSOF(ordered); j++)
                        check(ordered[i], ordered[j], i < j ? -1 : i > j ? 1 : 0);

        /* Numbers are compared numerically, leading zeros do not count. */
        LT("9", "10");
        LT("1.9", "1.10");
        EQ("00123", "123");
        EQ("1.002", "1.2");
        LT("0001", "2");
        LT("99999999999999999999998", "99999999999999999999999");
        LT("1.0", "1.0.0");
        /* '~' sorts before the end of string and before everything else. */
        LT("1~rc1", "1");
        LT("1~rc1", "1~rc2");
        GT("1~~a", "1~");        /* both skip one '~', then "1~" has ended */
        LT("1~", "1");
        LT("1.0~rc1", "1.0");
        LT("1~rc1", "1-1");
        /* '-', '^', '.' ordering. */
        LT("1-2", "1.1");
        LT("1-2", "1^1");
        LT("1^2", "1.1");
        GT("1^1", "1");
        GT("1-1", "1");
        /* Numbers sort after letters. */
        LT("1.a", "1.1");
        LT("a", "1");
        LT("abc", "abcd");
        LT("1a", "1b");
        LT("1.2a", "1.2b1");
        /* Typical Debian / Fedora strings. */
        LT("252.38-1~deb12u1", "252.39-1~deb12u2");
        LT("5.11.0-0.rc5.20210128git76c057c84d28.137.fc34", "5.11.0-1.fc34");
        LT("247.2-3.1.fc33.x86_64", "247.3-1.fc33.x86_64");
        /* NULL sorts first. */
        EQ(NULL, NULL);
        LT(NULL, "");
        LT(NULL, "~");
        EQ("", "");
        EQ("_", "");

        return test_result();
}
