/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* `run` through the broker (sysext-idmapd): the way an ordinary user runs a command on extension
 * images. The user namespace is made here (own uid and gid -> 0 with setgroups denied, or with
 * --private-users=subuid ids 0..65535 -> the user's /etc/subuid and /etc/subgid ranges through the
 * setuid newuidmap/newgidmap), the images are opened with the caller's own permissions and passed
 * to the broker as file descriptors, the broker hands back each layer idmapped into that namespace,
 * and the overlays are built in a mount namespace owned by it: nothing in it runs with more
 * privilege than the caller has. */

#include <stdbool.h>

#include "run.h"

/* Which way `run` goes. given: --broker=PATH, or NULL. An ordinary user always goes through the
 * broker (given, or the default socket), and options the broker path cannot honour are refused
 * (-EOPNOTSUPP, naming the option). Root goes through it if given (same refusals), or if the
 * default socket exists and the options suit it; then *ret_optional: a broker that turns out not
 * to run means today's path. Returns 1 with *ret_socket (borrowed) for the broker, 0 for today's
 * path. */
int run_broker_choose(const RunOptions *o, const char *given, bool is_root, const char **ret_socket,
                      bool *ret_optional);

/* run_command() through the broker at o->broker. 1 with *ret_status (the command's exit status);
 * 0 if o->broker_optional and nobody listens at the socket (nothing was done); negative errno
 * otherwise (-ENOTCONN: the broker is not running). */
int run_broker_command(const RunOptions *o, int *ret_status);
