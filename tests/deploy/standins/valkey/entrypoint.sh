#!/bin/sh
set -eu
case "${1:-}" in
    valkey-server) shift; exec valkey-server --bind 0.0.0.0 --protected-mode no "$@" ;;
    *) exec "$@" ;;
esac
