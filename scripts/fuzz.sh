#!/usr/bin/env bash
# Runs every fuzz target for MINUTES minutes each (default 1), one after the other, on one
# core: scripts/fuzz.sh [MINUTES] [TARGET...]
#
# The targets (fuzz/fuzz_targets/) feed untrusted input to the real parsers: Slack,
# Mattermost and Discord requests (signed as the platform would, to reach the parsing behind
# verification), job traces through the output cleaner and masker, CI files through the
# loader, and rule expressions. Each run starts from fuzz/seeds/TARGET (kept in git) and grows
# fuzz/corpus/TARGET (ignored); a crash, panic, hang (> 10 s for one input) or memory use
# over 2 GB stops the target and leaves the input in fuzz/artifacts/TARGET/. Reproduce one
# with `RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none TARGET fuzz/artifacts/TARGET/FILE`
# (from the repository root), then keep it as a regression test in the crate's own tests.
#
# Needs only a stable toolchain: cargo-fuzz is installed when missing, and RUSTC_BOOTSTRAP=1
# lets stable accept the nightly flags it passes. No sanitizer: Rust code here has no
# `unsafe`, so AddressSanitizer would only slow the search (set FUZZ_SANITIZER=address to use
# it anyway). Not part of `.ci/run`: it is slow by design.
set -euo pipefail

minutes="${1:-1}"
shift || true
case "$minutes" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [MINUTES] [TARGET...]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (once, a few minutes)..." >&2
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-none}"
flags=(--sanitizer "$sanitizer")

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build "${flags[@]}"

failed=()
for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  seeds="fuzz/seeds/$target"
  mkdir -p "$corpus"
  dirs=("$corpus")
  [ -d "$seeds" ] && dirs+=("$seeds")
  echo "== $target: $minutes min" >&2
  if ! cargo fuzz run "${flags[@]}" "$target" "${dirs[@]}" -- \
      -max_total_time=$((minutes * 60)) -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1; then
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "findings in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "no findings in ${#targets[@]} targets" >&2
