#!/usr/bin/env bash
# Host settings Podman needs on these CI machines (Debian 12, root, hybrid cgroups, no
# systemd). Idempotent: writes only what is missing; a machine with Docker needs none of it.
set -euo pipefail
conf=/etc/containers/containers.conf
marker="# imgflow deploy test"
if ! grep -qF "$marker" "$conf" 2>/dev/null; then
    if [[ -s $conf ]] && grep -qvE '^\s*(#|$)' "$conf"; then
        echo "$conf already has settings; add these by hand if podman fails:" >&2
        echo '  [containers] default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' >&2
        echo '  [engine] runtime = "runc"   (only with hybrid cgroups)' >&2
    else
        mkdir -p /etc/containers
        {
            echo "$marker"
            echo "[containers]"
            # root here cannot raise its limits; the runtime's defaults ask for more
            echo 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'
            echo "[engine]"
            # crun refuses hybrid cgroups; runc runs them
            [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]] || echo 'runtime = "runc"'
        } >"$conf"
    fi
fi
# A leftover CNI config only prints warnings (the backend is netavark).
if [[ -f /etc/cni/net.d/87-podman-bridge.conflist ]]; then
    mv /etc/cni/net.d/87-podman-bridge.conflist /etc/cni/net.d/87-podman-bridge.conflist.off
fi
