"""What travels with a job to a worker, as JSON: paths, the profile by content, model identities.

A worker must run exactly the profile the coordinator journaled. The validated ``Profile`` is
sent as its field values with its SHA-256; the worker rebuilds the frozen dataclasses and refuses
the job if the rebuilt profile hashes differently (a worker on another anonymizer version that
reads a field differently). The SHA-256 of every model the coordinator's engine loaded is sent
too: the audit records those, so a worker whose weights differ must not run the job.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from anonymizer.config import Profile
from anonymizer.errors import ConfigError, ModelError


@dataclass(frozen=True)
class JobPayload:
    """One job for a worker. Paths are absolute and the same on every host (shares mounted alike)."""

    job_id: str
    task_id: str
    source: str
    work_dir: str  # <output folder>/.anonymizer-tmp-<job id>.d: the worker writes only under it
    suffix: str  # the source's suffix, given to the temporary output (the engine fixes a wrong one)
    profile: dict[str, Any]
    profile_sha256: str
    models: list[dict[str, str]]  # model_identities() of the coordinator's engine
    max_deliveries: int  # a job whose worker died this many times is given up (poison file)
    # The operator's sidecar masks by content, [label, text] per file, and their SHA-256s (part of
    # the job key): the worker validates them again and masks with them (anonymizer.review.sidecar).
    masks: list[list[str]] = dataclasses.field(default_factory=list)
    masks_sha256: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> JobPayload:
        """Given the task's JSON argument, return a JobPayload; raise ConfigError if malformed."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) != names:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ConfigError(f"job payload: expected keys {sorted(names)}, got {got}")
        return cls(**data)


def model_identities(models: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The identity of each model, sorted: what coordinator and worker must agree on.

    (id, sha256) of the shipped file, plus, for a graph derived on the host (int8), its precision,
    the derived graph's SHA-256 and the recipe: the audit records the coordinator's.
    """
    keys = ("precision", "graph_sha256", "recipe", "shaped_graph_sha256", "passes")
    return sorted(
        (
            {"id": str(m.get("id")), "sha256": str(m.get("sha256"))} | {k: str(m[k]) for k in keys if m.get(k) is not None}
            for m in models
        ),
        key=_name,
    )


def _name(model: dict[str, Any]) -> str:
    """A model's name in a comparison: its id, and which passes it runs where a class runs two
    graphs of one model (``detail_precision``)."""
    return f"{model['id']} ({model['passes']} passes)" if model.get("passes") else str(model["id"])


def _described(model: dict[str, str] | None) -> str:
    if model is None:
        return "absent"
    text = model["sha256"][:16]
    if model.get("graph_sha256"):
        text += f" ({model.get('precision')} graph {model['graph_sha256'][:16]}, {model.get('recipe')})"
    if model.get("shaped_graph_sha256"):
        text += f" (640x384 graph {model['shaped_graph_sha256'][:16]})"
    return text


def check_models(expected: list[dict[str, str]], loaded: list[dict[str, Any]], *, worker: str) -> None:
    """Raise ModelError naming each model whose identity differs between coordinator and worker.

    A coordinator of an earlier version sends (id, sha256) alone: those are then all that is compared.
    """
    mine = {_name(m): m for m in model_identities(loaded)}
    theirs = {_name(m): m for m in expected}
    if not any(len(m) > 2 for m in theirs.values()):
        mine = {_name(m): {"id": m["id"], "sha256": m["sha256"]} for m in model_identities(loaded)}
    if mine == theirs:
        return
    diffs = [
        f"{mid}: coordinator {_described(theirs.get(mid))}, worker {_described(mine.get(mid))}"
        for mid in sorted(set(mine) | set(theirs))
        if mine.get(mid) != theirs.get(mid)
    ]
    raise ModelError(
        f"model SHA-256 mismatch on worker {worker} ({'; '.join(diffs)}): install the same weights and anonymizer "
        "version on every host; the audit records the coordinator's models"
    )


def profile_to_content(profile: Profile) -> tuple[dict[str, Any], str]:
    """Return (the profile's settings as plain JSON values, its SHA-256)."""
    return profile.to_dict(), profile.sha256


def profile_from_content(data: dict[str, Any], sha256: str) -> Profile:
    """Rebuild the frozen Profile sent by the coordinator. Raise ConfigError if it does not hash
    to ``sha256`` (or has fields this version does not know)."""
    try:
        profile = _rebuild(Profile, data)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"job payload: the profile does not fit this anonymizer version: {exc}") from exc
    if profile.sha256 != sha256:
        raise ConfigError(
            f"job payload: the profile hashes to {profile.sha256[:16]} here, the coordinator sent "
            f"{sha256[:16]}: coordinator and worker run different anonymizer versions"
        )
    return profile


def _rebuild(cls: type, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - fields
    if unknown:
        raise KeyError(f"unknown fields {sorted(unknown)} in {cls.__name__}")
    values = {}
    for name, value in data.items():
        kind = hints[name]
        if isinstance(value, dict) and dataclasses.is_dataclass(kind):
            value = _rebuild(kind, value)  # type: ignore[arg-type]
        elif isinstance(value, list):
            value = tuple(value)  # JSON has no tuples; every sequence in a profile is one
        values[name] = value
    return cls(**values)

