"""ClusterShell 1.10.1's CLINodesetTest.py and NodeSetGroupTest.py against
`swh-deploy nodeset` (gating), and NodeSetTest.py / RangeSetTest.py /
RangeSetNDTest.py replayed through set stand-ins (all gating).

Run by crates/cli/tests/nodeset_cli.rs (under `scripts/test`) with the
venv's python; exits 1 if any test fails. Usage:

    SWH_DEPLOY=target/debug/swh-deploy .venv/bin/python \
        crates/cli/tests/peer/nodeset_peer.py [-v] [TEST_NAME_SUBSTRING]
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer  # noqa: E402


def load(module, state, pattern):
    """The tests of MODULE, patched to run swh-deploy, filtered by PATTERN."""
    module.CLI_main = peer.make_cli_main("nodeset", state)
    peer.patch_std_resolver(module, state)
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    if not pattern:
        return suite
    kept = unittest.TestSuite()

    def walk(s):
        for t in s:
            if isinstance(t, unittest.TestSuite):
                walk(t)
            elif pattern in t.id():
                kept.addTest(t)
    walk(suite)
    return kept


def filter_suite(suite, pattern):
    """The tests of SUITE whose id contains PATTERN (all without one)."""
    if not pattern:
        return suite
    kept = unittest.TestSuite()

    def walk(s):
        for t in s:
            if isinstance(t, unittest.TestSuite):
                walk(t)
            elif pattern in t.id():
                kept.addTest(t)
    walk(suite)
    return kept


def main():
    args = [a for a in sys.argv[1:] if a != "-v"]
    verbosity = 2 if "-v" in sys.argv[1:] else 1
    pattern = args[0] if args else None
    state = peer.StdResolver()
    failed = 0
    try:
        cli = peer.import_peer_module("CLINodesetTest")
        failed += peer.run_suite(
            "CLINodesetTest.py", load(cli, state, pattern), verbosity)[1]
        import groups_proxy
        grp = peer.import_peer_module("NodeSetGroupTest")
        groups_proxy.patch(grp)
        suite = unittest.defaultTestLoader.loadTestsFromModule(grp)
        failed += peer.run_suite("NodeSetGroupTest.py",
                                 filter_suite(suite, pattern), verbosity)[1]
        import sets_proxy
        for name in ("NodeSetTest", "RangeSetTest", "RangeSetNDTest"):
            mod = peer.import_peer_module(name)
            sets_proxy.patch(mod)
            suite = unittest.defaultTestLoader.loadTestsFromModule(mod)
            # Replayed through set stand-ins (sets_proxy.py); gating.
            failed += peer.run_suite(name + ".py (replay)",
                                     filter_suite(suite, pattern), verbosity)[1]
    finally:
        state.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
