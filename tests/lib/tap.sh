# A tiny TAP producer for the shell tests (counted by scripts/test).
_tap_n=0
_tap_failed=0

# tap_ok DESCRIPTION COMMAND...: passes if COMMAND succeeds.
tap_ok() {
  local what=$1; shift
  _tap_n=$((_tap_n + 1))
  if "$@" >/dev/null 2>&1; then
    echo "ok $_tap_n - $what"
  else
    echo "not ok $_tap_n - $what"
    echo "#   command failed: $*"
    _tap_failed=$((_tap_failed + 1))
  fi
}

# tap_is DESCRIPTION GOT WANT
tap_is() {
  _tap_n=$((_tap_n + 1))
  if [ "$2" = "$3" ]; then
    echo "ok $_tap_n - $1"
  else
    echo "not ok $_tap_n - $1"
    echo "#   got:      $2"
    echo "#   expected: $3"
    _tap_failed=$((_tap_failed + 1))
  fi
}

# tap_like DESCRIPTION NEEDLE HAYSTACK
tap_like() {
  _tap_n=$((_tap_n + 1))
  case "$3" in
    *"$2"*) echo "ok $_tap_n - $1" ;;
    *) echo "not ok $_tap_n - $1"
       echo "#   expected to find: $2"
       printf '%s\n' "$3" | sed 's/^/#   in: /' | head -20
       _tap_failed=$((_tap_failed + 1)) ;;
  esac
}

# tap_unlike DESCRIPTION NEEDLE HAYSTACK
tap_unlike() {
  _tap_n=$((_tap_n + 1))
  case "$3" in
    *"$2"*) echo "not ok $_tap_n - $1"
       echo "#   did not expect: $2"
       _tap_failed=$((_tap_failed + 1)) ;;
    *) echo "ok $_tap_n - $1" ;;
  esac
}

tap_skip() {
  _tap_n=$((_tap_n + 1))
  echo "ok $_tap_n - $1 # SKIP $2"
}

tap_diag() { printf '%s\n' "$*" | sed 's/^/# /'; }

tap_done() {
  echo "1..$_tap_n"
  [ "$_tap_failed" -eq 0 ]
}
