#!/bin/sh
# flowrelay %preun, as %systemd_preun: on erase ($1 = 0) disable, and stop when systemd runs.
# Upgrades ($1 >= 1) leave it alone; %postun restarts it.
set -eu
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now flowrelay.service >/dev/null 2>&1 || :
  else
    systemctl --no-reload disable flowrelay.service >/dev/null 2>&1 || :
  fi
fi
exit 0
