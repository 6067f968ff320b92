#!/bin/sh
# flowrelay %pre: the system user and group, before the files land (Fedora's useradd habit:
# no home, no login shell). Users are never removed on erase, as on Debian.
set -eu
getent group flowrelay >/dev/null || groupadd --system flowrelay
getent passwd flowrelay >/dev/null ||
  useradd --system --gid flowrelay --home-dir / --no-create-home \
    --shell /sbin/nologin --comment "flowrelay daemon" flowrelay
exit 0
