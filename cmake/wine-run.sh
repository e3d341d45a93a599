#!/usr/bin/env bash
# Run a Windows program under wine, non-interactively (CMAKE_CROSSCOMPILING_EMULATOR
# of the mingw-w64 toolchain file).
#
#   wine-run.sh [--default-prefix DIR] PROGRAM.exe [ARGS...]
#   wine-run.sh [--default-prefix DIR] --init      create the prefix and exit
#   wine-run.sh [--default-prefix DIR] --kill      stop the prefix's wineserver
#
# - WINEPREFIX: kept if set, else DIR (the toolchain passes <build>/wineprefix), else
#   ~/.wine. The prefix is created on first use, under a lock, so that two tests
#   starting together do not both initialise it.
# - WINEDEBUG=-all (unless set) keeps wine's fixme/err chatter out of test output.
# - WINEDLLOVERRIDES="mscoree,mshtml=" stops wine from offering to install Mono and
#   Gecko (a dialog that would wait for a click nobody makes).
# - No DISPLAY is needed: console programs run without one.
# - A persistent wineserver (it exits 30 s after its last client) and wine's service
#   processes are started with stdio on /dev/null *before* the program (see below).
# - The exit status is the program's (wine maps the Windows exit code to 0..255).
# - stdout and stderr come out merged (ctest merges them anyway); a run that
#   fails without writing anything is retried once (see the end).
set -euo pipefail

default_prefix=
if [[ ${1-} == --default-prefix ]]; then
  default_prefix=${2:?--default-prefix needs a directory}
  shift 2
fi
if [[ $# -lt 1 ]]; then
  echo "usage: $0 [--default-prefix DIR] (PROGRAM [ARGS...] | --init | --kill)" >&2
  exit 2
fi

if [[ -z ${WINEPREFIX-} ]]; then
  export WINEPREFIX=${default_prefix:-$HOME/.wine}
fi
if [[ $WINEPREFIX != /* ]]; then          # wine insists on an absolute path
  WINEPREFIX=$PWD/$WINEPREFIX
fi
export WINEDEBUG=${WINEDEBUG--all}
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-mscoree,mshtml=}
export WINEARCH=win64
# Keep wine from touching the user's desktop integration (menus, file associations).
export WINEDLLOVERRIDES="${WINEDLLOVERRIDES};winemenubuilder.exe=d"
# No just-in-time debugger: with winedbg attached, a crashing program (wine 8) now
# and then exits with status 0, so a crashing test could pass. Without it a crash
# exits with the low byte of the exception code (0xC0000005 -> 5). Set
# MPROC_WINE_DEBUGGER=1 to get winedbg's backtrace when investigating a crash.
if [[ -z ${MPROC_WINE_DEBUGGER-} ]]; then
  export WINEDLLOVERRIDES="${WINEDLLOVERRIDES};winedbg.exe=d"
fi

# Pick the wine loader: wine64 on PATH (upstream / other distros), Debian's wine
# wrapper, or Debian's 64-bit loader directly (package wine64 without package wine).
wine=
if command -v wine64 >/dev/null 2>&1; then
  wine=$(command -v wine64)
elif command -v wine >/dev/null 2>&1; then
  wine=$(command -v wine)
elif [[ -x /usr/lib/wine/wine64 ]]; then
  wine=/usr/lib/wine/wine64
  export WINELOADER=${WINELOADER:-$wine}
else
  echo "wine-run.sh: no wine found (apt-get install wine64 wine)" >&2
  exit 127
fi

wineserver_bin=$(command -v wineserver 2>/dev/null || true)
if [[ -z $wineserver_bin && -x /usr/lib/wine/wineserver64 ]]; then
  wineserver_bin=/usr/lib/wine/wineserver64
fi

ensure_prefix() {
  [[ -f $WINEPREFIX/system.reg ]] && return 0
  mkdir -p "$(dirname "$WINEPREFIX")"
  local lock=$WINEPREFIX.lock
  (
    flock -w 600 9 || { echo "wine-run.sh: timed out waiting for $lock" >&2; exit 1; }
    if [[ ! -f $WINEPREFIX/system.reg ]]; then
      echo "wine-run.sh: creating wine prefix $WINEPREFIX (first run, takes a while)" >&2
      # wineboot -i initialises the prefix; -u would also work. Its output is noise.
      "$wine" wineboot -i >/dev/null 2>&1 </dev/null 9>&- || true
      # Wait for that wineserver to exit: it writes the registry (system.reg, the
      # "prefix is ready" mark) when it does.
      [[ -n $wineserver_bin ]] && "$wineserver_bin" -w >/dev/null 2>&1 9>&- || true
      if [[ ! -f $WINEPREFIX/system.reg ]]; then
        echo "wine-run.sh: could not create wine prefix $WINEPREFIX" >&2
        exit 1
      fi
    fi
  ) 9>"$lock"
}

if [[ $1 == --kill ]]; then
  [[ -n $wineserver_bin && -d $WINEPREFIX ]] && "$wineserver_bin" -k >/dev/null 2>&1 || true
  exit 0
fi

ensure_prefix

if [[ $1 == --init ]]; then
  exit 0
fi

# Start the wine "session" detached from our stdio: a persistent wineserver and the
# service processes (services.exe, winedevice.exe, plugplay.exe, explorer.exe, ...)
# that the first program of a session brings up and that live as long as the server.
# Started by the test itself they would inherit its stdout/stderr pipes and ctest
# would wait for them (~30 s per test). `wineserver -p30` exits at once (status 2)
# when the prefix already has a server, so the common path costs a few ms.
if [[ -n $wineserver_bin ]]; then
  (
    flock -w 120 9 || true
    # 9>&-: the server must not inherit the lock, or it would hold it for its life.
    if "$wineserver_bin" -p30 </dev/null >/dev/null 2>&1 9>&-; then
      "$wine" cmd.exe /c exit </dev/null >/dev/null 2>&1 9>&- || true
    fi
  ) 9>"$WINEPREFIX.lock"
fi

# Wine itself now and then fails before the program runs (seen once in a few
# hundred starts on a loaded machine: exit at once, nothing written). Every
# program run here (test binaries, examples) writes before it can fail, so
# "failed and wrote nothing" is the launcher, not the program: try once more,
# and say so. A program that really dies at start-up fails twice and stays red.
log=$(mktemp "${TMPDIR:-/tmp}/wine-run.XXXXXX")
trap 'rm -f "$log"' EXIT
for attempt in 1 2; do
  set +e
  "$wine" "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  if [[ $status -eq 0 || -s $log || $attempt -eq 2 ]]; then
    exit "$status"
  fi
  echo "wine-run.sh: wine exited with status $status before the program wrote anything; retrying once" >&2
  sleep 1
done
