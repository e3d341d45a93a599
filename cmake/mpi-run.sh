#!/usr/bin/env bash
# Runs a program as an MPI job on this one machine (the mpi lane's test of
# the MPI pool, tests/CMakeLists.txt; the README's example):
#
#   bash cmake/mpi-run.sh MPIEXEC N PROGRAM [ARGS...]
#
# Open MPI refuses more ranks than cores without --oversubscribe and refuses
# to run as root without --allow-run-as-root (containers, CI): both are added
# for Open MPI only, the second only for root.  Nothing else was needed on
# Debian 12's Open MPI 4.1 in a container (no btl/vader settings).
set -euo pipefail
mpiexec=$1
n=$2
shift 2
flags=()
if "$mpiexec" --version 2>&1 | grep -qE 'Open MPI|OpenRTE'; then
  flags+=(--oversubscribe)
  if [[ $(id -u) -eq 0 ]]; then
    flags+=(--allow-run-as-root)
  fi
fi
exec "$mpiexec" "${flags[@]}" -n "$n" "$@"
