/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Asking the service manager to reload (daemon-reload) after extensions that carry unit files were
 * merged or unmerged (EXTENSION_RELOAD_MANAGER=1), as systemd-sysext does. */

/* Reload the host's service manager: through PID 1's private socket when we are root (it works
 * before dbus-daemon is up: the boot merge runs before sysinit.target), else the system bus.
 * 1 reloaded; 0 there is no manager to ask (no systemd as PID 1, a container, early boot);
 * negative errno with a message recorded if the manager refused or the call failed. */
int service_manager_reload(void);
/* Load libsystemd now, before the merge is attached: the loader resolves it (and reads
 * /etc/ld.so.cache) in the file system as it is at that moment, and once /usr or /etc is merged
 * that includes what the extensions ship. merge calls it whenever a reload may follow. */
int service_manager_reload_prepare(void);
