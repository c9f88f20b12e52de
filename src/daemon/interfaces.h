/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The interfaces sysext-idmapd implements, as Varlink IDL (org.varlink.service.GetInterfaceDescription
 * returns these texts; docs/sysext-idmapd.md shows them). */

#include "varlink.h"

extern const VarlinkInterface daemon_interfaces[2];
extern const size_t daemon_n_interfaces;
