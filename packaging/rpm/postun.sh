#!/bin/sh
# flowrelay %postun, as %systemd_postun_with_restart: reload units; after an upgrade
# ($1 >= 1) restart the service if it runs. /etc/flowrelay/flowrelay.yaml is
# %config(noreplace): an edited copy stays as flowrelay.yaml.rpmsave on erase.
set -eu
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
  if [ "$1" -ge 1 ]; then
    systemctl try-restart flowrelay.service >/dev/null 2>&1 || :
  fi
fi
exit 0
