"""Which preprocess run a step reads: the one given, checked, or the PD's only one.

``train``, ``tune`` and ``evaluate`` all need preprocessed data. Taking "the newest run"
silently trains on whatever was preprocessed last (another data set, another PD): so the
given run must be a FINISHED preprocess run *of that PD*, and without one there must be
exactly one candidate; otherwise a one-line error lists them and asks for
``preprocess_run``. Nothing is ever simulated or preprocessed here.
"""
from __future__ import annotations

from dc_mlops.errors import DataError
from dc_mlops.tracking import runs as tr

_LISTED = 5


def resolve_preprocess_run(pd_name: str, run_id: str = "") -> str:
    """The preprocess run id to read for ``pd_name`` (see the module docstring)."""
    if run_id:
        try:
            run = tr.run_info(run_id)
        except Exception:  # noqa: BLE001 - MLflow raises several kinds for an unknown id
            raise DataError(f"preprocess run {run_id!r} not found in this tracking "
                            "store") from None
        tags = run.data.tags
        if tags.get(tr.TAG_STEP) != "preprocess":
            kind = tags.get(tr.TAG_STEP) or "non-dc_mlops"
            raise DataError(f"preprocess_run {run_id}: is a {kind} run, not a preprocess run")
        if run.info.status != "FINISHED":
            raise DataError(f"preprocess_run {run_id}: status {run.info.status}, not FINISHED")
        their = tags.get(tr.TAG_PD, "")
        if their != pd_name:
            raise DataError(f"preprocess_run {run_id} holds PD {their!r} data, not {pd_name!r}: "
                            f"give a preprocess run of {pd_name} (or --pd {their})")
        return run_id
    exp = tr.ensure_experiment(tr.experiment_name(pd_name))
    found = [r for r in tr.finished_runs(exp, "preprocess") if r.data.tags.get(tr.TAG_PD) == pd_name]
    if len(found) == 1:
        return found[0].info.run_id
    if not found:
        raise DataError(f"no finished preprocess run of {pd_name}: run `dc-mlops preprocess "
                        f"--pd {pd_name} --data ...` first")
    listed = "; ".join(f"{r.info.run_id} (data {r.data.params.get('data', '?')}, "
                       f"{_date(r.info.start_time)})" for r in found[:_LISTED])
    more = f"; and {len(found) - _LISTED} more" if len(found) > _LISTED else ""
    raise DataError(f"{len(found)} finished preprocess runs of {pd_name}: {listed}{more}; "
                    "pass preprocess_run to say which")


def _date(ms: int | None) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp((ms or 0) / 1000).strftime("%Y-%m-%d %H:%M")
