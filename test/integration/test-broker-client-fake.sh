#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# test-broker-client's client checks against test/integration/fake-broker.py instead of
# sysext-idmapd: the client side (user namespaces, cloning the received layers, the overlays, exit
# status, errors) is tested whether or not the daemon is built.
export BROKER_FAKE=1
source "$(dirname "${BASH_SOURCE[0]}")/test-broker-client.sh"
