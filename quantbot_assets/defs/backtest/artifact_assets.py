"""`artifact_asset` and `artifact_multi_asset`: assets whose outputs are run-directory artifacts.

Each declares the kind of run directory it writes (`run_type`: path-only,
policy or optimization) and gets what every artifact asset shares: the
run-directory IO manager, the `parquet` kind, the failure hook that marks its
run directory failed, one step for all of its outputs, and its run directory
begun (pending, its partition keys) and marked running before its body runs.
The body takes the `run_dirs` resource (`run_dirs.open(context)` is its
`RunDirectory`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

from quantbot_assets.run_directories import RUN_TYPE_TAG, RunDirectories, mark_run_failed
from quantbot_assets.rundir import RunType

IO_MANAGER_KEY = "run_dir_io_manager"
KINDS = {"parquet"}


def artifact_out(group: str, description: str, run_type: RunType) -> dg.AssetOut:
    """An artifact output of a multi-asset: written to the run directory as Parquet."""
    return dg.AssetOut(
        group_name=group,
        io_manager_key=IO_MANAGER_KEY,
        kinds=KINDS,
        description=description,
        tags={RUN_TYPE_TAG: run_type},
    )


def artifact_multi_asset(
    *,
    run_type: RunType,
    layer: str,
    outs: Mapping[str, tuple[str, str]],
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """A multi-asset of artifacts; `outs` maps each output to its (group, description)."""

    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        return dg.multi_asset(
            outs={
                name: artifact_out(group, description, run_type)
                for name, (group, description) in outs.items()
            },
            can_subset=False,
            hooks={mark_run_failed},
            op_tags={"quantbot/layer": layer, RUN_TYPE_TAG: run_type},
            **kwargs,
        )(_begins_run_dir(fn))

    return decorate


def artifact_asset(
    *, run_type: RunType, group_name: str, **kwargs: Any
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """An asset whose one output is an artifact."""

    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        return dg.asset(
            group_name=group_name,
            io_manager_key=IO_MANAGER_KEY,
            kinds=KINDS,
            tags={RUN_TYPE_TAG: run_type},
            op_tags={RUN_TYPE_TAG: run_type},
            hooks={mark_run_failed},
            **kwargs,
        )(_begins_run_dir(fn))

    return decorate


def _begins_run_dir(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, after `run_dirs.begin(context)` (the same signature, so Dagster sees `fn`'s)."""
    if "run_dirs" not in inspect.signature(fn).parameters:
        raise TypeError(f"artifact asset {fn.__name__} must take the run_dirs resource")

    def begin(context: dg.AssetExecutionContext, kwargs: dict[str, Any]) -> None:
        run_dirs = kwargs["run_dirs"]
        assert isinstance(run_dirs, RunDirectories)
        run_dirs.begin(context)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(context: dg.AssetExecutionContext, **kwargs: Any) -> Any:
            begin(context, kwargs)
            yield from fn(context, **kwargs)

        return generator

    @functools.wraps(fn)
    def function(context: dg.AssetExecutionContext, **kwargs: Any) -> Any:
        begin(context, kwargs)
        return fn(context, **kwargs)

    return function
