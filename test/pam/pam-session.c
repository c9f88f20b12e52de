/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Test driver: open a PAM session for USER with SERVICE, run CMD as that user inside it, close the
 * session, exit with CMD's status.   pam-session SERVICE USER CMD [ARGS...] */

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
        (void) msg;
        (void) data;
        *resp = calloc((size_t) n, sizeof(struct pam_response));
        return *resp ? PAM_SUCCESS : PAM_BUF_ERR;
}

int main(int argc, char **argv) {
        struct pam_conv c = { conv, NULL };
        pam_handle_t *pamh = NULL;
        struct passwd *pw;
        int r, status = 0;
        pid_t pid;

        if (argc < 4) {
                fprintf(stderr, "usage: %s SERVICE USER CMD [ARGS...]\n", argv[0]);
                return 2;
        }
        pw = getpwnam(argv[2]);
        if (!pw) {
                fprintf(stderr, "no user %s\n", argv[2]);
                return 2;
        }
        r = pam_start(argv[1], argv[2], &c, &pamh);
        if (r == PAM_SUCCESS)
                r = pam_open_session(pamh, 0);
        if (r != PAM_SUCCESS) {
                fprintf(stderr, "pam: %s\n", pam_strerror(pamh, r));
                return 3;
        }
        pid = fork();
        if (pid == 0) {
                if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
                        perror("dropping privileges");
                        _exit(4);
                }
                execvp(argv[3], argv + 3);
                perror(argv[3]);
                _exit(127);
        }
        (void) waitpid(pid, &status, 0);
        r = pam_close_session(pamh, 0);
        if (r != PAM_SUCCESS)
                fprintf(stderr, "pam close: %s\n", pam_strerror(pamh, r));
        pam_end(pamh, r);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
