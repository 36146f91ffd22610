"""The method table: params are decoded into each method's Struct before its typed handler runs;
a command line for another workspace root than the daemon's is refused.

Invalid params are refused with INVALID_PARAMS and one line saying what is
wrong, before the handler (and the engine) is reached. The table is driven
directly, with the collaborators perfd.daemon.host types, no daemon process.
"""

from __future__ import annotations

import os

import msgspec
import pytest
from conftest import make_workspace

from perfd.daemon.host import Subscribers, WarmSignals
from perfd.daemon.methods import Context, Methods, RpcError, Served
from perfd.engine.engine import Engine
from perfd.engine.errors import UserError
from perfd.engine.types import PlanStatus, WorkspaceStatus
from perfd.wire import protocol as P


class _Host:
    """The daemon's side of the seams the methods use (StatsSource, StopSignal)."""

    def __init__(self) -> None:
        self.cleared = 0

    def snapshot(self) -> P.StatsSnapshot:
        raise AssertionError("not asked here")

    async def refresh_team(self) -> None:
        pass

    def uptime(self) -> float:
        return 1.5

    def clear_state(self) -> None:
        self.cleared += 1

    def stop(self, reason: str) -> None:
        raise AssertionError("the methods never stop the daemon themselves")


async def _nowhere(body: bytes) -> None:
    pass


CTX = Context(cid=1, send=_nowhere, post=_nowhere)


@pytest.fixture
def methods(tmp_path: os.PathLike[str]) -> Methods:
    root = os.path.realpath(make_workspace(str(tmp_path)))
    host = _Host()
    warm = WarmSignals()
    warm.warmed.set()  # no warm-up here: a request for every plan answers at once
    return Methods(root, Engine(root), stats=host, subscribers=Subscribers(), warm=warm, stop=host,
                   llm=lambda: None, watching=lambda: False)


@pytest.mark.parametrize(("method", "params", "says"), [
    ("generate", b'{"plan":5}', "invalid params: Expected `str`, got `int` - at `$.plan`"),
    ("generate", b'{"plan":"@FEAT","x":1}', "invalid params: Object contains unknown field `x`"),
    ("generate", b"[1]", "params must be an object (by name)"),
    ("generate", b"", "invalid params: Object missing required field `plan`"),
    ("status", b'{"trust_plan":"yes"}', "invalid params: Expected `bool`, got `str` - at `$.trust_plan`"),
    ("invalidate", b'{"path":["a"]}', "invalid params: Expected `str | null`, got `array` - at `$.path`"),
    ("cli", b"{}", "invalid params: Object missing required field `argv`"),
    ("cli", b'{"argv":"status","cwd":"/"}', "invalid params: Expected `array`, got `str` - at `$.argv`"),
    ("cli", b'{"argv":[],"cwd":"/","root":7}', "invalid params: Expected `str | null`, got `int` - at `$.root`"),
    ("run", b'{"argv":["run"],"cwd":1}', "invalid params: Expected `str`, got `int` - at `$.cwd`"),
    ("initialize", b"null", "invalid params: Object missing required field `version`"),
])
async def test_invalid_params_are_refused_in_one_line_before_the_handler(
        methods: Methods, method: str, params: bytes, says: str) -> None:
    with pytest.raises(RpcError) as got:
        await methods.table()[method](params, CTX)
    assert got.value.code == P.INVALID_PARAMS
    assert got.value.message == says and "\n" not in got.value.message


async def test_the_handler_gets_its_params_struct(methods: Methods) -> None:
    table = methods.table()
    got = await table["status"](b'{"plan":"@FEAT"}', CTX)
    assert isinstance(got, PlanStatus) and got.plan == "FEAT" and got.next == "1.1"
    ping = await table["ping"](b"[1, 2]", CTX)  # a method without params reads none
    assert isinstance(ping, P.PingResult) and ping.uptime_s == 1.5 and ping.root == methods.root


async def test_names_are_the_status_plan_names_and_a_plans_achievement_numbers(methods: Methods) -> None:
    table = methods.table()
    status = await table["status"](b"{}", CTX)
    names = await table["names"](b"{}", CTX)
    assert isinstance(status, WorkspaceStatus) and isinstance(names, P.NamesResult)
    assert names.plans == [s.plan for s in status.plans] and "FEAT" in names.plans and names.achievements == []
    plan = await table["status"](b'{"plan":"@FEAT"}', CTX)
    names = await table["names"](b'{"plan":"@FEAT"}', CTX)
    assert isinstance(plan, PlanStatus) and isinstance(names, P.NamesResult)
    assert names.achievements == [a.number for a in plan.achievements] and "1.1" in names.achievements
    assert names.plans == []
    with pytest.raises(UserError):
        await table["names"](b'{"plan":"@NOPE"}', CTX)


async def _cli(methods: Methods, params: P.CliParams) -> P.CliResult:
    served = await methods.table()["cli"](msgspec.json.encode(params), CTX)
    assert isinstance(served, Served) and isinstance(served.result, P.CliResult)
    return served.result


async def test_a_foreign_root_is_refused_in_one_line_naming_both(methods: Methods, tmp_path: str) -> None:
    other = make_workspace(os.path.join(tmp_path, "elsewhere"))
    says = f"perfd: this daemon serves {methods.root}, not {other}\n"
    # the root the client found and sent
    got = await _cli(methods, P.CliParams(argv=["status"], cwd=other, root=other))
    assert (got.code, got.stdout, got.stderr) == (1, "", says)
    # none sent (an older client, a hand-made request): the one the command line names is refused alike
    for argv in (["status", "--root", other], ["generate", "@FEAT", "--root", other], ["stats", "--root", other]):
        got = await _cli(methods, P.CliParams(argv=argv, cwd="/"))
        assert (got.code, got.stdout, got.stderr) == (1, "", says), argv


async def test_the_root_sent_is_used_as_is(methods: Methods, tmp_path: str) -> None:
    # cwd outside any workspace: only the root sent tells the daemon where the command line runs
    got = await _cli(methods, P.CliParams(argv=["status", "@FEAT"], cwd=str(tmp_path), root=methods.root))
    assert got.code == 0 and "@FEAT" in got.stdout, got.stderr
    via_link = os.path.join(tmp_path, "link")
    os.symlink(methods.root, via_link)  # the same folder by another name is not foreign
    got = await _cli(methods, P.CliParams(argv=["status", "@FEAT"], cwd=str(tmp_path), root=via_link))
    assert got.code == 0, got.stderr


async def test_a_run_for_a_foreign_root_is_refused_in_one_line_naming_both(methods: Methods, tmp_path: str) -> None:
    other = make_workspace(os.path.join(tmp_path, "elsewhere"))
    sent: list[bytes] = []

    async def record(body: bytes) -> None:
        sent.append(body)

    nowhere = os.path.join(tmp_path, "nowhere")
    os.makedirs(nowhere)
    # cwd outside any workspace: only the root the client found and sent names one (as for cli)
    params = P.RunParams(argv=["run", "@FEAT"], cwd=nowhere, root=other)
    served = await methods.table()["run"](msgspec.json.encode(params), Context(cid=2, send=record, post=record))
    assert isinstance(served, Served) and isinstance(served.result, P.RunResult) and served.result.code == 1
    said = [msgspec.json.decode(b)["params"]["text"] for b in sent]
    assert said == [f"perfd: this daemon serves {methods.root}, not {other}\n"]
