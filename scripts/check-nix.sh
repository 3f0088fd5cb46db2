#!/usr/bin/env bash
# The Nix side without a Nix build (none can run on the test machines): every .nix file parses,
# nixpkgs-fmt, deadnix and shellcheck are clean, and tests/nix checks the lock, the image
# description, the appliance's data, the VM tests' shell commands as the test driver runs them, the
# yanked crates `nix flake check` cannot see (crates.io must be reachable) and, with a copy of
# nixpkgs' lib, the modules' evaluation, their systemd units loaded by systemd-analyze, and the
# arguments every derivation of the flake would be built with.
#
# nixpkgs' lib is looked up in NIXPKGS_LIB, then ../shared/nixpkgs-lib, then fetched at the pinned
# revision below (its NAR hash checked) when GitHub is reachable. It is never committed.
set -euo pipefail
cd "$(dirname "$0")/.."

NIXPKGS_LIB_REV=de42d44212d207476489bce163375d8306a26d59
NIXPKGS_LIB_NAR_HASH=sha256-0iaTCZDEORJeWamOjfDZaoZZx686f7QO5oL3ynmj+ew=
nix_cmd=(nix --extra-experimental-features nix-command)

# Fixtures are inputs of the parser tests, kept byte for byte.
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.nix' ':!:pipeline/tests/fixtures')
status=0
for file in "${files[@]}"; do
  nix-instantiate --parse "$file" >/dev/null 2> >(grep -v "group 'nixbld'" >&2) || { echo "does not parse: $file" >&2; status=1; }
done
echo "parsed ${#files[@]} Nix files"
nixpkgs-fmt --check "${files[@]}" || status=1
deadnix --fail "${files[@]}" || status=1
shellcheck -x nix/*.sh || status=1

find_nixpkgs_lib() {
  local cache="target/nixpkgs-lib-$NIXPKGS_LIB_REV"
  if [ -n "${NIXPKGS_LIB:-}" ]; then echo "$NIXPKGS_LIB"; return; fi
  if [ -d ../shared/nixpkgs-lib/lib ]; then (cd ../shared/nixpkgs-lib && pwd); return; fi
  if [ -d "$cache/lib" ]; then echo "$PWD/$cache"; return; fi
  local tmp
  tmp=$(mktemp -d)
  if curl -fsSL --max-time 60 "https://github.com/nix-community/nixpkgs.lib/archive/$NIXPKGS_LIB_REV.tar.gz" 2>/dev/null |
    tar -xz -C "$tmp" --strip-components=1 2>/dev/null &&
    [ "$("${nix_cmd[@]}" hash path "$tmp" 2>/dev/null)" = "$NIXPKGS_LIB_NAR_HASH" ]; then
    mkdir -p target && rm -rf "$cache" && mv "$tmp" "$cache"
    echo "$PWD/$cache"
  else
    rm -rf "$tmp"
  fi
}

NIXPKGS_LIB=$(find_nixpkgs_lib)
if [ -n "$NIXPKGS_LIB" ]; then
  echo "evaluating the NixOS modules with nixpkgs' lib from $NIXPKGS_LIB"
else
  echo "NOTE: module evaluation is NOT run: no copy of nixpkgs' lib (set NIXPKGS_LIB; GitHub is unreachable)" >&2
fi
export NIXPKGS_LIB
DEVSECOPS_ADVISORY_DB="${DEVSECOPS_ADVISORY_DB:-$PWD/../shared/advisory-db}" \
  python3 -m pytest -q -rs -p no:cacheprovider tests/nix || status=1
exit $status
