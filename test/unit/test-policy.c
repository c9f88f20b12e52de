/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Image policy: systemd.image-policy(7) grammar, canonical printing and round trips, effective flags
 * (including verity partitions derived from their data partition), check() outcomes and reasons,
 * and robustness against long and garbage input. */

#include "policy.h"
#include "test-helpers.h"

#define PF _PARTITION_POLICY_PFLAGS_MASK
#define V PARTITION_POLICY_VERITY
#define S PARTITION_POLICY_SIGNED
#define E PARTITION_POLICY_ENCRYPTED
#define U PARTITION_POLICY_UNPROTECTED
#define N PARTITION_POLICY_UNUSED
#define A PARTITION_POLICY_ABSENT

/* Printable version of test input for the log (at most 60 characters shown). */
static const char *vis(const char *s, char buf[static 256]) {
        size_t o = 0;

        if (!s)
                return "(null)";
        for (size_t i = 0; s[i] && o < 240; i++) {
                unsigned char c = (unsigned char) s[i];
                if (i >= 60) {
                        o += (size_t) snprintf(buf + o, 256 - o, "…");
                        break;
                }
                if (c < ' ' || c == 127)
                        o += (size_t) snprintf(buf + o, 256 - o, "\\x%02x", c);
                else
                        buf[o++] = (char) c;
        }
        buf[o] = 0;
        return buf;
}

/* Parse s, and expect the simplified and full canonical forms (NULL: don't compare), plus both
 * round trips: full → identical policy, simplified → equivalent policy. */
static void parses(const char *s, const char *simplified, const char *full) {
        _cleanup_image_policy_ ImagePolicy *p = NULL, *q = NULL, *t = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
        char v[256];
        int r;

        r = image_policy_from_string(s, &p);
        CHECK(r == 0, "parse \"%s\" → %d %s", vis(s, v), r, r < 0 ? strna(sx_last_error()) : "");
        if (r < 0)
                return;
        if (image_policy_to_string(p, true, &a) < 0 || image_policy_to_string(p, false, &b) < 0) {
                CHECK(false, "to_string \"%s\"", strna(s));
                return;
        }
        CHECK(!simplified || streq(a, simplified), "  simplified \"%s\" (expected \"%s\")", a, strna(simplified));
        CHECK(!full || streq(b, full), "  full \"%s\" (expected \"%s\")", b, strna(full));

        r = image_policy_from_string(b, &q);
        CHECK(r == 0 && image_policy_equal(p, q), "  full form parses back to an identical policy");
        r = image_policy_from_string(a, &t);
        CHECK(r == 0 && image_policy_equivalent(p, t), "  simplified form parses back to an equivalent policy");
        if (q && image_policy_to_string(q, false, &c) >= 0)
                CHECK(streq(b, c), "  full form is a fixed point (\"%s\")", c);
}

static void rejects(const char *s, int expected_r, const char *expected_in_msg) {
        _cleanup_image_policy_ ImagePolicy *p = NULL;
        const char *m;
        char v[256];
        int r;

        sx_clear_error();
        r = image_policy_from_string(s, &p);
        m = sx_last_error();
        CHECK(r == expected_r && !p && m && (!expected_in_msg || strstr(m, expected_in_msg)),
              "reject \"%s\" → %d (expected %d): %s", vis(s, v), r, expected_r, strna(m));
}

static void gets(const char *policy, const char *designator, PartitionPolicyFlags expected) {
        _cleanup_image_policy_ ImagePolicy *p = NULL;
        _cleanup_free_ char *f = NULL, *e = NULL;
        PartitionPolicyFlags g;

        if (image_policy_from_string(policy, &p) < 0) {
                CHECK(false, "parse \"%s\"", strna(policy));
                return;
        }
        g = image_policy_get(p, designator);
        if (g >= 0)
                (void) partition_policy_flags_to_string(g, false, &f);
        if (expected >= 0)
                (void) partition_policy_flags_to_string(expected, false, &e);
        CHECK(g == expected, "get(\"%s\", %s) = %s (expected %s)", strna(policy), designator,
              g >= 0 ? strna(f) : "invalid", expected >= 0 ? strna(e) : "invalid");
}

/* expected: 1 allowed (with use level `use`, 0 = don't compare), 0 refused (reason must contain
 * `msg` if given), <0 error. */
static void checks(const char *policy, const char *designator, PartitionPolicyFlags have, bool ro, bool growfs,
                   const char *fstype, int expected, PartitionPolicyFlags use, const char *msg) {
        _cleanup_image_policy_ ImagePolicy *p = NULL;
        _cleanup_free_ char *reason = NULL;
        PartitionPolicyFlags got_use = 0;
        char v[256];
        int r;

        if (image_policy_from_string(policy, &p) < 0) {
                CHECK(false, "parse \"%s\"", strna(policy));
                return;
        }
        r = image_policy_check_full(p, designator, have, ro, growfs, fstype, &got_use, &reason);
        CHECK(r == expected && (r != 1 || use == 0 || got_use == use) && (r != 1 || !reason) &&
              (r != 0 || (reason && (!msg || strstr(reason, msg)))),
              "check(\"%s\", %s, %s%s%s%s%s) = %d (expected %d)%s%s%s%s", strna(policy), designator,
              strna(partition_policy_flag_to_string(have)), ro ? ", ro" : "", growfs ? ", growfs" : "",
              fstype ? ", " : "", fstype ? vis(fstype, v) : "", r, expected,
              r == 1 ? ", use " : "", r == 1 ? strna(partition_policy_flag_to_string(got_use)) : "",
              reason ? ": " : "", strempty(reason));
}

#define ALLOW(pol, d, have, use) checks(pol, d, have, false, false, NULL, 1, use, NULL)
#define REFUSE(pol, d, have, msg) checks(pol, d, have, false, false, NULL, 0, 0, msg)

static void test_grammar(void) {
        /* The whole-policy shortcuts; "" is the ignore policy, as in systemd. */
        parses("", "-", "=unused+absent");
        parses("-", "-", "=unused+absent");
        parses("*", "*", "=verity+signed+encrypted+unprotected+unused+absent");
        parses("~", "~", "=absent");

        /* Default entries equivalent to the shortcuts collapse to them. */
        parses("=absent", "~", "=absent");
        parses("=open", "*", NULL);
        parses("=verity+signed+encrypted+unprotected+unused+absent", "*", NULL);
        parses("=signed+verity+encrypted+unused+unprotected+absent", "*", NULL);
        parses("=ignore", "-", "=unused+absent");
        parses("=absent+unused", "-", "=unused+absent");
        /* An entry equal to the default is kept when dropping it would change an unlisted verity
         * partition's derived rule (fuzz-policy). */
        parses("usr-verity-sig=absent:=absent:usr=", "usr=-:usr-verity-sig=absent:=absent", "usr=-:usr-verity-sig=absent:=absent");
        parses("root=ignore:=ignore", "-", "root=unused+absent:=unused+absent");
        /* Empty flags: nothing specified = everything allowed. */
        parses("=", "*", "=-");
        parses("=-", "*", "=-");
        parses("root=", "root=-", "root=-:=unused+absent");

        parses("swap=open", "swap=open", "swap=verity+signed+encrypted+unprotected+unused+absent:=unused+absent");
        parses("swap=open:root=signed", "root=signed:swap=open", NULL);
        parses("swap=open:root=signed+read-only-on+growfs-off:=absent",
               "root=signed+read-only-on+growfs-off:swap=open:=absent",
               "root=signed+read-only-on+growfs-off:swap=verity+signed+encrypted+unprotected+unused+absent:=absent");
        parses("usr=verity+read-only-on:root=encrypted:swap=encrypted",
               "root=encrypted:usr=verity+read-only-on:swap=encrypted", NULL);
        parses("root=encrypted+read-only-off:srv=encrypted+absent:swap=absent", NULL, NULL);
        parses("root=unprotected+encrypted:swap=absent+unused:=unprotected+encrypted+absent",
               "root=encrypted+unprotected:swap=ignore:=encrypted+unprotected+absent", NULL);

        /* Flags are OR'ed: repeats are fine; both of a pair = don't care. */
        parses("usr=verity+verity+signed", "usr=verity+signed", "usr=verity+signed:=unused+absent");
        parses("usr=verity+read-only-on+read-only-off", "usr=verity",
               "usr=verity+read-only-on+read-only-off:=unused+absent");
        parses("usr=growfs-on", "usr=growfs-on", "usr=growfs-on:=unused+absent");
        parses("usr=open+ignore", "usr=open", NULL);

        /* File system flags (newer systemd). */
        parses("usr=verity+erofs+squashfs", "usr=verity+erofs+squashfs", NULL);

        /* Whitespace around designators and flags is stripped (systemd's strstrip()). */
        parses(" root = verity + signed : = absent ", "root=verity+signed:=absent", NULL);

        /* Every systemd designator. */
        _cleanup_free_ char *all = NULL;
        for (const char * const *d = image_policy_designators; *d; d++) {
                char *n = strjoin(strempty(all), all ? ":" : "", *d, "=unprotected+absent");
                free(all);
                all = n;
        }
        parses(all, all, NULL);
        CHECK(strv_length((char **) image_policy_designators) == 13, "13 designators known");
        static const char * const names[] = {
                "root", "usr", "home", "srv", "esp", "xbootldr", "swap", "root-verity", "root-verity-sig",
                "usr-verity", "usr-verity-sig", "tmp", "var",
        };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                CHECK(image_policy_designator_is_known(names[i]), "designator %s known", names[i]);
        CHECK(!image_policy_designator_is_known("Root") && !image_policy_designator_is_known("") &&
              !image_policy_designator_is_known(NULL), "unknown designators refused");
}

static void test_sysext_default(void) {
        _cleanup_image_policy_ ImagePolicy *d = NULL, *n = NULL, *strict = NULL;
        _cleanup_free_ char *s = NULL, *t = NULL;

        parses(image_policy_sysext_default, image_policy_sysext_default, NULL);
        parses(image_policy_sysext_strict, image_policy_sysext_strict, NULL);
        CHECK(image_policy_from_string(image_policy_sysext_default, &d) == 0 &&
              image_policy_from_string(NULL, &n) == 0 && image_policy_equal(d, n) && image_policy_equal(d, NULL),
              "NULL string and NULL policy are the sysext default");
        CHECK(image_policy_to_string(NULL, true, &s) == 0 && streq(s, image_policy_sysext_default),
              "to_string(NULL) = \"%s\"", strna(s));
        CHECK(image_policy_to_string(NULL, false, &t) == 0 && strstr(t, ":=unused+absent"),
              "to_string(NULL, full) = \"%s\"", strna(t));
        CHECK(image_policy_from_string(image_policy_sysext_strict, &strict) == 0 &&
              !image_policy_equivalent(strict, d), "strict differs from default");
        CHECK(image_policy_get_default(NULL) == PARTITION_POLICY_IGNORE, "sysext default: default is ignore");
}

static void test_rejects(void) {
        rejects("pfft", -EINVAL, "Missing '=' in image policy entry 'pfft'");
        rejects("öäüß", -EINVAL, "\\xc3\\xb6");
        rejects(":", -EINVAL, "Empty entry");
        rejects("root=verity:", -EINVAL, "Empty entry");
        rejects(":root=verity", -EINVAL, "Empty entry");
        rejects("root=verity::usr=verity", -EINVAL, "Empty entry");
        rejects(" * ", -EINVAL, NULL);
        rejects("*:root=verity", -EINVAL, "'*'");
        rejects("a=", -EBADSLT, "Unknown partition designator 'a'");
        rejects("wowza=grbl", -EBADSLT, "'wowza'");
        rejects("ROOT=verity", -EBADSLT, "'ROOT'");
        rejects("root-verity-signature=absent", -EBADSLT, "'root-verity-signature'");
        rejects("=a", -EBADRQC, "Unknown partition policy flag 'a' for the default");
        rejects("==", -EBADRQC, "'='");
        rejects("root=grbl", -EBADRQC, "Unknown partition policy flag 'grbl' for root");
        rejects("root=Verity", -EBADRQC, "'Verity'");
        rejects("root=verity=signed", -EBADRQC, "'verity=signed'");
        rejects("usr=verity+grbl+signed", -EBADRQC, "'grbl' for usr");
        rejects("usr=verity++signed", -EBADRQC, "Empty partition policy flag in 'verity++signed' for usr");
        rejects("usr=verity+", -EBADRQC, "Empty partition policy flag");
        rejects("usr=+", -EBADRQC, "Empty partition policy flag");
        rejects("usr=--", -EBADRQC, "'--'");
        rejects("root=verity:root=encrypted", -ENOTUNIQ, "'root' specified more than once");
        rejects("usr=verity:root=verity:usr=verity", -ENOTUNIQ, "'usr'");
        rejects("=absent:=ignore", -ENOTUNIQ, "Default partition policy flags specified more than once");
        rejects("root=verity:usr=bogus:root=signed", -EBADRQC, "'bogus'");   /* first error wins */

        CHECK(partition_policy_flags_from_string("verity+signed") == (V | S), "flags_from_string(verity+signed)");
        CHECK(partition_policy_flags_from_string("-") == 0 && partition_policy_flags_from_string("") == 0,
              "flags_from_string(\"-\"/\"\") = 0");
        CHECK(partition_policy_flags_from_string("verity+nope") == -EBADRQC, "flags_from_string(verity+nope) = -EBADRQC");
        CHECK(partition_policy_flags_from_string(NULL) < 0, "flags_from_string(NULL) < 0");
}

static void test_flag_names(void) {
        static const struct {
                PartitionPolicyFlags f;
                const char *name;
        } t[] = {
                { V, "verity" }, { S, "signed" }, { E, "encrypted" }, { U, "unprotected" }, { N, "unused" },
                { A, "absent" }, { PARTITION_POLICY_OPEN, "open" }, { PARTITION_POLICY_IGNORE, "ignore" },
                { PARTITION_POLICY_READ_ONLY_ON, "read-only-on" }, { PARTITION_POLICY_READ_ONLY_OFF, "read-only-off" },
                { PARTITION_POLICY_GROWFS_ON, "growfs-on" }, { PARTITION_POLICY_GROWFS_OFF, "growfs-off" },
                { PARTITION_POLICY_EROFS, "erofs" }, { PARTITION_POLICY_SQUASHFS, "squashfs" },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                const char *n = partition_policy_flag_to_string(t[i].f);
                CHECK(n && streq(n, t[i].name) && partition_policy_flags_from_string(n) == t[i].f,
                      "flag 0x%x ↔ %s", (unsigned) t[i].f, strna(n));
        }
        CHECK(!partition_policy_flag_to_string(0) && !partition_policy_flag_to_string(V | S) &&
              !partition_policy_flag_to_string(1 << 30), "no name for 0, combinations, unknown bits");
}

static void test_get(void) {
        const char *d = image_policy_sysext_default;

        gets(d, "usr", V | S | E | U | A | PF);
        gets(d, "root", V | S | E | U | A | PF);
        /* Verity partitions: derived from the data partition: used unprotected, absent allowed. */
        gets(d, "usr-verity", U | A | PF);
        gets(d, "usr-verity-sig", U | A | PF);
        gets(d, "root-verity", U | A | PF);
        gets(d, "home", N | A | PF);
        gets(d, "swap", N | A | PF);
        gets(d, "bogus", _PARTITION_POLICY_FLAGS_INVALID);
        gets(d, "", _PARTITION_POLICY_FLAGS_INVALID);

        /* "verity" needs the hash partition, not the signature one: the latter falls to the default. */
        gets("usr=verity", "usr-verity", U | PF);
        gets("usr=verity", "usr-verity-sig", N | A | PF);
        gets("usr=verity:=absent", "usr-verity-sig", A);
        gets("usr=signed", "usr-verity-sig", U | PF);
        gets("usr=signed+read-only-on", "usr-verity", U | PARTITION_POLICY_READ_ONLY_ON | PARTITION_POLICY_GROWFS_OFF | PARTITION_POLICY_GROWFS_ON);
        gets("usr=unprotected", "usr-verity", N | A | PF);
        gets("usr=verity+unused", "usr-verity", U | N | PF);
        /* An explicit entry for the verity partition wins; its verity/signed/encrypted bits are masked. */
        gets("usr=signed:usr-verity=open", "usr-verity", U | N | A | PF);
        /* No verity concept for home: verity/signed masked off, may leave nothing allowed. */
        gets("home=verity", "home", PF);
        gets("home=open", "home", E | U | N | A | PF);
        /* Must-be-absent drops the attribute bits. */
        gets("usr=absent", "usr", A);
        gets("usr=absent+read-only-on", "usr", A);
        gets("usr=read-only-on", "usr", PARTITION_POLICY_OPEN | PARTITION_POLICY_READ_ONLY_ON | PARTITION_POLICY_GROWFS_OFF | PARTITION_POLICY_GROWFS_ON);
        gets("*", "usr", PARTITION_POLICY_OPEN | PF);
        gets("*", "esp", E | U | N | A | PF);
        gets("~", "usr", A);
        gets("-", "usr", N | A | PF);
        gets("=", "usr", PARTITION_POLICY_OPEN | PF);
        gets("usr=erofs", "usr", PARTITION_POLICY_OPEN | PF | PARTITION_POLICY_EROFS);
}

static void test_check(void) {
        const char *d = image_policy_sysext_default;

        /* sysext default: anything but "exists, unused". */
        ALLOW(d, "usr", U, U);
        ALLOW(d, "usr", V, V);
        ALLOW(d, "usr", S, S);
        ALLOW(d, "usr", E, E);
        ALLOW(d, "usr", A, A);
        ALLOW(d, "root", U, U);
        REFUSE(d, "usr", N, "usr partition is unused, but policy requires verity+signed+encrypted+unprotected+absent");
        ALLOW(d, "home", N, N);
        ALLOW(d, "home", A, A);
        ALLOW(d, "usr-verity", U, U);
        ALLOW(d, "usr-verity", A, A);
        REFUSE(d, "usr-verity", V, "usr-verity partition is verity, but policy requires unprotected+absent");
        CHECK(image_policy_may_use(NULL, "usr") == 1 && image_policy_may_use(NULL, "root") == 1 &&
              image_policy_may_use(NULL, "home") == 0 && image_policy_may_use(NULL, "esp") == 0,
              "sysext default: may use root/usr, ignores home/esp");
        CHECK(image_policy_may_use(NULL, "bogus") == -EINVAL, "may_use(bogus) = -EINVAL");

        /* The reason format the brief asks for. */
        REFUSE("usr=verity+signed", "usr", U, "usr partition is unprotected, but policy requires verity+signed");
        REFUSE("usr=verity+signed", "usr", E, "usr partition is encrypted, but policy requires verity+signed");
        REFUSE("usr=verity+signed", "usr", A, "usr partition is absent, but policy requires verity+signed");
        ALLOW("usr=verity+signed", "usr", V, V);
        ALLOW("usr=verity+signed", "usr", S, S);
        /* root is not listed: default ignore. */
        ALLOW("usr=verity+signed", "root", A, A);
        ALLOW("usr=verity+signed", "root", N, N);
        CHECK(image_policy_may_use(NULL, "usr") == 1, "may_use");

        /* signed ⇒ verity ⇒ unprotected, as long as the dropped partition may be ignored. */
        ALLOW("usr=verity", "usr", S, V);
        REFUSE("usr=verity:=absent", "usr", S, "does not allow ignoring the verity signature partition");
        ALLOW("usr=verity:usr-verity-sig=unused", "usr", S, V);
        ALLOW("usr=unprotected", "usr", S, U);
        ALLOW("usr=unprotected", "usr", V, U);
        REFUSE("usr=unprotected:=absent", "usr", V, "does not allow ignoring the verity partition");
        REFUSE("usr=unprotected:usr-verity=unprotected", "usr", V, "usr partition is verity, but policy requires unprotected");
        /* …but never upwards. */
        REFUSE("usr=signed", "usr", V, "usr partition is verity, but policy requires signed");
        REFUSE("usr=signed", "usr", U, "usr partition is unprotected, but policy requires signed");
        REFUSE("usr=verity", "usr", U, "usr partition is unprotected, but policy requires verity");
        REFUSE("usr=encrypted", "usr", S, "usr partition is signed, but policy requires encrypted");
        ALLOW(image_policy_sysext_strict, "usr", S, S);
        ALLOW(image_policy_sysext_strict, "usr", A, A);
        REFUSE(image_policy_sysext_strict, "usr", V, "but policy requires signed+absent");

        /* Absent-only policy: existing partitions are refused, whatever their protection. */
        REFUSE("~", "usr", N, "usr partition exists, but policy requires it to be absent");
        REFUSE("~", "usr", S, "usr partition exists, but policy requires it to be absent");
        ALLOW("~", "usr", A, A);
        CHECK(image_policy_may_use(NULL, "usr") == 1, "may_use sanity");
        ALLOW("-", "usr", N, N);
        ALLOW("-", "usr", A, A);
        REFUSE("-", "usr", U, "usr partition is unprotected, but policy requires unused+absent");
        ALLOW("*", "usr", U, U);
        ALLOW("*", "usr", S, S);
        ALLOW("*", "home", E, E);
        REFUSE("*", "home", V, "home partition is verity");
        REFUSE("home=verity", "home", A, "home partition is absent, but policy requires nothing");

        /* GPT attribute flags. */
        checks("usr=verity+read-only-on", "usr", V, false, false, NULL, 0, 0,
               "usr partition has the read-only flag unset, but policy requires read-only-on");
        checks("usr=verity+read-only-on", "usr", V, true, false, NULL, 1, V, NULL);
        checks("usr=verity+read-only-off", "usr", V, true, false, NULL, 0, 0,
               "usr partition has the read-only flag set, but policy requires read-only-off");
        checks("usr=verity+read-only-on+read-only-off", "usr", V, true, true, NULL, 1, V, NULL);
        checks("usr=verity+read-only-on+read-only-off", "usr", V, false, false, NULL, 1, V, NULL);
        checks("usr=open+growfs-off", "usr", U, false, true, NULL, 0, 0,
               "usr partition has the growfs flag set, but policy requires growfs-off");
        checks("usr=open+growfs-on", "usr", U, false, false, NULL, 0, 0, "growfs flag unset");
        checks("usr=open+growfs-on", "usr", U, false, true, NULL, 1, U, NULL);
        /* Attributes of absent or ignored partitions don't matter. */
        checks("usr=absent+read-only-on", "usr", A, false, false, NULL, 1, A, NULL);
        checks("usr=ignore+read-only-on", "usr", N, false, false, NULL, 1, N, NULL);
        /* Derived verity partition inherits the attribute policy. */
        checks("usr=verity+read-only-on", "usr-verity", U, false, false, NULL, 0, 0, "usr-verity partition has the read-only flag unset");

        /* File systems. */
        checks("usr=unprotected+erofs+squashfs", "usr", U, false, false, "erofs", 1, U, NULL);
        checks("usr=unprotected+erofs+squashfs", "usr", U, false, false, "squashfs", 1, U, NULL);
        checks("usr=unprotected+erofs+squashfs", "usr", U, false, false, "ext4", 0, 0,
               "usr partition has file system ext4, but policy allows only erofs+squashfs");
        checks("usr=unprotected+erofs", "usr", U, false, false, "open", 0, 0, "file system open");
        checks("usr=unprotected+erofs", "usr", U, false, false, "bad\x01\x1b[31m", 0, 0, "bad\\x01\\x1b[31m");
        checks("usr=unprotected+erofs", "usr", U, false, false, NULL, 1, U, NULL);
        checks("usr=unprotected", "usr", U, false, false, "ext4", 1, U, NULL);

        /* Errors. */
        checks(d, "bogus", U, false, false, NULL, -EINVAL, 0, NULL);
        checks(d, "usr", 0, false, false, NULL, -EINVAL, 0, NULL);
        checks(d, "usr", V | S, false, false, NULL, -EINVAL, 0, NULL);
        checks(d, "usr", PARTITION_POLICY_READ_ONLY_ON, false, false, NULL, -EINVAL, 0, NULL);
        checks(d, "usr", _PARTITION_POLICY_FLAGS_INVALID, false, false, NULL, -EINVAL, 0, NULL);
        CHECK(image_policy_check(NULL, NULL, U, false, false, NULL) == -EINVAL, "check(NULL designator) = -EINVAL");

        /* The short API, with and without reason. */
        char *reason = (char *) "untouched";
        CHECK(image_policy_check(NULL, "usr", U, false, false, &reason) == 1 && !reason, "check() = 1, reason NULL");
        CHECK(image_policy_check(NULL, "usr", N, false, false, NULL) == 0, "check() = 0 without ret_reason");
        int r = image_policy_check(NULL, "usr", N, false, false, &reason);
        CHECK(r == 0 && reason, "check() = 0: %s", strna(reason));
        free(reason);
}

static void test_equivalence(void) {
        static const struct {
                const char *a, *b;
                bool equal, equivalent;
        } t[] = {
                { "", "-", true, true },
                { "-", "=ignore", true, true },
                { "*", "=open", true, true },
                { "*", "=verity+signed+encrypted+unprotected+unused+absent+read-only-on+read-only-off", false, true },
                { "~", "=absent", true, true },
                { "root=verity+signed", "root=signed+verity", true, true },
                { "root=verity+signed", "root=signed+verity+read-only-on+read-only-off", false, true },
                { "usr=signed", "usr=signed:usr-verity=unprotected:usr-verity-sig=unprotected", false, true },
                { "usr=signed", "usr=verity", false, false },
                { "home=verity", "home=-", false, false },
                { "home=verity+unused", "home=unused", false, true },   /* verity meaningless for home */
                { "usr=ignore", "-", false, true },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_image_policy_ ImagePolicy *a = NULL, *b = NULL;
                bool ok_parse = image_policy_from_string(t[i].a, &a) == 0 && image_policy_from_string(t[i].b, &b) == 0;

                CHECK(ok_parse && image_policy_equal(a, b) == t[i].equal && image_policy_equivalent(a, b) == t[i].equivalent &&
                      image_policy_equivalent(b, a) == t[i].equivalent,
                      "\"%s\" vs \"%s\": equal=%d equivalent=%d", t[i].a, t[i].b, t[i].equal, t[i].equivalent);
        }
}

static char *repeat(const char *prefix, const char *unit, size_t n, const char *suffix) {
        size_t l = strlen(unit);
        char *s = malloc(strlen(prefix) + l * n + strlen(suffix) + 1), *p;

        if (!s)
                abort();
        p = stpcpy(s, prefix);
        for (size_t i = 0; i < n; i++)
                p = stpcpy(p, unit);
        strcpy(p, suffix);
        return s;
}

static void test_robustness(void) {
        _cleanup_free_ char *long_flags = repeat("usr=", "verity+", 1500, "signed"),
                            *long_word = repeat("", "x", 10000, ""),
                            *long_name = repeat("", "r", 10000, "=verity"),
                            *long_flag = repeat("usr=", "v", 10000, ""),
                            *colons = repeat("", ":", 10000, ""),
                            *pluses = repeat("usr=", "+", 10000, ""),
                            *many = repeat("", "usr=verity:", 1000, "usr=verity");
        _cleanup_image_policy_ ImagePolicy *p = NULL;
        const char *m;

        CHECK(strlen(long_flags) > 10000 && image_policy_from_string(long_flags, &p) == 0 &&
              image_policy_get(p, "usr") == (V | S | PF), "10k chars of repeated flags parse");

        rejects(long_word, -EINVAL, "…");
        rejects(long_name, -EBADSLT, "…");
        rejects(long_flag, -EBADRQC, "…");
        rejects(colons, -EINVAL, NULL);
        rejects(pluses, -EBADRQC, NULL);
        rejects(many, -ENOTUNIQ, NULL);
        sx_clear_error();
        (void) image_policy_from_string(long_word, NULL);
        m = sx_last_error();
        CHECK(m && strlen(m) < 200, "message for a 10k word is bounded (%zu chars)", m ? strlen(m) : 0);

        /* Control characters never reach the message raw. */
        rejects("root=\x01verity", -EBADRQC, "\\x01verity");
        rejects("ro\x1b[2Jot=verity", -EBADSLT, "ro\\x1b[2Jot");
        rejects("root=verity\x7f", -EBADRQC, "verity\\x7f");
        rejects("\x01", -EINVAL, "\\x01");
        m = sx_last_error();
        CHECK(m && !string_has_cc(m), "no control characters in messages");
        /* Whitespace (incl. newline) around words is stripped, as systemd's strstrip() does. */
        parses("usr=verity\n", "usr=verity", NULL);
        parses("\tusr\t=\tverity\t", "usr=verity", NULL);

        /* Garbage: random strings over an alphabet biased to the grammar, and over all bytes. Every
         * result is success (then the round trip holds) or one of the four documented errors. */
        static const char *const pieces[] = {
                "root", "usr", "usr-verity", "home", "=", ":", "+", "verity", "signed", "open", "ignore",
                "-", "*", "~", " ", "read-only-on", "growfs-off", "absent", "x", "\x01", "\xff", "erofs",
        };
        unsigned seed = 12345, n_ok = 0, n_bad = 0;
        bool all_ok = true;

        for (unsigned iter = 0; iter < 20000; iter++) {
                char buf[512];
                size_t o = 0;
                unsigned k;
                int r;

                seed = seed * 1103515245u + 12345u;
                k = (seed >> 16) % 12;
                for (unsigned j = 0; j < k; j++) {
                        seed = seed * 1103515245u + 12345u;
                        if (iter % 2)
                                o += (size_t) snprintf(buf + o, sizeof(buf) - o, "%s",
                                                       pieces[(seed >> 16) % ELEMENTSOF(pieces)]);
                        else if (o < sizeof(buf) - 1)
                                buf[o++] = (char) (1 + (seed >> 16) % 255);
                }
                buf[o] = 0;

                _cleanup_image_policy_ ImagePolicy *g = NULL, *back = NULL;
                _cleanup_free_ char *full = NULL, *simple = NULL;
                r = image_policy_from_string(buf, &g);
                if (r == 0) {
                        n_ok++;
                        if (image_policy_to_string(g, false, &full) < 0 || image_policy_to_string(g, true, &simple) < 0 ||
                            image_policy_from_string(full, &back) < 0 || !image_policy_equal(g, back)) {
                                all_ok = false;
                                printf("FAIL: garbage round trip \"%s\"\n", buf);
                        }
                } else if (r == -EINVAL || r == -EBADSLT || r == -EBADRQC || r == -ENOTUNIQ) {
                        n_bad++;
                        if (!sx_last_error() || string_has_cc(sx_last_error())) {
                                all_ok = false;
                                printf("FAIL: garbage message for \"%s\"\n", buf);
                        }
                } else {
                        all_ok = false;
                        printf("FAIL: garbage \"%s\" → %d\n", buf, r);
                }
        }
        CHECK(all_ok, "20000 garbage strings: %u parsed and round-tripped, %u refused with a clean message", n_ok, n_bad);
}

/* intersect(a, b) equivalent to expected; and the result checks like expected does. */
static void intersects(const char *a, const char *b, const char *expected) {
        _cleanup_image_policy_ ImagePolicy *pa = NULL, *pb = NULL, *pe = NULL, *pi = NULL, *pj = NULL;
        _cleanup_free_ char *got = NULL;

        if ((a && image_policy_from_string(a, &pa) < 0) || image_policy_from_string(b, &pb) < 0 ||
            image_policy_from_string(expected, &pe) < 0) {
                CHECK(false, "parse %s / %s / %s", strna(a), b, expected);
                return;
        }
        CHECK(image_policy_intersect(pa, pb, &pi) == 0 && image_policy_intersect(pb, pa, &pj) == 0 &&
              image_policy_to_string(pi, true, &got) == 0 && image_policy_equivalent(pi, pe) && image_policy_equivalent(pj, pe),
              "intersect(\"%s\", \"%s\") = \"%s\" (expected \"%s\")", strna(a), b, strna(got), expected);
}

static void test_intersect(void) {
        const char *strict = image_policy_sysext_strict;

        /* What the PAM module does for a user's image: the administrator's policy can only tighten. */
        intersects(NULL, strict, strict);
        intersects("*", strict, strict);
        intersects(strict, strict, strict);
        /* Rules derived for verity partitions are intersected too: strict's do not allow "unused". */
        intersects("usr=verity+signed+absent:root=absent", strict,
                   "usr=signed+absent:root=absent:root-verity=absent:root-verity-sig=absent");
        intersects("usr=unprotected+absent:root=unprotected+absent", strict,
                   "usr=absent:root=absent:root-verity=absent:usr-verity=absent:root-verity-sig=absent:usr-verity-sig=absent");
        intersects("root=signed+absent+erofs:usr=signed+absent+squashfs", strict,
                   "root=signed+absent+erofs:usr=signed+absent+squashfs");
        /* No file system, or no read-only flag, satisfies both: the partition cannot exist. */
        intersects("usr=open+erofs", "usr=open+squashfs",
                   "usr=absent:usr-verity=unprotected+unused+absent:usr-verity-sig=unprotected+unused+absent");
        intersects("usr=open+read-only-on", "usr=open+read-only-off", "usr=absent:usr-verity=absent:usr-verity-sig=absent");
        intersects("usr=open+read-only-on", "usr=signed", "usr=signed+read-only-on");
        intersects("~", "*", "~");

        /* And by effect: an unsigned partition is refused, a signed one allowed. */
        _cleanup_image_policy_ ImagePolicy *open = NULL, *st = NULL, *i = NULL;
        _cleanup_free_ char *reason = NULL;
        CHECK(image_policy_from_string("*", &open) == 0 && image_policy_from_string(strict, &st) == 0 &&
              image_policy_intersect(open, st, &i) == 0, "intersect(*, strict)");
        CHECK(image_policy_check(i, "root", PARTITION_POLICY_UNPROTECTED, false, false, &reason) == 0 && reason,
              "intersect(*, strict) refuses an unprotected root: %s", strna(reason));
        CHECK(image_policy_check(i, "usr", PARTITION_POLICY_VERITY, false, false, NULL) == 0,
              "intersect(*, strict) refuses a verity (unsigned) usr");
        CHECK(image_policy_check(i, "usr", PARTITION_POLICY_SIGNED, false, false, NULL) == 1,
              "intersect(*, strict) allows a signed usr");
        CHECK(image_policy_check(i, "usr-verity-sig", PARTITION_POLICY_UNPROTECTED, false, false, NULL) == 1,
              "intersect(*, strict) uses the signature partition");
}

int main(void) {
        test_grammar();
        test_sysext_default();
        test_rejects();
        test_flag_names();
        test_get();
        test_check();
        test_equivalence();
        test_robustness();
        test_intersect();

        return test_result();
}
