#!/usr/bin/env bash
# Docker 26 (Debian 13 "trixie": docker.io 26.1.5, containerd 1.7.24, docker-cli,
# docker-buildx) unpacked into a private prefix on a Debian 12 machine, no system upgrade.
#
#   engine26.sh          fetch + unpack once; print the prefix (a second run does nothing)
#
# apt runs with a private configuration (its own sources list, lists, cache; no system
# sources.list.d) against the Debian 13 suite of the mirror this machine's apt already uses,
# verified with Debian 12's debian-archive-keyring (it ships the trixie keys). Each .deb is
# unpacked with `dpkg-deb -x`; nothing is installed system-wide. Debian 13's runc needs
# glibc 2.38, so the prefix's runc is deleted: dockerd.sh uses Debian 12's runc (docker.io).
# The .debs stay in the cache, never in git.
set -euo pipefail

cache_dir=${LAYERKIT_CACHE:-$HOME/.cache/layerkit}
prefix=$cache_dir/engines/docker26
stamp=$prefix/.complete
pkgs=(docker.io containerd docker-cli docker-buildx)

if [[ -f $stamp && -x $prefix/usr/sbin/dockerd ]]; then echo "$prefix"; exit 0; fi

# Same as base-image.sh: the mirror apt already uses (deb822 or one-line format).
apt_mirror() {
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -vE 'security|updates' | grep -E '/debian/?$' | head -n1 || true)
  [[ -n $uri ]] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

keyring=/usr/share/keyrings/debian-archive-trixie-stable.gpg
[[ -s $keyring ]] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -s $keyring ]] || { echo "engine26.sh: no Debian archive keyring (apt-get install debian-archive-keyring)" >&2; exit 1; }

apt_root=$cache_dir/engines/apt-trixie
mkdir -p "$apt_root/lists/partial" "$apt_root/archives/partial" "$apt_root/parts" "$apt_root/prefs"
# Debian 13 has no trixie-updates/security needs for a test engine: the main suite is enough.
echo "deb [signed-by=$keyring] $(apt_mirror) trixie main" >"$apt_root/sources.list"
apt_opts=(
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
# all of trixie's libc; only the four packages themselves are wanted (their shared-library
# needs are met by Debian 12's, except runc's, dropped below).
: >"$apt_root/status"
mkdir -p "$apt_root/cache"
echo "engine26.sh: apt update (Debian 13 from $(apt_mirror))" >&2
apt-get "${apt_opts[@]}" -qq update >&2
(cd "$apt_root/archives" && apt-get "${apt_opts[@]}" -qq download "${pkgs[@]}" >&2)

tmp=$(mktemp -d "$cache_dir/engines/docker26.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for p in "${pkgs[@]}"; do
  deb=$(ls -t "$apt_root/archives/${p}_"*.deb | head -n1)
  dpkg-deb -x "$deb" "$tmp"
  echo "  unpacked $(basename "$deb")" >&2
done
rm -f "$tmp/usr/sbin/runc" "$tmp/usr/bin/runc"
"$tmp/usr/sbin/dockerd" --version >&2
rm -rf "$prefix"
mv "$tmp" "$prefix"
trap - EXIT
touch "$stamp"
echo "$prefix"
