/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* config_parse_text(): the INI syntax of sysext.conf (sections, comments, continuation lines,
 * whitespace, errors naming file:line), hierarchy_mutable_name() and mutable_mode_from_string(). */

#include "config.h"
#include "mutable.h"
#include "test-helpers.h"

typedef struct Seen {
        char buf[1024];
} Seen;

static int collect(const char *file, unsigned line, const char *section, const char *key, const char *value, void *userdata) {
        Seen *s = userdata;
        size_t n = strlen(s->buf);

        snprintf(s->buf + n, sizeof(s->buf) - n, "%u:[%s]%s=%s;", line, strna(section), key, value);
        return 0;
}

static void ok(const char *text, const char *want) {
        Seen s = {};
        int r;

        sx_clear_error();
        r = config_parse_text("t.conf", text, strlen(text), collect, &s);
        CHECK(r == 0 && streq(s.buf, want), "parse of \"%s\": r=%d got \"%s\", want \"%s\" (%s)", text, r, s.buf, want,
              strna(sx_last_error()));
}

static void bad(const char *text, size_t size, const char *message) {
        Seen s = {};
        int r;

        sx_clear_error();
        r = config_parse_text("t.conf", text, size, collect, &s);
        CHECK(r == -EBADMSG && sx_last_error() && strstr(sx_last_error(), message),
              "parse of \"%s\": r=%d message \"%s\", want \"%s\"", text, r, strna(sx_last_error()), message);
}

int main(void) {
        ok("", "");
        ok("# comment\n; comment\n\n[SysExt]\nMutable=yes\n", "5:[SysExt]Mutable=yes;");
        ok("  [SysExt]  \n  Mutable =  import  \nImagePolicy=root=signed+absent:usr=signed+absent",
           "2:[SysExt]Mutable=import;3:[SysExt]ImagePolicy=root=signed+absent:usr=signed+absent;");
        ok("[A]\nK=a \\\n b\nL=\n", "2:[A]K=a   b;4:[A]L=;");
        ok("K=outside\n", "1:[n/a]K=outside;");
        ok("[A]\nK=1\n[B]\nK=2\n", "2:[A]K=1;4:[B]K=2;");
        bad("[SysExt\n", 8, "t.conf:1: invalid section header");
        bad("[]\n", 3, "t.conf:1: invalid section header");
        bad("[A]\nnonsense\n", 13, "t.conf:2: missing '='");
        bad("[A]\n=x\n", 7, "t.conf:2: invalid key");
        bad("[A]\nMy Key=x\n", 13, "t.conf:2: invalid key");
        bad("[A]\nK=\x1b[31m\n", 12, "t.conf:2: control characters");
        bad("[A]\nK=a\0b\n", 9, "NUL byte");
        bad("[A]\nK=\xff\n", 7, "not valid UTF-8");

        char *n;
        CHECK((n = hierarchy_mutable_name("/usr")) && streq(n, "usr"), "/usr → %s", strna(n));
        free(n);
        CHECK((n = hierarchy_mutable_name("/foo/bar/")) && streq(n, "foo.bar"), "/foo/bar/ → %s", strna(n));
        free(n);
        CHECK(mutable_mode_from_string("ephemeral-import") == MUTABLE_EPHEMERAL_IMPORT, "ephemeral-import");
        CHECK(mutable_mode_from_string("on") == MUTABLE_YES && mutable_mode_from_string("0") == MUTABLE_NO, "booleans");
        CHECK(mutable_mode_from_string("Yes") == MUTABLE_YES, "boolean case");
        CHECK(mutable_mode_from_string("bogus") == _MUTABLE_MODE_INVALID, "bogus");
        for (MutableMode m = 0; m < _MUTABLE_MODE_MAX; m++)
                CHECK(mutable_mode_from_string(mutable_mode_to_string(m)) == m, "round trip %d", (int) m);
        return test_result();
}
