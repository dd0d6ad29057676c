"""The few GraphQL calls the Dagster UI makes that the end-to-end test repeats.

`launchPartitionBackfill` with an asset selection and partition names is what
the UI's "Materialize" dialog sends for a range of partitions; the queries
below are what its backfill, run and asset pages poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
    ... on ConflictingExecutionParamsError { message }
  }
}
"""

BACKFILL_STATUS = """
query BackfillStatus($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      runs { id status tags { key value } }
      error { message }
    }
    ... on PythonError { message }
    ... on BackfillNotFoundError { message }
  }
}
"""

POLICY_KEYS = """
query PolicyKeys {
  assetNodeOrError(assetKey: {path: ["trades"]}) {
    ... on AssetNode { partitionKeysByDimension { name partitionKeys } }
  }
}
"""

RUNS_WITH_TAG = """
query RunsWithTag($key: String!, $value: String!) {
  runsOrError(filter: {tags: [{key: $key, value: $value}]}) {
    ... on Runs { results { id status runConfigYaml } }
  }
}
"""

FINISHED_BACKFILL = {
    "COMPLETED",
    "COMPLETED_SUCCESS",
    "COMPLETED_FAILED",
    "FAILED",
    "CANCELED",
    "CANCELING",
    "FAILING",
}


class GraphQLError(RuntimeError):
    """The webserver answered with errors, or a mutation returned an error type."""


@dataclass(frozen=True)
class BackfillResult:
    backfill_id: str
    status: str
    runs: list[dict[str, Any]]


class DagsterGraphQL:
    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/graphql"

    def query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = requests.post(
            self.url, json={"query": document, "variables": variables or {}}, timeout=60
        )
        reply.raise_for_status()
        body = reply.json()
        if body.get("errors"):
            raise GraphQLError(f"GraphQL errors: {body['errors']}")
        data: dict[str, Any] = body["data"]
        return data

    def launch_backfill(
        self, assets: list[str], partitions: list[str], run_config: dict[str, Any] | None = None
    ) -> str:
        params: dict[str, Any] = {
            "assetSelection": [{"path": [name]} for name in assets],
            "partitionNames": partitions,
        }
        if run_config is not None:
            params["runConfigData"] = run_config
        result = self.query(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise GraphQLError(f"backfill of {assets} {partitions} not launched: {result}")
        backfill_id: str = result["backfillId"]
        return backfill_id

    def backfill(self, backfill_id: str) -> BackfillResult:
        node = self.query(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if node["__typename"] != "PartitionBackfill":
            raise GraphQLError(f"backfill {backfill_id}: {node}")
        return BackfillResult(backfill_id, node["status"], node["runs"])

    def policy_ids(self) -> list[str]:
        node = self.query(POLICY_KEYS)["assetNodeOrError"]
        for dimension in node.get("partitionKeysByDimension") or []:
            if dimension["name"] == "policy":
                keys: list[str] = dimension["partitionKeys"]
                return keys
        return []

    def runs_with_tag(self, key: str, value: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.query(RUNS_WITH_TAG, {"key": key, "value": value})[
            "runsOrError"
        ]["results"]
        return runs


def poll(
    check: Callable[[], Any],
    *,
    timeout_s: float,
    what: str,
    on_timeout: Callable[[str], BaseException],
    interval_s: float = 2.0,
) -> Any:
    """Call `check` until it returns neither None nor False; raise `on_timeout(message)` at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        last = check()
        if last is not None and last is not False:
            return last
        if time.monotonic() > deadline:
            raise on_timeout(
                f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval_s)
