"""Shared adapter: runs ClusterShell 1.10.1's own tests against swh-deploy.

ClusterShell's CLI tests call the command in-process through
``tests/TLib.py``'s ``CLI_main(test, main, argv, stdin, expected_stdout,
expected_rc, expected_stderr)``. This module replaces that one seam with a
subprocess: ``swh-deploy <subcommand> argv[1:]`` with the same argv, the
same stdin (bytes as given, text encoded as UTF-8, none: /dev/null) and the
test's environment, then checks stdout, stderr and the exit status with the
same rules as CLI_main (regexp search or equality for stdout, regexp match
or suffix for stderr, exact exit status). The tests' bodies and expected
values are used as shipped.

The in-process standard group resolver that a test installs
(``set_std_group_resolver(GroupResolverConfig(FILE))`` or
``set_std_group_resolver_config(FILE)``) has no meaning across a process
boundary; it is translated into ClusterShell's own configuration search:
``CLUSTERSHELL_CFGDIR`` is a private directory whose ``groups.conf`` is a
symlink to FILE, and ``HOME`` / ``XDG_CONFIG_HOME`` point to an empty
directory so that no user configuration leaks in. With no resolver set, the
directory has no groups.conf.

Environment: ``SWH_DEPLOY`` (the binary), ``CS_PEER_TESTS`` (the sdist's
``tests`` directory, default ``.venv/peer/clustershell-1.10.1/tests``).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
TESTS = os.environ.get(
    "CS_PEER_TESTS",
    os.path.join(REPO, ".venv", "peer", "clustershell-1.10.1", "tests"))
SWH_DEPLOY = os.environ.get("SWH_DEPLOY",
                            os.path.join(REPO, "target", "debug", "swh-deploy"))
# Each subprocess is bounded (a hang is a failure, not a stuck CI job).
TIMEOUT = 60


def import_peer_module(name):
    """Imports tests/NAME.py from the sdist as module tests.NAME."""
    parent = os.path.dirname(TESTS)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    import importlib
    return importlib.import_module("tests." + name)


class StdResolver:
    """The groups.conf files a test made the standard resolver read."""

    def __init__(self):
        self.files = None
        self.home = tempfile.mkdtemp(prefix="swh-peer-home-")
        self.cfgdir = tempfile.mkdtemp(prefix="swh-peer-cfg-")

    def set_files(self, files):
        """Records FILES (None, one path or a list) as groups.conf."""
        if files is None:
            self.files = None
        elif isinstance(files, (list, tuple)):
            self.files = list(files)
        else:
            self.files = [files]

    def env(self):
        """The environment for one subprocess."""
        conf = os.path.join(self.cfgdir, "groups.conf")
        if os.path.lexists(conf):
            os.unlink(conf)
        if self.files:
            # ClusterShell reads every file of its search path in order;
            # several files would need several directories: the tests only
            # ever give one.
            os.symlink(os.path.abspath(self.files[-1]), conf)
        env = dict(os.environ)
        env["HOME"] = self.home
        env["XDG_CONFIG_HOME"] = os.path.join(self.home, ".config")
        env["CLUSTERSHELL_CFGDIR"] = self.cfgdir
        return env

    def cleanup(self):
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.cfgdir, ignore_errors=True)


class FakeGroupResolverConfig:
    """Stands for ClusterShell's GroupResolverConfig: remembers its files."""

    def __init__(self, filenames, illegal_chars=None, initial_default=None):
        self.filenames = filenames


def patch_std_resolver(module, state):
    """Replaces the std-resolver setters the test module imported."""

    def set_std_group_resolver(resolver):
        if resolver is None:
            state.set_files(None)
        elif isinstance(resolver, FakeGroupResolverConfig):
            state.set_files(resolver.filenames)
        else:
            raise unittest.SkipTest("in-process Python group resolver object")

    def set_std_group_resolver_config(filenames):
        state.set_files(filenames)

    module.set_std_group_resolver = set_std_group_resolver
    module.set_std_group_resolver_config = set_std_group_resolver_config
    module.GroupResolverConfig = FakeGroupResolverConfig


def make_cli_main(subcommand, state):
    """A CLI_main that runs `swh-deploy SUBCOMMAND` as a subprocess."""

    def cli_main(test, main, args, stdin, expected_stdout, expected_rc=0,
                 expected_stderr=None):
        if stdin is None:
            data = None
        elif isinstance(stdin, bytes):
            data = stdin
        else:
            data = stdin.encode("utf-8")
        argv = [SWH_DEPLOY, subcommand] + list(args[1:])
        proc = subprocess.run(
            argv, input=data,
            stdin=subprocess.DEVNULL if data is None else None,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=state.env(), timeout=TIMEOUT, check=False)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
        # The same checks as TLib.CLI_main.
        if expected_stdout is not None:
            if isinstance(expected_stdout, re.Pattern):
                if not expected_stdout.search(out):
                    test.assertEqual(out, expected_stdout.pattern)
            else:
                test.assertEqual(out, expected_stdout)
        if expected_stderr is not None:
            if isinstance(expected_stderr, re.Pattern):
                if not expected_stderr.match(err):
                    test.assertEqual(err, expected_stderr.pattern)
            else:
                test.assertTrue(err.endswith(expected_stderr),
                                err + b' != ' + expected_stderr)
        if expected_rc is not None:
            test.assertEqual(rc, expected_rc,
                             "rc=%d err=%s argv=%r" % (rc, err, args))

    return cli_main


class CountingResult(unittest.TextTestResult):
    """Keeps the outcome of every test for the summary."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test)


def run_suite(label, suite, verbosity=1):
    """Runs SUITE, prints per-test failures and one summary line.

    Returns (passed, failed, skipped) counts; errors count as failures."""
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=verbosity,
                                     resultclass=CountingResult)
    result = runner.run(suite)
    failed = len(result.failures) + len(result.errors) + \
        len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    for test, reason in result.skipped:
        print("SKIPPED %s: %s" % (test.id(), reason))
    for test, _ in result.failures + result.errors:
        print("FAILED %s" % test.id())
    print("peer %s: %d passed, %d failed, %d skipped"
          % (label, len(result.passed), failed, skipped))
    sys.stdout.flush()
    return len(result.passed), failed, skipped
