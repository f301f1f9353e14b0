# Sourced by the benchmark scripts (run.sh, scale.sh): sets `sd` and `tb`,
# the swh-deploy and testbed binaries to measure. SWH_DEPLOY and TESTBED
# name given binaries (no build); otherwise a release build of the
# repository at $repo (CARGO_TARGET_DIR, default $repo/target).
if [ -n "${SWH_DEPLOY:-}" ] && [ -n "${TESTBED:-}" ]; then
  sd=$SWH_DEPLOY tb=$TESTBED
else
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
  cargo build --quiet --release -p swh-deploy -p swh-deploy-testbed --manifest-path "$repo/Cargo.toml"
  sd=$CARGO_TARGET_DIR/release/swh-deploy
  tb=$CARGO_TARGET_DIR/release/testbed
fi
