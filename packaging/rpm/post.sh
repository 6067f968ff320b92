#!/bin/sh
# flowrelay %post, as %systemd_post: on a first install ($1 = 1) apply the distribution's
# preset (Fedora/RHEL leave new services disabled unless a preset enables them; start with
# `systemctl enable --now flowrelay`). preset works without a running systemd.
set -eu
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
  systemctl --no-reload preset flowrelay.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
