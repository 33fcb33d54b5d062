"""Key-structure comparison between real Stripe payloads and simulated ones.

Tolerances (deliberate, documented here because the shape tests rely on them):
- keys under any ``metadata`` hash are free-form user data and are not compared;
- ``data.previous_attributes`` is compared for presence only: its keys depend on what changed
  in the particular captured scenario, not on the payload shape;
- extra keys in the simulator's payload are allowed (Stripe adds fields over time);
- ``null_tolerant`` (used for the basil family only): where the reference holds an object or
  a non-empty list and the simulator holds ``null``/``[]``, the reference's sub-keys are not
  required. The basil references are Stripe's documentation fixtures, which fill every
  nullable field with an example sub-object that real events send as ``null``. The real
  2020-08-27 captures are compared strictly. In the same mode an id string is accepted where
  the reference shows an expanded object (expandable fields, which the fixtures expand).
"""

from __future__ import annotations

from typing import Any


def missing_paths(real: Any, sim: Any, null_tolerant: bool, prefix: str = "") -> list[str]:
    """Key paths present in ``real`` but absent from ``sim`` (lists compared by element 0)."""
    out: list[str] = []
    if isinstance(real, dict):
        if not isinstance(sim, dict):
            if null_tolerant and (sim is None or (isinstance(sim, str) and "_" in sim)):
                return out
            return [f"{prefix} (object expected, got {type(sim).__name__})"]
        for key, value in real.items():
            path = f"{prefix}.{key}" if prefix else key
            if key not in sim:
                out.append(path)
                continue
            if key == "metadata":
                continue
            out.extend(missing_paths(value, sim[key], null_tolerant, path))
    elif isinstance(real, list) and real and isinstance(real[0], dict):
        if isinstance(sim, list) and sim and isinstance(sim[0], dict):
            out.extend(missing_paths(real[0], sim[0], null_tolerant, prefix + "[]"))
        elif not (null_tolerant and not sim):
            out.append(f"{prefix}[] (list of objects expected)")
    return out


def envelope_missing(real_event: dict[str, Any], sim_event: dict[str, Any]) -> list[str]:
    """Envelope keys (outside ``data.object``) of the real event missing from the simulated."""
    out = [k for k in real_event if k not in sim_event]
    for key in ("request",):
        if isinstance(real_event.get(key), dict):
            out += [f"{key}.{k}" for k in real_event[key] if k not in (sim_event.get(key) or {})]
    real_data, sim_data = real_event.get("data", {}), sim_event.get("data", {})
    out += [f"data.{k}" for k in real_data if k not in sim_data]
    return out
