#!/usr/bin/env bash
# Run arm64 (aarch64) binaries on this amd64 machine, inside containers too: what dockerd needs
# to build and run linux/arm64 images under QEMU, and the arm64 base rootfs's second stage.
#
#   binfmt.sh          installs qemu-user-static and binfmt-support if missing, mounts
#                      binfmt_misc if needed, registers qemu-aarch64; prints its registration
#
# Idempotent: a correct registration is left alone (re-registering would fail an arm64 build
# that is running at that moment). Correct means enabled, interpreter
# /usr/bin/qemu-aarch64-static, flag F. F (fix binary) makes the kernel open the interpreter
# once, at registration, so it is found in any mount namespace; Debian's default registration
# names the wrapper /usr/libexec/qemu-binfmt/aarch64-binfmt-P, which execs /usr/bin/qemu-aarch64
# by path, a path that is absent inside a container. The static binary needs nothing else.
# Not persistent: a reboot restores Debian's registration (systemd-binfmt, binfmt-support); CI
# runs this on every run (scripts/setup-system.sh).
set -euo pipefail

interp=/usr/bin/qemu-aarch64-static
binfmt=/proc/sys/fs/binfmt_misc
entry=$binfmt/qemu-aarch64
# ELF 64-bit little-endian, e_machine 0xb7 (EM_AARCH64); the kernel decodes the \x escapes.
# Flags: F as above; P (argv[0] preserved: QEMU >= 6 with kernel >= 5.12 reads it from
# AT_FLAGS), C (credentials from the binary, so setuid programs such as su work).
magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
rule=":qemu-aarch64:M::$magic:$mask:$interp:FPC"

correct() {
  [[ -r $entry ]] || return 1
  local text flags
  text=$(cat "$entry")
  flags=$(sed -n 's/^flags: //p' <<<"$text")
  grep -qx enabled <<<"$text" && grep -qx "interpreter $interp" <<<"$text" && [[ $flags == *F* ]]
}

if correct; then cat "$entry"; exit 0; fi

[[ $(id -u) -eq 0 ]] || { echo "binfmt.sh: need root to register qemu-aarch64 ($entry)" >&2; exit 1; }
if [[ ! -x $interp ]] || ! command -v update-binfmts >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends qemu-user-static binfmt-support >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends qemu-user-static binfmt-support >/dev/null; }
fi
# Installing the packages may have registered Debian's default entry, so check again.
if ! correct; then
  if [[ ! -e $binfmt/register ]]; then
    mount -t binfmt_misc binfmt_misc "$binfmt" \
      || { echo "binfmt.sh: cannot mount binfmt_misc on $binfmt (a container without privileges?)" >&2; exit 1; }
  fi
  if ! correct; then
    [[ -e $entry ]] && echo -1 >"$entry"  # an entry of that name: only removal replaces it
    printf '%s' "$rule" >"$binfmt/register"
  fi
fi
correct || { echo "binfmt.sh: qemu-aarch64 is not registered as expected:" >&2; cat "$entry" >&2 || true; exit 1; }
echo "binfmt.sh: registered qemu-aarch64 -> $interp (flags F)" >&2
cat "$entry"
