"""Stand-ins for ClusterShell's NodeSet / RangeSet / fold / expand in
NodeSetTest.py, RangeSetTest.py and RangeSetNDTest.py that run
`swh-deploy nodeset` (`-R` for range sets).

What the command line expresses is replayed: building a set from a string
(parse errors raised as ClusterShell's exceptions), str(), len(),
iteration, equality, fold()/expand(), union, difference, intersection and
symmetric difference (operators and *_update methods), membership, and the
autostep folding (also inherited by a copy, as the Python object does),
fold_axis (as `--axis`) and copy(). Any other attribute of the Python objects raises
unittest.SkipTest naming it, so those tests are listed as skipped.
"""

import subprocess
import unittest

import peer
from ClusterShell.NodeSet import NodeSetParseError, NodeSetParseRangeError
from ClusterShell.RangeSet import RangeSetParseError
from groups_proxy import _raise_for, EMPTY_CONF


def _run(args):
    argv = [peer.SWH_DEPLOY, "nodeset", "--groupsconf", EMPTY_CONF.name] + args
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=peer.TIMEOUT, check=False)
    if proc.returncode != 0:
        try:
            _raise_for(proc.stderr)
        except NodeSetParseError as exc:
            if "-R" in args:
                # A range set's syntax error is a RangeSetParseError.
                raise RangeSetParseError("", str(exc)) from None
            prefix = 'bad range: "'
            if exc.part.startswith(prefix) and exc.part.endswith('"'):
                # ClusterShell prints a NodeSetParseRangeError as
                # 'bad range: "MESSAGE"': raise that class again.
                raise NodeSetParseRangeError(
                    RangeSetParseError("", exc.part[len(prefix):-1])) from None
            raise
    return proc.stdout.decode("utf-8")


class _PythonOnly(type):
    """Class attributes the command line has no equivalent for
    (`RangeSet.fromlist`...) skip the test."""

    def __getattr__(cls, name):
        raise unittest.SkipTest("%s.%s: Python API only" % (cls.__name__, name))


class _CLISet(metaclass=_PythonOnly):
    """Common part: a folded string and the options of its mode."""

    MODE = []

    def __init__(self, pattern=None, autostep=None, fold_axis=None, **kwargs):
        if kwargs.get("resolver") is not None:
            raise unittest.SkipTest("%s(%s=...): Python API only"
                                    % (type(self).__name__, ", ".join(kwargs)))
        if pattern is not None and not isinstance(pattern, (str, _CLISet)):
            raise unittest.SkipTest("%s(%s): Python API only"
                                    % (type(self).__name__, type(pattern).__name__))
        if self.MODE == ["-R"] and pattern == "":
            # RangeSet("") is a RangeSetParseError of the Python
            # constructor only: ClusterShell's `nodeset -R -f ''` prints an
            # empty line with exit 0, as swh-deploy does.
            raise unittest.SkipTest("RangeSet(''): Python API only (nodeset -R accepts '')")
        self.autostep = autostep
        if autostep is None and isinstance(pattern, _CLISet):
            # ClusterShell keeps the autostep in the copied range sets
            # while the copy's autostep property reads None ("inherit").
            self._inherit = pattern._effective_autostep()
        self.fold_axis = fold_axis
        self.folded = ""
        if pattern is not None and str(pattern) != "":
            self.folded = _run(self._opts(["-f", "--", str(pattern)])).rstrip("\n")

    @property
    def autostep(self):
        return self._autostep

    @autostep.setter
    def autostep(self, value):
        self._autostep = value
        self._inherit = None

    def _effective_autostep(self):
        return self._autostep if self._autostep is not None else self._inherit

    def _axis_opt(self):
        """fold_axis (0-based, Python) as `--axis` (1-based, or one
        negative axis), as ClusterShell's parse_fold_axis reads it."""
        axis = self.fold_axis
        if axis is None:
            return []
        if isinstance(axis, (int, str)) or not axis:
            # An int or a string is refused by NodeSet's folding (a Python
            # type error); an empty list has no --axis form.
            raise unittest.SkipTest("fold_axis=%r: Python API only (not a list of "
                                    "axes; --axis always is one)" % (axis,))
        axes = [int(str(x)) for x in axis]
        if all(x >= 0 for x in axes):
            return ["--axis=" + ",".join(str(x + 1) for x in axes)]
        if len(axes) == 1:
            return ["--axis=%d" % axes[0]]
        raise unittest.SkipTest("fold_axis=%r: Python API only (--axis takes one "
                                "negative axis)" % (axis,))

    def _opts(self, args, axis=False):
        opts = list(self.MODE)
        autostep = self._effective_autostep()
        if autostep is not None:
            if isinstance(autostep, (int, float)) and autostep >= 10**9:
                # AUTOSTEP_DISABLED: no step folding, the CLI default.
                pass
            elif not isinstance(autostep, int):
                raise unittest.SkipTest("autostep=%r: Python API only" % (autostep,))
            else:
                opts.append("--autostep=%d" % autostep)
        if axis:
            opts += self._axis_opt()
        return opts + args

    def _new(self, folded):
        inst = type(self).__new__(type(self))
        inst.autostep = self.autostep
        inst._inherit = self._inherit
        inst.fold_axis = self.fold_axis
        inst.folded = folded
        return inst

    def copy(self):
        """A copy keeps autostep and fold_axis (NodeSet.copy())."""
        return self._new(self.folded)

    __copy__ = copy

    def _op(self, flag, other):
        other = other if isinstance(other, _CLISet) else type(self)(other)
        if not self.folded:
            left = []
        else:
            left = [self.folded]
        if not other.folded:
            if flag in ("-i",):
                return self._new("")
            return self._new(self.folded)
        if not left:
            return self._new(other.folded if flag in ("", "-X") else "")
        args = left + ([flag] if flag else []) + [other.folded]
        return self._new(_run(self._opts(["-q", "-f", "--"] + args)).rstrip("\n"))

    def __str__(self):
        if self.folded and (self._effective_autostep() is not None
                            or self.fold_axis is not None):
            # Folding follows the autostep and fold axes set on the object.
            return _run(self._opts(["-f", "--", self.folded], axis=True)).rstrip("\n")
        return self.folded

    def _python_only(self, *args, **kwargs):
        raise unittest.SkipTest("%s comparison/indexing: Python API only"
                                % type(self).__name__)

    __lt__ = __le__ = __gt__ = __ge__ = __getitem__ = _python_only

    def __len__(self):
        if not self.folded:
            return 0
        return int(_run(list(self.MODE) + ["-c", "--", self.folded]))

    def __iter__(self):
        if not self.folded:
            return iter([])
        return iter(_run(list(self.MODE) + ["-e", "-S", "\\n", "--", self.folded]).split())

    def striter(self):
        return iter(self)

    def __bool__(self):
        return bool(self.folded)

    def __eq__(self, other):
        if isinstance(other, _CLISet):
            return str(self) == str(other)
        return NotImplemented

    def __hash__(self):
        return hash(self.folded)

    def __contains__(self, item):
        if not self.folded:
            return False
        other = type(self)(item)
        if not other.folded:
            return False
        return len(self._op("-i", other)) == len(other)

    def __or__(self, other):
        return self._op("", other)

    def __sub__(self, other):
        return self._op("-x", other)

    def __and__(self, other):
        return self._op("-i", other)

    def __xor__(self, other):
        return self._op("-X", other)

    union = __or__
    difference = __sub__
    intersection = __and__
    symmetric_difference = __xor__

    def update(self, other, **kwargs):
        if kwargs:
            self._python_only()
        self.folded = (self | other).folded

    def difference_update(self, other, **kwargs):
        if kwargs:
            self._python_only()
        self.folded = (self - other).folded

    def intersection_update(self, other, **kwargs):
        if kwargs:
            self._python_only()
        self.folded = (self & other).folded

    def symmetric_difference_update(self, other, **kwargs):
        if kwargs:
            self._python_only()
        self.folded = (self ^ other).folded

    def __getattr__(self, name):
        raise unittest.SkipTest("%s.%s: Python API only" % (type(self).__name__, name))


class CLINodeSet(_CLISet):
    """NodeSet through `swh-deploy nodeset`."""

    MODE = []


class CLIRangeSet(_CLISet):
    """RangeSet through `swh-deploy nodeset -R`."""

    MODE = ["-R"]


def fold(pattern):
    return str(CLINodeSet(pattern))


def expand(pattern):
    return list(CLINodeSet(pattern))


def _python_only(name):
    def f(*args, **kwargs):
        raise unittest.SkipTest("%s: Python API only" % name)
    return f


def patch(module):
    """Replaces the set classes MODULE imported; pickling and operator
    type-check tests are about Python objects: skipped."""
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase):
            for meth in list(vars(obj)):
                low = meth.lower()
                if meth.startswith("test") and ("pickle" in low or "binarysanity" in low):
                    setattr(obj, meth, unittest.skip(
                        "pickling / operator type checks of Python objects")(
                            getattr(obj, meth)))
    for name in ("NodeSet", "RangeSet", "fold", "expand", "RangeSetND",
                 "NodeSetBase"):
        if hasattr(module, name):
            setattr(module, name, {
                "NodeSet": CLINodeSet,
                "RangeSet": CLIRangeSet,
                "fold": fold,
                "expand": expand,
            }.get(name) or _python_only(name))
