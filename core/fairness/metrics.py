"""Group fairness metrics with bootstrap confidence intervals that resample people, not photos.

For each group of an attribute (e.g. gender = female / male) we measure accuracy, macro-F1, recall of
each emotion and the share of faces predicted as each emotion, with scikit-learn. Differences between
groups are summarised as gaps (best − worst) and ratios (worst / best); the recall gap of an emotion is
its equal-opportunity difference. Each number gets a percentile bootstrap interval: when the data says
which person (subject) a photo shows, whole subjects are resampled, because photos of one person are not
independent and resampling photos would make intervals look far tighter than the evidence allows.

Why the bootstrap works on confusion matrices: every metric here is a function of a group's confusion
matrix, and a resample's confusion matrix is a weighted sum of per-subject matrices (weights = how often
each subject was drawn). So 1,000 resamples are one matrix product per group, not 1,000 Python loops.
The point estimates come from scikit-learn; `tests/unit/test_fairness.py` checks both paths agree.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from core import settings
from core.emotion.vocabulary import EMOTIONS

CI = tuple[float, float]
MISSING_VALUES = frozenset({"", "unknown", "na", "n/a", "nan", "none", "null", "?"})
BASE_METRICS = ("accuracy", "macro_f1")


@dataclass(frozen=True)
class BootstrapConfig:
    """How intervals are computed; recorded in every report so numbers can be reproduced."""

    resamples: int = field(default_factory=lambda: settings.get().fairness_bootstrap)
    seed: int = 0
    level: float = field(default_factory=lambda: settings.get().fairness_ci_level)
    min_group_size: int = field(default_factory=lambda: settings.get().min_group_size)
    min_subjects: int = field(default_factory=lambda: settings.get().min_group_subjects)


@dataclass
class GroupMetrics:
    """One group's scores. `too_few` groups are shown but left out of gaps (their numbers are noise)."""

    group: str
    n: int
    n_subjects: int | None
    too_few: bool
    accuracy: float
    accuracy_ci: CI | None
    macro_f1: float | None
    macro_f1_ci: CI | None
    support: dict[str, int] = field(default_factory=dict)
    recall: dict[str, float | None] = field(default_factory=dict)
    recall_ci: dict[str, CI | None] = field(default_factory=dict)
    prediction_rate: dict[str, float] = field(default_factory=dict)
    prediction_rate_ci: dict[str, CI | None] = field(default_factory=dict)

    def value(self, metric: str) -> tuple[float | None, CI | None]:
        """(point, interval) of a metric name: accuracy, macro_f1, recall:<emotion>, prediction_rate:<emotion>."""
        if metric in BASE_METRICS:
            return getattr(self, metric), getattr(self, f"{metric}_ci")
        kind, emotion = metric.split(":", 1)
        return getattr(self, kind).get(emotion), getattr(self, f"{kind}_ci").get(emotion)

    def denominator(self, metric: str) -> int:
        """How many faces a metric is computed from (recall: only that emotion's faces)."""
        return self.support.get(metric.split(":", 1)[1], 0) if metric.startswith("recall:") else self.n

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "n_subjects": self.n_subjects, "too_few": self.too_few,
                "accuracy": _r(self.accuracy), "accuracy_ci": _ci(self.accuracy_ci),
                "macro_f1": _r(self.macro_f1), "macro_f1_ci": _ci(self.macro_f1_ci),
                "support": dict(self.support),
                "recall": {k: _r(v) for k, v in self.recall.items()},
                "recall_ci": {k: _ci(v) for k, v in self.recall_ci.items()},
                "prediction_rate": {k: _r(v) for k, v in self.prediction_rate.items()},
                "prediction_rate_ci": {k: _ci(v) for k, v in self.prediction_rate_ci.items()}}

    @classmethod
    def from_dict(cls, group: str, d: dict[str, Any]) -> "GroupMetrics":
        def cis(x: dict) -> dict:
            return {k: _tuple(v) for k, v in x.items()}
        return cls(group=group, n=int(d["n"]), n_subjects=d.get("n_subjects"), too_few=bool(d["too_few"]),
                   accuracy=d["accuracy"], accuracy_ci=_tuple(d.get("accuracy_ci")), macro_f1=d.get("macro_f1"),
                   macro_f1_ci=_tuple(d.get("macro_f1_ci")), support=dict(d.get("support", {})),
                   recall=dict(d.get("recall", {})), recall_ci=cis(d.get("recall_ci", {})),
                   prediction_rate=dict(d.get("prediction_rate", {})),
                   prediction_rate_ci=cis(d.get("prediction_rate_ci", {})))


@dataclass
class Gap:
    """Best minus worst group on one metric, its interval, and whether the interval excludes zero."""

    metric: str
    gap: float | None = None
    ci: CI | None = None
    ratio: float | None = None
    ratio_ci: CI | None = None
    high: str | None = None
    low: str | None = None
    compared: list[str] = field(default_factory=list)
    flagged: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"gap": _r(self.gap), "ci": _ci(self.ci), "ratio": _r(self.ratio), "ratio_ci": _ci(self.ratio_ci),
                "high": self.high, "low": self.low, "compared": list(self.compared), "flagged": self.flagged,
                "note": self.note}

    @classmethod
    def from_dict(cls, metric: str, d: dict[str, Any]) -> "Gap":
        return cls(metric=metric, gap=d.get("gap"), ci=_tuple(d.get("ci")), ratio=d.get("ratio"),
                   ratio_ci=_tuple(d.get("ratio_ci")), high=d.get("high"), low=d.get("low"),
                   compared=list(d.get("compared", [])), flagged=bool(d.get("flagged")), note=d.get("note", ""))


@dataclass
class AttributeAudit:
    """Groups of one attribute within one scope (e.g. gender within the London set)."""

    key: str
    attribute: str
    scope: str | None
    emotions: list[str]
    n: int
    n_missing: int
    resampled_by: str
    groups: dict[str, GroupMetrics]
    gaps: dict[str, Gap]

    def metrics(self) -> list[str]:
        return list(self.gaps)


@dataclass
class FairnessAudit:
    """A whole audit: every attribute within every scope, how it was computed, and where it came from."""

    attributes: dict[str, AttributeAudit]
    config: BootstrapConfig = field(default_factory=BootstrapConfig)
    overall: dict[str, GroupMetrics] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def metrics(self, keys: Sequence[str] | None = None) -> list[str]:
        """Metric names available for the chosen attributes, in a stable order."""
        found: list[str] = []
        for key in keys or list(self.attributes):
            found += [m for m in self.attributes[key].metrics() if m not in found]
        order = {m: i for i, m in enumerate(all_metric_names())}
        return sorted(found, key=lambda m: order.get(m, len(order)))

    def groups_table(self, keys: Sequence[str], metric: str) -> pd.DataFrame:
        rows = []
        for key in keys:
            a = self.attributes[key]
            for g in a.groups.values():
                value, ci = g.value(metric)
                rows.append({"scope": a.scope or "all", "attribute": a.attribute, "group": g.group, "n": g.n,
                             "people": g.n_subjects, "faces in metric": g.denominator(metric),
                             metric_label(metric): value, "95% CI low": ci[0] if ci else None,
                             "95% CI high": ci[1] if ci else None,
                             "too few": g.denominator(metric) < self.config.min_group_size,
                             "few people": g.n_subjects is not None and g.n_subjects < self.config.min_subjects})
        return pd.DataFrame(rows)

    def gaps_table(self, keys: Sequence[str], metrics: Sequence[str] | None = None) -> pd.DataFrame:
        rows = []
        for key in keys:
            a = self.attributes[key]
            for m, gap in a.gaps.items():
                if metrics is not None and m not in metrics:
                    continue
                rows.append({"scope": a.scope or "all", "attribute": a.attribute, "metric": metric_label(m),
                             "gap (max − min)": gap.gap, "gap CI low": gap.ci[0] if gap.ci else None,
                             "gap CI high": gap.ci[1] if gap.ci else None, "ratio (min / max)": gap.ratio,
                             "highest": gap.high, "lowest": gap.low, "flagged": gap.flagged, "note": gap.note})
        return pd.DataFrame(rows)

    def flagged(self) -> list[tuple[str, Gap]]:
        return [(k, g) for k, a in self.attributes.items() for g in a.gaps.values() if g.flagged]

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: `groups` -> attribute -> group -> metrics, and `gaps` -> attribute -> metric."""
        out: dict[str, Any] = dict(self.meta)
        out["bootstrap"] = {"resamples": self.config.resamples, "seed": self.config.seed,
                            "level": self.config.level, "min_group_size": self.config.min_group_size,
                            "min_subjects": self.config.min_subjects}
        out["attributes"] = {k: {"attribute": a.attribute, "scope": a.scope, "emotions": a.emotions, "n": a.n,
                                 "n_missing": a.n_missing, "resampled_by": a.resampled_by}
                             for k, a in self.attributes.items()}
        out["overall"] = {k: g.to_dict() for k, g in self.overall.items()}
        out["groups"] = {k: {g: m.to_dict() for g, m in a.groups.items()} for k, a in self.attributes.items()}
        out["gaps"] = {k: _nest_gaps(a.gaps) for k, a in self.attributes.items()}
        out["skipped"] = list(self.skipped)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FairnessAudit":
        """Rebuild an audit from its JSON report (what the page does with `weights/reports/fairness.json`)."""
        b = d.get("bootstrap", {})
        config = BootstrapConfig(resamples=int(b.get("resamples", 0)), seed=int(b.get("seed", 0)),
                                 level=float(b.get("level", 0.95)),
                                 min_group_size=int(b.get("min_group_size", settings.get().min_group_size)),
                                 min_subjects=int(b.get("min_subjects", settings.get().min_group_subjects)))
        attributes = {}
        for key, info in d.get("attributes", {}).items():
            groups = {g: GroupMetrics.from_dict(g, m) for g, m in d["groups"][key].items()}
            gaps = {m: Gap.from_dict(m, g) for m, g in _flatten_gaps(d["gaps"][key]).items()}
            attributes[key] = AttributeAudit(key=key, attribute=info["attribute"], scope=info.get("scope"),
                                             emotions=list(info["emotions"]), n=int(info["n"]),
                                             n_missing=int(info.get("n_missing", 0)),
                                             resampled_by=info.get("resampled_by", "face"),
                                             groups=groups, gaps=gaps)
        known = {"bootstrap", "attributes", "overall", "groups", "gaps", "skipped"}
        return cls(attributes=attributes, config=config,
                   overall={k: GroupMetrics.from_dict(k, v) for k, v in d.get("overall", {}).items()},
                   skipped=list(d.get("skipped", [])), meta={k: v for k, v in d.items() if k not in known})


# ---------------------------------------------------------------------------------------------- metrics

def all_metric_names(classes: Sequence[str] = EMOTIONS) -> list[str]:
    return [*BASE_METRICS, *(f"recall:{c}" for c in classes), *(f"prediction_rate:{c}" for c in classes)]


def metric_label(metric: str) -> str:
    """A plain-language name for a metric key."""
    if metric == "accuracy":
        return "accuracy"
    if metric == "macro_f1":
        return "macro-F1"
    kind, emotion = metric.split(":", 1)
    return f"recall of {emotion} (equal opportunity)" if kind == "recall" else f"share predicted {emotion}"


def confusion_metrics(conf: np.ndarray, labels: Sequence[int]) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 (over `labels`), per-class recall and prediction rate from confusion matrices.

    `conf` is (..., K, K), rows true, columns predicted; leading axes (resamples) are kept. Undefined
    values (a class never shown nor predicted; recall without positives) are NaN, as scikit-learn's
    `zero_division=np.nan`, and NaN F1s are left out of the macro average.
    """
    conf = np.asarray(conf, dtype=np.float64)
    n = conf.sum(axis=(-2, -1))
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    support, predicted = conf.sum(axis=-1), conf.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = tp.sum(axis=-1) / n
        recall = np.where(support > 0, tp / support, np.nan)
        rate = predicted / n[..., None]
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), np.nan)
    f1 = f1[..., list(labels)]
    defined = ~np.isnan(f1)
    macro = np.where(defined.any(axis=-1), np.nansum(f1, axis=-1) / np.maximum(defined.sum(axis=-1), 1), np.nan)
    return {"accuracy": accuracy, "macro_f1": macro, "recall": recall, "prediction_rate": rate}


def cluster_bootstrap_confusions(y_true: np.ndarray, y_pred: np.ndarray, clusters: np.ndarray, n_classes: int,
                                 resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, K, K) confusion matrices of resamples that draw whole clusters with replacement."""
    _, cluster_idx = np.unique(clusters, return_inverse=True)
    per_cluster = np.zeros((cluster_idx.max() + 1, n_classes, n_classes), dtype=np.int64)
    np.add.at(per_cluster, (cluster_idx, y_true, y_pred), 1)
    c = len(per_cluster)
    weights = rng.multinomial(c, np.full(c, 1.0 / c), size=resamples)  # times each cluster is drawn
    return (weights @ per_cluster.reshape(c, -1)).reshape(resamples, n_classes, n_classes)


def percentile_ci(samples: np.ndarray, level: float) -> CI | None:
    """Percentile interval along axis 0, ignoring NaN resamples; None when nothing is defined."""
    x = np.asarray(samples, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return None
    alpha = (1 - level) / 2 * 100
    lo, hi = np.percentile(x, [alpha, 100 - alpha])
    return float(lo), float(hi)


def is_missing(value: Any) -> bool:
    """None, NaN, empty or 'unknown'-like cells: not a group of people."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    return str(value).strip().lower() in MISSING_VALUES


def audit_attribute(y_true: Sequence[str], y_pred: Sequence[str], groups: Sequence[Any],
                    subjects: Sequence[Any] | None = None, *, attribute: str, scope: str | None = None,
                    config: BootstrapConfig | None = None, classes: Sequence[str] = EMOTIONS) -> AttributeAudit:
    """Per-group metrics and between-group gaps for one attribute.

    `y_true`/`y_pred` are emotion names from `classes`; rows whose group is missing ("", NaN, "unknown")
    are counted in `n_missing` and left out. With `subjects`, resampling draws whole subjects per group.
    """
    config = BootstrapConfig() if config is None else config  # read at call time: settings may change
    key = f"{scope}/{attribute}" if scope else attribute
    index = {c: i for i, c in enumerate(classes)}
    yt = np.array([index[e] for e in y_true], dtype=np.int64)
    yp = np.array([index[e] for e in y_pred], dtype=np.int64)
    g = np.array(["" if is_missing(v) else str(v).strip() for v in groups], dtype=object)
    keep = g != ""
    n_missing = int((~keep).sum())
    yt, yp, g = yt[keep], yp[keep], g[keep]
    clusters = _clusters(subjects, keep)
    labels = sorted(set(yt.tolist()))
    emotions = [classes[i] for i in labels]
    rng = np.random.default_rng([config.seed, zlib.crc32(key.encode())])  # same numbers whatever else is audited
    names = sorted(set(g.tolist()), key=lambda v: (-int((g == v).sum()), v))
    metrics: dict[str, GroupMetrics] = {}
    boots: dict[str, dict[str, np.ndarray]] = {}
    for name in names:
        m = g == name
        metrics[name], boots[name] = _group(yt[m], yp[m], clusters[m] if clusters is not None else None,
                                            name, labels, classes, config, rng)
    gaps: dict[str, Gap] = {}
    for metric in [*BASE_METRICS, *(f"recall:{e}" for e in emotions), *(f"prediction_rate:{c}" for c in classes)]:
        gaps[metric] = _gap(metric, metrics, boots, config, classes)
    return AttributeAudit(key=key, attribute=attribute, scope=scope, emotions=emotions, n=int(keep.sum()),
                          n_missing=n_missing, resampled_by="subject" if clusters is not None else "face",
                          groups=metrics, gaps=gaps)


def overall_metrics(y_true: Sequence[str], y_pred: Sequence[str], subjects: Sequence[Any] | None = None, *,
                    name: str = "all", config: BootstrapConfig | None = None,
                    classes: Sequence[str] = EMOTIONS) -> GroupMetrics:
    """The same metrics for a whole set (a reference line for the groups)."""
    config = BootstrapConfig() if config is None else config  # read at call time: settings may change
    index = {c: i for i, c in enumerate(classes)}
    yt = np.array([index[e] for e in y_true], dtype=np.int64)
    yp = np.array([index[e] for e in y_pred], dtype=np.int64)
    clusters = _clusters(subjects, np.ones(len(yt), dtype=bool))
    rng = np.random.default_rng([config.seed, zlib.crc32(f"overall/{name}".encode())])
    return _group(yt, yp, clusters, name, sorted(set(yt.tolist())), classes, config, rng)[0]


def audit_frame(frame: pd.DataFrame, attributes: Sequence[str], *, within: str | None = None,
                subject: str | None = None, truth: str = "emotion", pred: str = "predicted",
                config: BootstrapConfig | None = None, classes: Sequence[str] = EMOTIONS,
                meta: dict[str, Any] | None = None) -> FairnessAudit:
    """Audit every attribute within every value of `within` (e.g. source): groups are only compared
    inside one scope, because across sources the photo conditions differ along with the people."""
    config = BootstrapConfig() if config is None else config  # read at call time: settings may change
    scopes: list[str | None] = [None]
    if within:
        scopes = sorted({str(v) for v in frame[within] if not is_missing(v)})
    result: dict[str, AttributeAudit] = {}
    overall: dict[str, GroupMetrics] = {}
    skipped: list[str] = []
    for scope in scopes:
        part = frame if scope is None else frame[frame[within].astype(str) == scope]
        subjects = part[subject].tolist() if subject else None
        overall[scope or "all"] = overall_metrics(part[truth], part[pred], subjects, name=scope or "all",
                                                  config=config, classes=classes)
        for attribute in attributes:
            values = [v for v in part[attribute] if not is_missing(v)]
            distinct = sorted({str(v).strip() for v in values})
            where = f" in {scope}" if scope else ""
            if len(distinct) < 2:
                known = f"only one known group ({distinct[0]})" if distinct else "no known values"
                skipped.append(f"{attribute}{where}: {known}, nothing to compare.")
                continue
            audit = audit_attribute(part[truth].tolist(), part[pred].tolist(), part[attribute].tolist(), subjects,
                                    attribute=attribute, scope=scope, config=config, classes=classes)
            result[audit.key] = audit
    return FairnessAudit(attributes=result, config=config, overall=overall, skipped=skipped, meta=dict(meta or {}))


# --------------------------------------------------------------------------------------------- internals

def _clusters(subjects: Sequence[Any] | None, keep: np.ndarray) -> np.ndarray | None:
    """Cluster id per kept row; a row without a subject is its own cluster. None without subjects."""
    if subjects is None:
        return None
    s = np.asarray(list(subjects), dtype=object)[keep]
    return np.array([f"row:{i}" if is_missing(v) else f"s:{v}" for i, v in enumerate(s)], dtype=object)


def _group(yt: np.ndarray, yp: np.ndarray, clusters: np.ndarray | None, name: str, labels: list[int],
           classes: Sequence[str], config: BootstrapConfig,
           rng: np.random.Generator) -> tuple[GroupMetrics, dict[str, np.ndarray]]:
    k = len(classes)
    all_idx = list(range(k))
    accuracy = float(accuracy_score(yt, yp))
    # one scikit-learn pass for every class; macro-F1 averages the classes shown in this scope whose F1 is
    # defined, exactly as f1_score(labels=labels, average="macro", zero_division=np.nan)
    _, recall, f1, _ = precision_recall_fscore_support(yt, yp, labels=all_idx, average=None, zero_division=np.nan)
    shown_f1 = f1[labels]
    macro = float(np.nanmean(shown_f1)) if not np.isnan(shown_f1).all() else np.nan
    rate = np.bincount(yp, minlength=k) / len(yp)
    support = np.bincount(yt, minlength=k)
    ids = clusters if clusters is not None else np.arange(len(yt))
    conf = cluster_bootstrap_confusions(yt, yp, ids, k, config.resamples, rng)
    boot = confusion_metrics(conf, labels)
    level = config.level
    shown = [classes[i] for i in labels]
    metrics = GroupMetrics(
        group=name, n=int(len(yt)), n_subjects=int(len(set(clusters.tolist()))) if clusters is not None else None,
        too_few=len(yt) < config.min_group_size,
        accuracy=accuracy, accuracy_ci=percentile_ci(boot["accuracy"], level),
        macro_f1=None if np.isnan(macro) else macro, macro_f1_ci=percentile_ci(boot["macro_f1"], level),
        support={c: int(support[i]) for i, c in enumerate(classes) if c in shown},
        recall={c: _none(recall[classes.index(c)]) for c in shown},
        recall_ci={c: percentile_ci(boot["recall"][:, classes.index(c)], level) for c in shown},
        prediction_rate={c: float(rate[i]) for i, c in enumerate(classes)},
        prediction_rate_ci={c: percentile_ci(boot["prediction_rate"][:, i], level) for i, c in enumerate(classes)})
    flat = {"accuracy": boot["accuracy"], "macro_f1": boot["macro_f1"]}
    flat.update({f"recall:{c}": boot["recall"][:, i] for i, c in enumerate(classes)})
    flat.update({f"prediction_rate:{c}": boot["prediction_rate"][:, i] for i, c in enumerate(classes)})
    return metrics, flat


def _gap(metric: str, groups: dict[str, GroupMetrics], boots: dict[str, dict[str, np.ndarray]],
         config: BootstrapConfig, classes: Sequence[str]) -> Gap:
    """Signed difference between the observed best and worst eligible group, resample by resample.

    The pair is fixed from the point estimates so the interval can cross zero (an absolute max − min
    never can); a flag means the interval excludes zero.
    """
    values = {g: m.value(metric)[0] for g, m in groups.items()}
    eligible = [g for g, m in groups.items()
                if values[g] is not None and m.denominator(metric) >= config.min_group_size]
    small = [g for g in groups if g not in eligible]
    note = f"left out (fewer than {config.min_group_size} faces): {', '.join(small)}" if small else ""
    if len(eligible) < 2:
        return Gap(metric=metric, compared=eligible,
                   note=f"fewer than two groups with at least {config.min_group_size} faces; " + note)
    ordered = sorted(eligible, key=lambda g: values[g])  # stable: tied groups still give two names
    low, high = ordered[0], ordered[-1]
    gap = float(values[high] - values[low])
    diff = boots[high][metric] - boots[low][metric]
    ci = percentile_ci(diff, config.level)
    ratio = ratio_ci = None
    if values[high] > 0:
        ratio = float(values[low] / values[high])
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio_ci = percentile_ci(np.where(boots[high][metric] > 0, boots[low][metric] / boots[high][metric],
                                              np.nan), config.level)
    flagged = ci is not None and (ci[0] > 0 or ci[1] < 0)
    few = [f"{g} ({groups[g].n_subjects})" for g in (high, low)
           if groups[g].n_subjects is not None and groups[g].n_subjects < config.min_subjects]
    if few:
        flagged = False
        note = "; ".join(filter(None, [note, f"not flagged: too few people in {', '.join(few)}, so the interval is "
                                            "unreliable and the gap may be about those individuals"]))
    return Gap(metric=metric, gap=gap, ci=ci, ratio=ratio, ratio_ci=ratio_ci, high=high, low=low,
               compared=eligible, flagged=bool(flagged), note=note)


def _nest_gaps(gaps: dict[str, Gap]) -> dict[str, Any]:
    out: dict[str, Any] = {"accuracy": None, "macro_f1": None, "equal_opportunity": {}, "prediction_rate": {}}
    for metric, gap in gaps.items():
        if metric in BASE_METRICS:
            out[metric] = gap.to_dict()
        else:
            kind, emotion = metric.split(":", 1)
            out["equal_opportunity" if kind == "recall" else "prediction_rate"][emotion] = gap.to_dict()
    return out


def _flatten_gaps(nested: dict[str, Any]) -> dict[str, dict]:
    flat = {m: nested[m] for m in BASE_METRICS if nested.get(m)}
    flat.update({f"recall:{e}": g for e, g in nested.get("equal_opportunity", {}).items()})
    flat.update({f"prediction_rate:{e}": g for e, g in nested.get("prediction_rate", {}).items()})
    return flat


def _none(x: float) -> float | None:
    return None if x is None or np.isnan(x) else float(x)


def _r(x: float | None) -> float | None:
    return None if x is None or np.isnan(x) else round(float(x), 4)


def _ci(ci: CI | None) -> list[float] | None:
    return None if ci is None else [round(ci[0], 4), round(ci[1], 4)]


def _tuple(x: Any) -> CI | None:
    return None if x is None else (float(x[0]), float(x[1]))
