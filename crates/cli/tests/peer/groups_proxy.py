"""Stand-ins for ClusterShell's Python objects in NodeSetGroupTest.py that
run `swh-deploy nodeset` instead.

NodeSetGroupTest.py tests groups.conf, group files and upcalls through the
Python API (``NodeSet(expr, resolver=GroupResolverConfig(FILE))``,
``res.grouplist()``...). Each call that the command line can answer is
translated into one `swh-deploy nodeset --groupsconf FILE ...` run; its
errors are raised as ClusterShell's exceptions (from the message class on
stderr). Calls that only exist in the Python object API (in-process
GroupSource objects, cache control, node_groups, add_source...) raise
unittest.SkipTest with the reason, so those tests are listed as skipped.
"""

import os
import subprocess
import tempfile
import unittest

import peer
from ClusterShell.NodeSet import NodeSetExternalError, NodeSetParseError
from ClusterShell.NodeUtils import (GroupResolverConfigError,
                                    GroupResolverIllegalCharError,
                                    GroupResolverSourceError,
                                    GroupSourceNoUpcall,
                                    GroupSourceQueryFailed)


class _Source:
    """What ClusterShell's group-source exceptions carry."""

    def __init__(self, name):
        self.name = name


def _raise_for(err):
    """Raises the ClusterShell exception matching an error line."""
    line = err.decode("utf-8", "replace").strip().splitlines()
    text = line[0] if line else ""
    for prefix in ("swh-deploy nodeset: ",):
        if text.startswith(prefix):
            text = text[len(prefix):]
    full = "\n".join([text] + line[1:])
    if text.startswith("Parse error: "):
        raise NodeSetParseError(text[len("Parse error: "):], "")
    if text.startswith("External error: "):
        raise NodeSetExternalError(text[len("External error: "):])
    if text.startswith("Unknown group source: "):
        raise GroupResolverSourceError(text[len("Unknown group source: "):].strip('"'))
    if text.startswith("No ") and " upcall defined for group source " in text:
        upcall = text[3:].split(" upcall", 1)[0]
        raise GroupSourceNoUpcall(upcall, _Source(text.rsplit(" ", 1)[-1].strip('"')))
    if text.startswith("Illegal group character: "):
        raise GroupResolverIllegalCharError(text.split(": ", 1)[1].strip('"'))
    if text.startswith("Group error: "):
        raise GroupSourceQueryFailed(text[len("Group error: "):], _Source(""))
    if text.startswith("ERROR: "):
        raise ValueError(text[len("ERROR: "):])
    # Group resolver errors and configuration syntax errors.
    raise GroupResolverConfigError(full)


class CLIResolver:
    """GroupResolverConfig answered by `swh-deploy nodeset --groupsconf`."""

    def __init__(self, filenames, illegal_chars=None, initial_default=None):
        if isinstance(filenames, (list, tuple)):
            if len(filenames) != 1:
                raise unittest.SkipTest("several groups.conf files in one resolver "
                                        "(the command line takes one --groupsconf)")
            filenames = filenames[0]
        if illegal_chars is not None:
            raise unittest.SkipTest("GroupResolverConfig(illegal_chars=...): Python API only")
        self.conf = filenames
        self.default = initial_default

    def run(self, args, source=None):
        argv = [peer.SWH_DEPLOY, "nodeset", "--groupsconf", self.conf]
        src = source or self.default
        if src:
            argv += ["-s", src]
        proc = subprocess.run(argv + args, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=peer.TIMEOUT, check=False)
        if proc.returncode != 0:
            _raise_for(proc.stderr)
        return proc.stdout.decode("utf-8")

    def sources(self):
        return self.run(["--groupsources", "-q"]).split()

    @property
    def default_source_name(self):
        out = self.run(["--groupsources"]).splitlines()
        return out[0].replace(" (default)", "") if out else None

    @default_source_name.setter
    def default_source_name(self, value):
        if value not in self.sources():
            raise GroupResolverSourceError(value)
        self.default = value

    def grouplist(self, namespace=None):
        return [g.lstrip("@") for g in self.run(["-G", "-l"], namespace).split()]

    def group_nodes(self, group, namespace=None):
        out = self.run(["-f", "@%s:%s" % (namespace, group) if namespace
                        else "@" + group]).strip()
        return [out] if out else []

    def all_nodes(self, namespace=None):
        # The command line's -a falls back to the union of the groups when
        # there is no `all` upcall (NodeSet.fromall); the resolver method
        # raises instead: not expressible.
        raise unittest.SkipTest("GroupResolverConfig.all_nodes (no fallback): "
                                "Python API only, the CLI has NodeSet.fromall's -a")

    def __getattr__(self, name):
        raise unittest.SkipTest("GroupResolverConfig.%s: Python API only" % name)


EMPTY_CONF = tempfile.NamedTemporaryFile(prefix="swh-peer-empty-", suffix=".conf")


class CLINodeSet:
    """NodeSet answered by `swh-deploy nodeset`."""

    std = None  # the std resolver (a CLIResolver) set by the test

    def __init__(self, nodes=None, autostep=None, resolver=None, fold_axis=None):
        if fold_axis is not None:
            raise unittest.SkipTest("NodeSet(fold_axis=...): Python API only")
        if resolver is None:
            resolver = CLINodeSet.std or CLIResolver(EMPTY_CONF.name)
        elif not isinstance(resolver, CLIResolver):
            from ClusterShell.NodeSet import RESOLVER_NOGROUP
            if resolver is RESOLVER_NOGROUP:
                raise unittest.SkipTest("RESOLVER_NOGROUP (no group or wildcard "
                                        "parsing at all): Python API only")
            raise unittest.SkipTest("in-process Python group resolver object")
        self.res = resolver
        self.autostep = autostep
        self.expr = str(nodes) if nodes is not None else ""
        # Parse at once, as NodeSet() does (errors at construction).
        self.folded = self.res.run(self._opts(["-f"]) + ["--", self.expr]).rstrip("\n") \
            if self.expr else ""

    def _opts(self, args):
        if self.autostep is not None:
            args = ["--autostep=%d" % self.autostep] + args
        return args

    @classmethod
    def fromall(cls, groupsource=None, autostep=None, resolver=None):
        if resolver is not None and not isinstance(resolver, CLIResolver):
            raise unittest.SkipTest("in-process Python group resolver object")
        res = resolver or cls.std or CLIResolver(EMPTY_CONF.name)
        out = res.run(["-f", "-a"], groupsource).strip()
        return cls(out, autostep=autostep, resolver=res)

    def __str__(self):
        return self.folded

    def __len__(self):
        if not self.folded:
            return 0
        return int(self.res.run(["-c", "--", self.folded]))

    def __iter__(self):
        if not self.folded:
            return iter([])
        return iter(self.res.run(["-e", "-S", "\\n", "--", self.folded]).split())

    def __eq__(self, other):
        return str(self) == str(other)

    def regroup(self, groupsource=None, autostep=None, overlap=False, noprefix=False):
        if overlap:
            raise unittest.SkipTest("NodeSet.regroup(overlap=True): Python API only")
        args = ["-r"] + (["-G"] if noprefix else [])
        if not self.folded:
            return ""
        return self.res.run(args + ["--", self.folded], groupsource).rstrip("\n")

    def groups(self, groupsource=None, noprefix=False):
        if not self.folded:
            return {}
        args = ["-lll"] + (["-G"] if noprefix else [])
        out = {}
        for line in self.res.run(args + ["--", self.folded], groupsource).splitlines():
            group, inodes, _ = line.split(" ")
            out[group] = (None, CLINodeSet(inodes, resolver=self.res))
        return out

    def __getattr__(self, name):
        raise unittest.SkipTest("NodeSet.%s: Python API only" % name)


# Tests whose subject the command line cannot express, with the reason.
CLI_INEXPRESSIBLE = {
    "NodeSetGroupTest.test_nodeset_wildcard_grouplist":
        "grouplist() of the Python API returns group names holding '*'; the "
        "nodeset command (ClusterShell's as well) refuses them with "
        "'Illegal group character: \"*\"'",
}


def patch(module):
    """Makes MODULE's NodeSet / GroupResolverConfig run swh-deploy."""
    for key, reason in CLI_INEXPRESSIBLE.items():
        cls_name, meth = key.split(".")
        cls = getattr(module, cls_name)
        setattr(cls, meth, unittest.skip(reason)(getattr(cls, meth)))

    from ClusterShell.NodeUtils import GroupResolver

    def set_std_group_resolver(resolver):
        if type(resolver) is GroupResolver and not resolver.sources():
            # The tests' "dummy resolver": no groups at all.
            resolver = CLIResolver(EMPTY_CONF.name)
        if resolver is not None and not isinstance(resolver, CLIResolver):
            raise unittest.SkipTest("in-process Python group resolver object")
        CLINodeSet.std = resolver

    def grouplist(namespace=None, resolver=None):
        if resolver is not None and not isinstance(resolver, CLIResolver):
            raise unittest.SkipTest("in-process Python group resolver object")
        return (resolver or CLINodeSet.std or CLIResolver(EMPTY_CONF.name)).grouplist(namespace)

    module.grouplist = grouplist
    module.NodeSet = CLINodeSet
    module.GroupResolverConfig = CLIResolver
    module.set_std_group_resolver = set_std_group_resolver
