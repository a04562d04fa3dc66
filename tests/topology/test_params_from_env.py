"""Kernel params from environment variables, and params a kernel cannot take, via the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

KERNELS = """
import json

from pydantic import BaseModel

import numpy as np

from ringctl import ring_kernel
from ringctl.persistent import persistent_kernel

RECORD = np.dtype([("seq", np.int64), ("value", np.float64)])


async def plain(ctx):
    print("PLAIN " + json.dumps(ctx.params))


class Limits(BaseModel):
    rate: int
    limit: int | None = 5
    label: str


@ring_kernel(params=Limits)
async def modeled(ctx):
    print("MODELED " + ctx.params.model_dump_json())


async def ignores(ctx):
    await ctx.send(1)


@persistent_kernel(input=RECORD, state=1)
def tally(rec, state):
    state[0] += 1.0
    return 0


async def helper(ctx):
    return ctx.params["x"]


async def delegates(ctx):
    async for batch in ctx.batches(8):
        await helper(ctx)
"""


def run(tmp_path: Path, topology: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pk.py").write_text(KERNELS)
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(topology).lstrip())
    return subprocess.run(
        [sys.executable, "-m", "ringctl.cli", *args, str(path)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "RINGCTL_STATE_DIR": str(tmp_path / "state"), **env},
    )  # fmt: skip


FROM_ENV = """
version: 1
name: from-env
kernels:
  plain:
    entry: pk:plain
    params: {rate: "${RATE:-1000}", limit: "${LIMIT:-null}", on: "${ON:-true}", quoted: "1000"}
  modeled:
    entry: pk:modeled
    params: {rate: "${RATE:-1000}", limit: "${LIMIT:-null}", label: "${LABEL:-007}"}
"""


def printed(out: str, tag: str) -> dict[str, object]:
    line = next(x for x in out.splitlines() if x.startswith(tag + " "))
    return dict(json.loads(line[len(tag) + 1 :]))


def test_values_from_variables_are_read_as_yaml_reads_them(tmp_path: Path) -> None:
    result = run(tmp_path, FROM_ENV, "up", "--no-dashboard")
    assert result.returncode == 0, result.stdout + result.stderr
    # A kernel without a model gets numbers, booleans and null, as if written unquoted;
    # a quoted literal stays text.
    assert printed(result.stdout, "PLAIN") == {
        "rate": 1000, "limit": None, "on": True, "quoted": "1000"
    }  # fmt: skip
    # With a model, its fields decide: an int, an unset optional, text kept as text.
    assert printed(result.stdout, "MODELED") == {"rate": 1000, "limit": None, "label": "007"}

    again = run(tmp_path, FROM_ENV, "up", "--no-dashboard", RATE="2.5", LIMIT="7")
    assert again.returncode == 2, again.stdout + again.stderr  # 2.5 is no int for `modeled`
    assert "t.yaml:9:20: kernels.modeled.params.rate must be an integer" in again.stderr


def test_params_for_a_kernel_that_takes_none_are_an_error_at_their_line(tmp_path: Path) -> None:
    topology = """
    version: 1
    name: unused
    kernels:
      ignores:
        entry: pk:ignores
        params: {rate: 5}
      delegates:
        entry: pk:delegates
        params: {x: 5}
    queues:
      - {from: ignores, to: delegates}
    """
    for command in ("validate --import", "up --no-dashboard"):
        result = run(tmp_path, topology, *command.split())
        assert result.returncode == 2, result.stdout + result.stderr
        assert (
            "t.yaml:6:13: kernel 'ignores' takes no params: 'pk:ignores' has no params model "
            "and never reads ctx.params, so these would be ignored"
        ) in result.stderr
        assert "hint: remove `params:`, or give the kernel a params model" in result.stderr
        assert "delegates" not in result.stderr  # it hands ctx to a helper that reads them


def test_params_for_a_persistent_kernel_without_init_are_an_error(tmp_path: Path) -> None:
    topology = """
    version: 1
    name: unused
    kernels:
      tally:
        entry: pk:tally
        persistent: {}
        params: {scale: 2}
    """
    result = run(tmp_path, topology, "validate", "--import")
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        "t.yaml:7:13: kernel 'tally' takes no params: 'pk:tally' is a @persistent_kernel "
        "without init=, so these would be ignored"
    ) in result.stderr
