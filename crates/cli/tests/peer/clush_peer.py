"""ClusterShell 1.10.1's tests/CLIClushTest.py against `swh-deploy run`.

The test module is imported unchanged from ClusterShell's sdist; only the
function it calls in-process (`ClusterShell.CLI.Clush.main`, imported into
the module as `main`) is replaced by `swh-deploy` run as a subprocess with
the same argv (`argv[0]` is `clush`: swh-deploy installed under that name
behaves as `swh-deploy run` with clush's messages), the same stdin and the
same environment; its stdout, stderr and exit status are handed back to
ClusterShell's own comparisons (TLib.CLI_main). The two tests that start
`python -m ClusterShell.CLI.Clush` themselves reach swh-deploy through a
sitecustomize shim on PYTHONPATH.

The tests reach `HOSTNAME` and `localhost` over ssh: a private sshd on a
free loopback port (its own host key, client key and known_hosts, in a
private mount namespace whose /run is a tmpfs), named by an ssh_config that
a site file ($SWH_DEPLOY_SITE) hands to swh-deploy. The machine's own sshd,
/run and root's dotfiles are untouched. Everything is stopped at the end.

Usage: python clush_peer.py --bin SWH_DEPLOY --sdist CLUSTERSHELL_SDIST_DIR
Prints the unittest report, then
`peer CLIClushTest.py: N passed, N failed, N skipped`;
exits 1 when a test failed.
"""

import argparse
import io
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

# Tests of options or behaviours that swh-deploy does not have, with why.
# Everything else must pass.
SKIPS = {
    "CLIClushTest_A": {
        "test_008_file_copy": "-c/--copy, --rcopy, --dest: file copy is not supported",
        "test_009_file_copy_tty": "-c/--copy, --rcopy, --dest: file copy is not supported",
        "test_010_diff": "--diff is not supported",
        "test_011_diff_tty": "--diff is not supported",
        "test_012_diff_null": "--diff is not supported",
        "test_013_stdin": "stdin is not forwarded to the hosts (clush -n behaviour)",
        "test_021_file_copy_timeout": "-c/--copy: file copy is not supported",
        "test_022_file_copy_timeout_tty": "-c/--copy: file copy is not supported",
        "test_023_load_workerclass": "Python API (_load_workerclass), no command line",
        "test_024_load_workerclass_error": "Python API (_load_workerclass), no command line",
        "test_025_worker": "-d/--debug prints ClusterShell's internal EXECCLIENT traces",
        "test_029_hostfile": "expects an OSError raised inside the Python process "
                             "(swh-deploy exits 1 with the file's error)",
        "test_031_progress": "progress is shown on a terminal only, and stdin is not "
                             "forwarded (no 'write: N B/s')",
        "test_038_rlimits": "-O fd_max: expects an OSError raised inside the Python "
                            "process at ClusterShell's pipe creation",
        "test_043_password_prompt": "-O password_prompt is not supported (needs stdin "
                                    "forwarding and ClusterShell's ask_pass)",
        "test_044_command_prefix_and_password_prompt":
            "-O password_prompt is not supported",
    },
    "CLIClushTest_B_StdinFailure": {
        "test_100_broken_stdin": "mocks sys.stdin.fileno() inside the Python process",
    },
    "CLIClushTest_D_StdinFIFO": {
        "test_300_fifo_stdin": "stdin is not forwarded to the hosts (clush -n behaviour)",
    },
    "CLIClushTest_E_Topology": {
        "test_300_topology": "--topology (tree mode) is not supported",
    },
}

SUBPROCESS_TIMEOUT = 120


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateSshd:
    """An sshd on 127.0.0.1:PORT for root's key-only login, and an
    ssh_config that sends HOSTNAME and localhost to it."""

    def __init__(self, names):
        self.dir = tempfile.mkdtemp(prefix="clush-peer-")
        d = self.dir
        for key in ("host", "client"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                            "-f", os.path.join(d, key)], check=True)
        shutil.copy(os.path.join(d, "client.pub"), os.path.join(d, "authorized_keys"))
        with open(os.path.join(d, "host.pub")) as f:
            hostkey = f.read().split()[:2]
        self.port = free_port()
        with open(os.path.join(d, "sshd_config"), "w") as f:
            f.write("\n".join([
                "Port %d" % self.port,
                "ListenAddress 127.0.0.1",
                "HostKey %s/host" % d,
                "PidFile none",
                "AuthorizedKeysFile %s/authorized_keys" % d,
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "UseDNS no",
                "StrictModes no",
                "MaxStartups 128",
                "MaxSessions 128",
                "PrintMotd no",
                "",
            ]))
        with open(os.path.join(d, "known_hosts"), "w") as f:
            f.write("clush-peer-sshd %s %s\n" % tuple(hostkey))
        self.ssh_config = os.path.join(d, "ssh_config")
        with open(self.ssh_config, "w") as f:
            f.write("Host %s\n" % " ".join(names))
            f.write("\n".join([
                "  HostName 127.0.0.1",
                "  Port %d" % self.port,
                "  User root",
                "  IdentityFile %s/client" % d,
                "  IdentitiesOnly yes",
                "  HostKeyAlias clush-peer-sshd",
                "  UserKnownHostsFile %s/known_hosts" % d,
                "  GlobalKnownHostsFile /dev/null",
                "",
            ]))
        # sshd's privilege separation directory is /run/sshd: give it a
        # private /run rather than create it on the machine.
        script = ('mount -t tmpfs -o mode=755,size=1m clush-peer /run && '
                  'mkdir -m 755 /run/sshd && exec /usr/sbin/sshd -D -e -f "$1"')
        self.log = open(os.path.join(d, "sshd.log"), "wb")
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
             os.path.join(d, "sshd_config")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("private sshd exited: %s" % self.read_log())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("private sshd did not listen: %s" % self.read_log())
                time.sleep(0.1)

    def read_log(self):
        with open(os.path.join(self.dir, "sshd.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_main(binary):
    """The replacement of clush's main(): swh-deploy as `clush` in a
    subprocess, with sys.argv, sys.stdin and os.environ as they are."""

    def main():
        stdin = sys.stdin
        data = None
        if isinstance(stdin, io.StringIO):
            data = stdin.getvalue().encode()
            child_stdin = subprocess.PIPE
        else:
            try:
                child_stdin = stdin.fileno()
            except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
                child_stdin = subprocess.DEVNULL
        proc = subprocess.Popen(list(sys.argv), executable=binary, stdin=child_stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=os.environ.copy())
        try:
            out, err = proc.communicate(data, timeout=SUBPROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += b"\nclush-peer: swh-deploy killed after %ds\n" % SUBPROCESS_TIMEOUT
        # TLib's TBytesIO.write() encodes str: hand it the bytes unchanged.
        io.BytesIO.write(sys.stdout, out)
        io.BytesIO.write(sys.stderr, err)
        rc = proc.returncode
        raise SystemExit(rc if rc >= 0 else 128 - rc)

    return main


def translate_resolver(suite_module, cfgdir):
    """The default group resolver that a test installs in-process
    (`set_std_group_resolver_config(FILE)`, undone by
    `set_std_group_resolver(None)`) becomes ClusterShell's own configuration
    search for the subprocess: `CLUSTERSHELL_CFGDIR` is a private directory
    whose groups.conf is a symlink to FILE (empty when none is set)."""
    link = os.path.join(cfgdir, "groups.conf")
    set_config = suite_module.set_std_group_resolver_config
    set_resolver = suite_module.set_std_group_resolver

    def unlink():
        if os.path.lexists(link):
            os.unlink(link)

    def set_std_group_resolver_config(filename, *args, **kwargs):
        unlink()
        if filename:
            os.symlink(filename, link)
        return set_config(filename, *args, **kwargs)

    def set_std_group_resolver(resolver):
        if resolver is None:
            unlink()
        return set_resolver(resolver)

    suite_module.set_std_group_resolver_config = set_std_group_resolver_config
    suite_module.set_std_group_resolver = set_std_group_resolver


def write_shim(directory, binary):
    """A sitecustomize that turns `python -m ClusterShell.CLI.Clush ARGS`
    (tests 026 and 045 start clush that way) into swh-deploy as clush."""
    with open(os.path.join(directory, "sitecustomize.py"), "w") as f:
        f.write(
            "import os, sys\n"
            "_a = list(getattr(sys, 'orig_argv', []))\n"
            "if _a[1:3] == ['-m', 'ClusterShell.CLI.Clush']:\n"
            "    os.execv(%r, ['clush'] + _a[3:])\n" % binary)


def end_masters(directory):
    """Ends the ssh master connections listening in `directory`."""
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            subprocess.run(["ssh", "-oControlPath=" + path, "-O", "exit", "--", "x"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="the swh-deploy binary")
    ap.add_argument("--sdist", required=True, help="ClusterShell 1.10.1's sdist directory")
    ap.add_argument("-k", action="append", default=[], help="only tests matching")
    opts = ap.parse_args()
    binary = os.path.abspath(opts.bin)
    sys.path.insert(0, os.path.abspath(opts.sdist))

    import socket as _s
    hostname = _s.gethostname().split(".", 1)[0]
    sshd = PrivateSshd(sorted({hostname, "localhost"}))
    work = tempfile.mkdtemp(prefix="clush-peer-run-")
    try:
        site = os.path.join(work, "site.toml")
        with open(site, "w") as f:
            f.write('[site]\nname = "clush-peer"\n\n[ssh]\nconfig = "%s"\n' % sshd.ssh_config)
        shim = os.path.join(work, "shim")
        os.mkdir(shim)
        write_shim(shim, binary)
        os.environ["SWH_DEPLOY_SITE"] = site
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [shim] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
        os.environ["PATH"] = os.pathsep.join(
            [os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        os.environ.pop("NO_COLOR", None)
        # No user or machine groups configuration leaks in.
        cfgdir = os.path.join(work, "clustershell")
        os.mkdir(cfgdir)
        os.environ["CLUSTERSHELL_CFGDIR"] = cfgdir
        os.environ.pop("XDG_CONFIG_HOME", None)
        # swh-deploy's shared ssh connections (reused between commands by
        # default) in a runtime directory of this run, ended with it.
        xdg = os.path.join(work, "xdg")
        os.mkdir(xdg, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = xdg

        from tests import CLIClushTest as suite_module
        suite_module.main = make_main(binary)
        translate_resolver(suite_module, cfgdir)

        for cls_name, tests in SKIPS.items():
            cls = getattr(suite_module, cls_name)
            for name, why in tests.items():
                setattr(cls, name, unittest.skip(why)(getattr(cls, name)))

        loader = unittest.TestLoader()
        if opts.k:
            loader.testNamePatterns = ["*%s*" % k for k in opts.k]
        suite = loader.loadTestsFromModule(suite_module)
        result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    finally:
        end_masters(os.path.join(work, "xdg", "swh-deploy", "ssh"))
        sshd.stop()
        shutil.rmtree(work, ignore_errors=True)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print("skipped:")
    for test, why in result.skipped:
        print("  %s: %s" % (test.id(), why))
    print("peer CLIClushTest.py: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
