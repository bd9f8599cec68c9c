# Sourced by the fetch scripts. Needs $cache (the repo's .cache folder).
#
# apt_extract PACKAGE DEST: downloads PACKAGE's .deb into $cache/debs with `apt-get download`
# (no root needed; on a fresh machine whose package lists are empty, refreshes them once and
# retries) and extracts it into DEST, replacing what was there.
apt_extract() {
  local package=$1 dest=$2 debs="$cache/debs"
  mkdir -p "$debs"
  if ! ls "$debs/${package}"_*.deb >/dev/null 2>&1; then
    if ! (cd "$debs" && apt-get download "$package" >&2); then
      local sudo=""
      [ "$(id -u)" = 0 ] || sudo=sudo
      $sudo apt-get update -qq >&2
      (cd "$debs" && apt-get download "$package" >&2)
    fi
  fi
  rm -rf "$dest" && mkdir -p "$dest"
  dpkg-deb -x "$(ls "$debs/${package}"_*.deb | head -n 1)" "$dest"
}
