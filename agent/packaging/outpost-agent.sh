#!/bin/sh
# outpost-agent: the Outpost edge agent with the Node.js runtime shipped in its package, never
# the system's node. The package's files are found next to this script (../lib/outpost-agent),
# so an unpacked tarball runs where it lies; from anywhere else, the installed ones.
lib="${0%/*}/../lib/outpost-agent"
[ -x "$lib/bin/node" ] || lib=/usr/lib/outpost-agent
exec "$lib/bin/node" @NODE_FLAGS@ "$lib/main.js" "$@"
