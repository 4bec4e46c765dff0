# Debian 13 ("trixie") packages unpacked into a private prefix on a Debian 12 machine, no
# system upgrade (sourced by engine26.sh, cosign.sh and kubectl.sh).
#
#   trixie_unpack PREFIX FINISH PKG...   fetch + unpack the PKGs into PREFIX once; FINISH is
#                                        a function called with the unpacked tree before it
#                                        becomes PREFIX (drop files, smoke-test a binary)
#   trixie_tool NAME ARG...              the package NAME's /usr/bin/NAME under tools/NAME,
#                                        unpacked once; prints its path. `NAME ARG...` (a
#                                        version query: no network, no home writes) proves it
#                                        runs here before the prefix is kept
#
# apt runs with a private configuration (its own sources list, lists, cache; no system
# sources.list.d) against the Debian 13 suite of the mirror this machine's apt already uses,
# verified with Debian 12's debian-archive-keyring (it ships the trixie keys). Each .deb is
# unpacked with `dpkg-deb -x`; nothing is installed system-wide. The .debs stay in the
# cache, never in git. Expects $cache_dir (the layerkit cache) to be set.

# Same as base-image.sh: the mirror apt already uses (deb822 or one-line format).
apt_mirror() {
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -vE 'security|updates' | grep -E '/debian/?$' | head -n1 || true)
  [[ -n $uri ]] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

trixie_unpack() {
  local prefix=$1 finish=$2 who=${0##*/}
  shift 2
  local pkgs=("$@")
  local keyring=/usr/share/keyrings/debian-archive-trixie-stable.gpg
  [[ -s $keyring ]] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [[ -s $keyring ]] || { echo "$who: no Debian archive keyring (apt-get install debian-archive-keyring)" >&2; return 1; }

  # One apt root for every trixie prefix: its lists are fetched once.
  local apt_root=$cache_dir/engines/apt-trixie
  mkdir -p "$apt_root/lists/partial" "$apt_root/archives/partial" "$apt_root/parts" "$apt_root/prefs"
  # Debian 13's main suite is enough for test tools: no trixie-updates/security.
  echo "deb [signed-by=$keyring] $(apt_mirror) trixie main" >"$apt_root/sources.list"
  local apt_opts=(
    -o "Dir::Etc::SourceList=$apt_root/sources.list"
    -o "Dir::Etc::SourceParts=$apt_root/parts"
    -o "Dir::Etc::Preferences=$apt_root/prefs/none"
    -o "Dir::Etc::PreferencesParts=$apt_root/prefs"
    -o "Dir::State::Lists=$apt_root/lists"
    -o "Dir::State::status=$apt_root/status"
    -o "Dir::Cache=$apt_root/cache"
    -o "Dir::Cache::Archives=$apt_root/archives"
    -o "APT::Architecture=$(dpkg --print-architecture)"
    -o "APT::Get::AllowUnauthenticated=false"
    -o "Debug::NoLocking=true"
    -o "Acquire::Languages=none"
    -o "APT::Sandbox::User=root"
  )
  # An empty dpkg status: apt resolves as on a bare machine, so --download-only would pull
  # all of trixie's libc; only the named packages themselves are wanted.
  : >"$apt_root/status"
  mkdir -p "$apt_root/cache"
  echo "$who: apt update (Debian 13 from $(apt_mirror))" >&2
  apt-get "${apt_opts[@]}" -qq update >&2
  (cd "$apt_root/archives" && apt-get "${apt_opts[@]}" -qq download "${pkgs[@]}" >&2)

  local tmp p deb
  mkdir -p "$(dirname "$prefix")"
  tmp=$(mktemp -d "$prefix.XXXXXX")
  # shellcheck disable=SC2064  # $tmp is expanded now, on purpose
  trap "rm -rf '$tmp'" EXIT
  for p in "${pkgs[@]}"; do
    deb=$(ls -t "$apt_root/archives/${p}_"*.deb | head -n1)
    dpkg-deb -x "$deb" "$tmp"
    echo "  unpacked $(basename "$deb")" >&2
  done
  "$finish" "$tmp"
  rm -rf "$prefix"
  mv "$tmp" "$prefix"
  trap - EXIT
  touch "$prefix/.complete"
}

trixie_tool() {
  _trixie_tool=$1
  shift
  _trixie_tool_args=("$@")
  local prefix=$cache_dir/tools/$_trixie_tool
  _trixie_tool_check() { "$1/usr/bin/$_trixie_tool" "${_trixie_tool_args[@]}" >&2; }
  if [[ ! -f $prefix/.complete || ! -x $prefix/usr/bin/$_trixie_tool ]]; then
    trixie_unpack "$prefix" _trixie_tool_check "$_trixie_tool"
  fi
  echo "$prefix/usr/bin/$_trixie_tool"
}
